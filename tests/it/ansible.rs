//! The Ansible tier (`ansible-tests`): contrib/ansible, the CFS configuration layer, run by
//! the real ansible-core and ansible-lint (scripts/ansible-tools) on the tarball
//! scripts/package built. Each test acts on a scratch image root through the role's
//! `s3credsfs_root` with a local connection (not the `chroot` connection and a debootstrap
//! root: that costs minutes on a fresh CI machine, see contrib/ansible/README.md). The
//! scratch root holds only the host's glibc, so the role's own check can run the packaged
//! binary chrooted in it, where the file is /etc/s3credsfs/config.toml.

use crate::common::text;
use crate::packaging::package_dir;
use serde_json::{json, Value};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const LAYER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/ansible");
/// Where the CSM platform CA lives; the scratch root gets the host's bundle there.
const PLATFORM_CA: &str = "/etc/pki/trust/anchors/platform-ca-certs.crt";

fn tarball() -> PathBuf {
    package_dir().join(format!("s3credsfs-{VERSION}-x86_64-linux.tar.gz"))
}

/// A scratch image root and a private HOME for Ansible's own files, both removed on drop.
struct Scratch {
    root: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Scratch {
    /// An image root with nothing but the host's glibc (what the packaged binary links
    /// to) and a CA bundle where the platform CA would be.
    fn new() -> Scratch {
        let scratch = Scratch {
            root: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
        };
        let binary = package_dir().join("s3credsfs");
        let ldd = run("ldd", &[binary.to_str().unwrap()], &[]);
        let libs = ldd
            .lines()
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')));
        for lib in libs {
            scratch.copy_in(Path::new(lib), lib);
        }
        scratch.copy_in(Path::new("/etc/ssl/certs/ca-certificates.crt"), PLATFORM_CA);
        scratch
    }

    fn copy_in(&self, from: &Path, to: &str) {
        let to = self.path(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }

    /// A path inside the root.
    fn path(&self, inside: &str) -> PathBuf {
        self.root.path().join(inside.trim_start_matches('/'))
    }

    /// The variables a site would set, on this root and the packaged tarball.
    fn vars(&self) -> Value {
        json!({
            "s3credsfs_root": self.root.path(),
            "s3credsfs_tarball": tarball(),
            "s3credsfs_api_gateway": "https://api-gw-service-nmn.local",
            "s3credsfs_ca_file": PLATFORM_CA,
            "s3credsfs_default_profile": "prod",
            "s3credsfs_settings": {"timeout": "20s", "region": "site-1"},
            "s3credsfs_profiles": {
                "prod": {},
                "tds.cmn": {
                    "api-gateway": "https://api.cmn.tds.example.com",
                    "s3-endpoint": "https://rgw-vip.cmn.tds.example.com",
                },
            },
        })
    }

    /// Runs site.yml on this root with `vars` (and `extra` flags such as `--check`).
    fn play(&self, vars: &Value, extra: &[&str]) -> Play {
        let file = self.home.path().join("vars.json");
        std::fs::write(&file, vars.to_string()).unwrap();
        let python = tool("python3");
        let inventory = format!(
            "localhost ansible_connection=local ansible_python_interpreter={}\n",
            python.display()
        );
        let inventory_file = self.home.path().join("inventory");
        std::fs::write(&inventory_file, inventory).unwrap();
        let vars_arg = format!("@{}", file.display());
        let mut args = vec![
            "-i",
            inventory_file.to_str().unwrap(),
            "-e",
            &vars_arg,
            "site.yml",
        ];
        args.extend(extra);
        let out = ansible(self.home.path(), "ansible-playbook", &args);
        Play {
            output: format!("{}{}", text(&out.stdout), text(&out.stderr)),
            ok: out.status.success(),
        }
    }

    /// `s3credsfs config check --json` by the packaged binary in the root, as every user
    /// there runs it (a stand-in login, since the site file has none).
    fn check(&self) -> Value {
        let out = Command::new("chroot")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("S3CREDSFS_TOKEN_ENV", "S3CREDSFS_SITE_CHECK_TOKEN")
            .args([self.root.path().to_str().unwrap(), "/usr/bin/s3credsfs"])
            .args(["config", "check", "--json", "--config", "/dev/null"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// One playbook run: everything it printed, and whether it succeeded.
struct Play {
    output: String,
    ok: bool,
}

impl Play {
    /// The numbers of the PLAY RECAP line (`ok=5 changed=3 ... failed=0`).
    fn recap(&self, field: &str) -> u32 {
        let line = self
            .output
            .lines()
            .skip_while(|l| !l.starts_with("PLAY RECAP"))
            .find(|l| l.starts_with("localhost"))
            .unwrap_or_else(|| panic!("no PLAY RECAP in\n{}", self.output));
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{field}=")))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {field}= in {line}"))
    }

    fn succeeded(self) -> Play {
        assert!(self.ok, "the play failed:\n{}", self.output);
        assert_eq!(self.recap("failed"), 0, "{}", self.output);
        self
    }
}

/// The venv's program (scripts/test puts scripts/ansible-tools' bin last on PATH, so its
/// python3 shadows no other tier's).
fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .filter(|dir| dir.join("ansible-playbook").is_file())
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("{name} of ansible-core's venv is not on PATH: run scripts/ansible-tools and put the directory it prints on PATH (scripts/test does)")
    })
}

/// Runs an Ansible program in contrib/ansible with a clean environment and its own HOME
/// and temporary directories (so nothing is left in the developer's), within 5 minutes.
fn ansible(home: &Path, program: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["--kill-after=10s", "300s"])
        .arg(tool(program))
        .args(args)
        .current_dir(LAYER)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        // The local connection finds ~ in the password database, not in HOME.
        .env("ANSIBLE_REMOTE_TMP", home.join("remote-tmp"))
        .env("ANSIBLE_LOCAL_TEMP", home.join("local-tmp"))
        .env("LC_ALL", "C.UTF-8")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// (mode, uid, gid) of a file, not following a link.
fn owner_and_mode(path: &Path) -> (u32, u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    (meta.permissions().mode() & 0o7777, meta.uid(), meta.gid())
}

/// What systemd itself says of the user unit in the root.
fn global_unit_state(scratch: &Scratch) -> String {
    let out = Command::new("systemctl")
        .args(["--root", scratch.root.path().to_str().unwrap()])
        .args(["--global", "is-enabled", "s3credsfs.service"])
        .output()
        .expect("systemctl (Debian package systemd; scripts/venv installs it)");
    text(&out.stdout).trim().to_string()
}

#[test]
fn ansible_lint_passes_the_layer_on_its_strictest_profile() {
    let home = tempfile::tempdir().unwrap();
    let out = ansible(
        home.path(),
        "ansible-lint",
        &["--offline", "--profile", "production", "--project-dir", "."],
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{said}");
    // Every YAML file of the layer was linted, not an empty selection.
    let yaml = walk(Path::new(LAYER))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .count();
    assert!(yaml >= 8, "{yaml} YAML files");
    let summary = said
        .lines()
        .find(|l| l.contains("failure(s)"))
        .unwrap_or_else(|| panic!("no summary in\n{said}"));
    let processed: usize = summary
        .split_once(" files processed")
        .and_then(|(before, _)| before.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no count in {summary}"));
    assert!(
        summary.contains("0 failure(s), 0 warning(s)") && processed >= yaml,
        "{summary}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        match path.is_dir() {
            true => files.extend(walk(&path)),
            false => files.push(path),
        }
    }
    files
}

/// The site file the test's variables must give, byte for byte after the header.
const EXPECTED_SETTINGS: &str = r#"api-gateway = "https://api-gw-service-nmn.local"
ca-file = "/etc/pki/trust/anchors/platform-ca-certs.crt"
default-profile = "prod"
region = "site-1"
timeout = "20s"

[profiles.prod]

[profiles."tds.cmn"]
api-gateway = "https://api.cmn.tds.example.com"
s3-endpoint = "https://rgw-vip.cmn.tds.example.com"
"#;

#[test]
fn the_playbook_installs_configures_and_enables_and_a_second_run_changes_nothing() {
    let scratch = Scratch::new();
    assert_eq!(global_unit_state(&scratch), "", "no unit before the play");
    let first = scratch.play(&scratch.vars(), &[]).succeeded();
    assert!(first.recap("changed") >= 4, "{}", first.output);
    let second = scratch.play(&scratch.vars(), &[]).succeeded();
    assert_eq!(second.recap("changed"), 0, "{}", second.output);

    // The package's files, as the tarball has them.
    let binary = scratch.path("/usr/bin/s3credsfs");
    assert_eq!(owner_and_mode(&binary), (0o755, 0, 0));
    assert_eq!(
        std::fs::read(&binary).unwrap(),
        std::fs::read(package_dir().join("s3credsfs")).unwrap()
    );
    let unit = scratch.path("/usr/lib/systemd/user/s3credsfs.service");
    assert_eq!(owner_and_mode(&unit), (0o644, 0, 0));
    // The site file: root's, 0644 in a 0755 directory, exactly the variables.
    assert_eq!(
        owner_and_mode(&scratch.path("/etc/s3credsfs")),
        (0o755, 0, 0)
    );
    let site = scratch.path("/etc/s3credsfs/config.toml");
    assert_eq!(owner_and_mode(&site), (0o644, 0, 0));
    let written = std::fs::read_to_string(&site).unwrap();
    let settings = written
        .split_once("\n\n")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no header:\n{written}"));
    assert!(
        written.starts_with("# Ansible managed: the s3credsfs role"),
        "{written}"
    );
    assert_eq!(settings, EXPECTED_SETTINGS, "{written}");
    // The real binary in the root reads it as the site file, every profile as given.
    let report = scratch.check();
    assert_eq!(report["site_config_file"], "/etc/s3credsfs/config.toml");
    assert_eq!(report["ok"], true, "{report:#}");
    let gateways: Vec<(&str, &str)> = report["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["gateway"].as_str().unwrap()))
        .collect();
    assert_eq!(
        gateways,
        [
            ("prod", "https://api-gw-service-nmn.local"),
            ("tds.cmn", "https://api.cmn.tds.example.com")
        ]
    );
    assert_eq!(report["profiles"][0]["region"], "site-1");
    // The user unit, enabled for every user the way systemctl --global enable does it,
    // and systemd agrees.
    let link = scratch.path("/etc/systemd/user/default.target.wants/s3credsfs.service");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("/usr/lib/systemd/user/s3credsfs.service")
    );
    assert_eq!(global_unit_state(&scratch), "enabled");
}

#[test]
fn a_dry_run_with_another_gateway_shows_exactly_that_line_and_changes_nothing() {
    let scratch = Scratch::new();
    scratch.play(&scratch.vars(), &[]).succeeded();
    let site = scratch.path("/etc/s3credsfs/config.toml");
    let before = std::fs::read(&site).unwrap();

    let mut moved = scratch.vars();
    moved["s3credsfs_api_gateway"] = json!("https://api.cmn.prod.example.com");
    let dry = scratch.play(&moved, &["--check", "--diff"]).succeeded();
    assert_eq!(dry.recap("changed"), 1, "{}", dry.output);
    let changes: Vec<&str> = dry
        .output
        .lines()
        .filter(|l| l.starts_with(['-', '+']) && !l.starts_with("---") && !l.starts_with("+++"))
        .collect();
    assert_eq!(
        changes,
        [
            r#"-api-gateway = "https://api-gw-service-nmn.local""#,
            r#"+api-gateway = "https://api.cmn.prod.example.com""#
        ],
        "{}",
        dry.output
    );
    assert!(
        dry.output
            .contains(&format!("--- before: {}\n", site.display())),
        "{}",
        dry.output
    );
    assert_eq!(std::fs::read(&site).unwrap(), before, "a dry run wrote");

    // The same change for real, with the unit turned off: the file has the new gateway
    // and no backup beside it, the link is gone, and systemd agrees.
    let mut off = moved.clone();
    off["s3credsfs_user_unit_enabled"] = json!(false);
    let disabled = scratch.play(&off, &[]).succeeded();
    assert_eq!(disabled.recap("changed"), 2, "{}", disabled.output);
    let written = std::fs::read_to_string(&site).unwrap();
    assert!(
        written.contains("\napi-gateway = \"https://api.cmn.prod.example.com\"\n"),
        "{written}"
    );
    let names: Vec<_> = std::fs::read_dir(scratch.path("/etc/s3credsfs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["config.toml"]);
    assert_eq!(global_unit_state(&scratch), "disabled");
}

#[test]
fn a_setting_the_product_refuses_stops_the_play_with_its_sentence_and_never_stays() {
    let scratch = Scratch::new();
    let site = scratch.path("/etc/s3credsfs/config.toml");
    // A quote and a newline in a value stay inside it: the product sees one bad timeout,
    // not a smuggled key.
    let mut bad = scratch.vars();
    bad["s3credsfs_profiles"]["tds.cmn"]["timeout"] = json!("soon\"\nbogus = \"x");
    let refused = |play: Play, outcome: &str| {
        assert!(!play.ok, "{}", play.output);
        let sentence = play
            .output
            .lines()
            .find(|l| l.contains("s3credsfs refuses the site-wide configuration"))
            .unwrap_or_else(|| panic!("no sentence in\n{}", play.output));
        assert!(
            sentence.contains(
                "for key `timeout` in config file /etc/s3credsfs/config.toml: expected a duration"
            ),
            "{sentence}"
        );
        assert!(!sentence.contains("unknown key"), "{sentence}");
        assert!(sentence.contains(outcome), "{sentence}");
    };
    // With no file before, none is left.
    refused(
        scratch.play(&bad, &[]),
        "no file is left, as there was none before",
    );
    assert!(!site.exists(), "the refused file stayed");
    // With a good one before, it is back, and no backup is left beside it.
    scratch.play(&scratch.vars(), &[]).succeeded();
    let good = std::fs::read(&site).unwrap();
    refused(scratch.play(&bad, &[]), "the file before it is back");
    assert_eq!(std::fs::read(&site).unwrap(), good);
    assert_eq!(owner_and_mode(&site), (0o644, 0, 0));
    let names: Vec<_> = std::fs::read_dir(scratch.path("/etc/s3credsfs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["config.toml"]);

    // A variable of the wrong type is stopped before anything is done, naming it.
    let mut wrong = scratch.vars();
    wrong["s3credsfs_profiles"] = json!(["prod"]);
    let play = scratch.play(&wrong, &[]);
    assert!(!play.ok, "{}", play.output);
    assert!(
        play.output.contains("s3credsfs_profiles"),
        "{}",
        play.output
    );
    assert_eq!(play.recap("changed"), 0, "{}", play.output);
}
