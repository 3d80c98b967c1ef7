//! The site-wide config file: read under the user's, only if root's and unwritable by
//! others. Its path comes from `Context`, so these tests use their own.

use super::tests::flag;
use super::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const SITE: &str = r#"
api-gateway = "https://site.example"
region = "site-region"
timeout = "7s"
username = "site-user"
password-env = "PW"
default-profile = "prod"

[profiles.prod]
realm = "site-prod-realm"

[profiles.tds]
api-gateway = "https://tds.site.example"
realm = "site-tds-realm"
"#;

/// A temporary directory with the site file (mode 0644, owned by whoever runs the
/// tests) and optionally a user file (0600).
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(site: &str, user: Option<&str>) -> Files {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str, mode: u32| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write("site.toml", site, 0o644);
        if let Some(text) = user {
            std::fs::create_dir_all(dir.path().join("xdg/s3credsfs")).unwrap();
            write("xdg/s3credsfs/config.toml", text, 0o600);
        }
        Files { dir }
    }

    fn site(&self) -> PathBuf {
        self.dir.path().join("site.toml")
    }

    fn user(&self) -> PathBuf {
        self.dir.path().join("xdg/s3credsfs/config.toml")
    }

    fn ctx(&self) -> Context {
        Context {
            xdg_config_home: Some(self.dir.path().join("xdg")),
            site_config: Some(self.site()),
            ..Context::default()
        }
    }
}

fn load(cli: Layer, ctx: &Context) -> Result<Profiles> {
    load_profiles(
        &CliLayer {
            layer: cli,
            config_file: None,
        },
        ctx,
    )
}

fn source(p: &Profiles, profile: &str, key: Setting) -> Source {
    p.layer(Some(profile)).unwrap()[&key].source.clone()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Flags, then variables, then the user's file (its table, then its top level), then the
/// site file (its table, then its top level), then the defaults; each value keeps its
/// source.
#[test]
fn the_site_file_is_read_under_the_users_file() {
    if !is_root() {
        // Only root can own the site file: as another user every read is refused (see
        // `a_site_file_of_another_user_or_writable_by_others_is_refused`).
        return;
    }
    let files = Files::new(
        SITE,
        Some("region = \"user-region\"\n[profiles.tds]\ntimeout = \"3s\"\n"),
    );
    let env = Layer::from([(
        Setting::Realm,
        RawValue {
            value: "env-realm".into(),
            source: Source::Env("S3CREDSFS_REALM".into()),
        },
    )]);
    let p = load(env.clone(), &files.ctx()).unwrap();
    assert_eq!(p.default_name(), "prod", "the site's default-profile");
    assert_eq!(p.names().collect::<Vec<_>>(), ["prod", "tds"]);
    let ctx = Context::default();
    let prod = p.resolve(Some("prod"), &ctx).unwrap();
    let tds = p.resolve(Some("tds"), &ctx).unwrap();
    // The user's top level beats the site's tables.
    assert_eq!(
        (prod.region.as_str(), tds.region.as_str()),
        ("user-region", "user-region")
    );
    assert_eq!(
        source(&p, "tds", Setting::Region),
        Source::File(files.user())
    );
    // The user's table beats the site's.
    assert_eq!(tds.timeout, std::time::Duration::from_secs(3));
    assert_eq!(prod.timeout, std::time::Duration::from_secs(7));
    assert_eq!(
        source(&p, "prod", Setting::Timeout),
        Source::File(files.site())
    );
    // The site's table beats the site's top level.
    assert_eq!(tds.api_gateway.as_str(), "https://tds.site.example/");
    assert_eq!(prod.api_gateway.as_str(), "https://site.example/");
    // A variable beats both files.
    assert!(
        tds.token_url.as_str().contains("/realms/env-realm/"),
        "{}",
        tds.token_url
    );
    assert_eq!(
        source(&p, "tds", Setting::Realm),
        Source::Env("S3CREDSFS_REALM".into())
    );
    // Defaults fill the rest.
    assert_eq!(prod.client_id, "shasta");
    assert!(!p
        .layer(Some("prod"))
        .unwrap()
        .contains_key(&Setting::ClientId));

    // Without a user file, the site file alone configures everything; a flag still wins.
    let files = Files::new(SITE, None);
    let p = load(flag(Setting::Region, "flag-region"), &files.ctx()).unwrap();
    let prod = p.resolve(None, &ctx).unwrap();
    assert_eq!(prod.region, "flag-region");
    assert!(
        prod.token_url.as_str().contains("/realms/site-prod-realm/"),
        "{}",
        prod.token_url
    );
}

#[test]
fn a_site_file_of_another_user_or_writable_by_others_is_refused() {
    let files = Files::new(SITE, None);
    let shown = files.site().display().to_string();
    std::fs::set_permissions(files.site(), std::fs::Permissions::from_mode(0o664)).unwrap();
    let err = load(Layer::new(), &files.ctx()).unwrap_err().to_string();
    if is_root() {
        assert_eq!(
            err,
            format!(
                "the site config file {shown} is writable by group or others (mode 0664); run `chmod go-w {shown}`"
            )
        );
        std::fs::set_permissions(files.site(), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::chown(files.site(), Some(65534), None).unwrap();
        let err = load(Layer::new(), &files.ctx()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "the site config file {shown} belongs to user id 65534, not root; every user's \
                 mount reads it, so only root may own it: run `chown root: {shown}`, or remove it"
            )
        );
    } else {
        assert!(err.contains("not root"), "{err}");
    }
}

#[test]
fn without_a_site_file_nothing_changes() {
    let files = Files::new(SITE, Some("region = \"user-region\"\n"));
    std::fs::remove_file(files.site()).unwrap();
    let p = load(Layer::new(), &files.ctx()).unwrap();
    assert_eq!(p.names().collect::<Vec<_>>(), ["default"]);
    assert_eq!(
        source(&p, "default", Setting::Region),
        Source::File(files.user())
    );
    // And a context without a site path (every other test's) reads none.
    let ctx = Context {
        site_config: None,
        ..files.ctx()
    };
    assert!(load(Layer::new(), &ctx).is_ok());
    assert!(!Path::new(&files.site()).exists());
}

/// The real context looks where the RPM puts the file, as the man page says.
#[test]
fn the_real_context_reads_etc_s3credsfs() {
    assert_eq!(
        Context::from_vars(|_| None, false).site_config,
        Some(PathBuf::from("/etc/s3credsfs/config.toml"))
    );
}

/// `--config FILE` (even `/dev/null`) replaces the user's file, never the site's.
#[test]
fn a_config_flag_replaces_only_the_users_file() {
    if !is_root() {
        return; // only root can own a site file that is read at all
    }
    let files = Files::new(SITE, Some("region = \"user-region\"\n"));
    let cli = CliLayer {
        layer: Layer::new(),
        config_file: Some(PathBuf::from("/dev/null")),
    };
    let p = load_profiles(&cli, &files.ctx()).unwrap();
    assert_eq!(p.default_name(), "prod");
    let prod = p.resolve(None, &Context::default()).unwrap();
    assert_eq!(prod.region, "site-region", "the user's file is not read");
}
