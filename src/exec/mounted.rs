//! Credentials from a running mount: its `json` file (the `credential_process` JSON)
//! read strictly, and the region from its `config` file. The mount is only as trustworthy
//! as whatever is mounted there, so anything unexpected is refused and the caller fetches
//! instead.

use crate::cache::Fetch;
use crate::creds::{parse_sts_reply, Credentials, ReplyProblem};
use crate::error::{Error, Result};
use crate::status::StatusDoc;
use chrono::Utc;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::{Zeroize, Zeroizing};

/// The largest mounted file read; ours are a few KiB.
const MAX_FILE: u64 = 64 * 1024;

// The keys of the `json` file, each expected exactly once.
use crate::render::JSON_KEYS;

/// Why a running mount's files were not used (the caller says so and fetches instead):
/// a phrase naming the file, never quoting a value.
#[derive(Debug, thiserror::Error)]
pub enum MountedProblem {
    /// The file could not be read.
    #[error("cannot read {} ({source})", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is larger than any the mount writes.
    #[error("{} is larger than {MAX_FILE} bytes", .0.display())]
    TooLarge(PathBuf),
    /// The profile directory's `status` is not the daemon's document.
    #[error("{}/status is not a status document", .0.display())]
    NotStatus(PathBuf),
    /// The profile directory's `config` is not UTF-8.
    #[error("{}/config is not text", .0.display())]
    ConfigNotText(PathBuf),
    /// The profile directory's `config` holds no single plain region.
    #[error("{}/config: {problem}", dir.display())]
    Region {
        dir: PathBuf,
        #[source]
        problem: RegionProblem,
    },
    /// The `json` file is not credentials we would hand out.
    #[error("{}: {problem}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        problem: JsonProblem,
    },
}

/// What is wrong with a mounted `json` file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonProblem {
    #[error("it is not JSON")]
    NotJson,
    #[error("it is not a JSON object")]
    NotObject,
    #[error("its keys are not exactly those of credential_process JSON")]
    Keys,
    #[error("its \"Version\" is not 1")]
    Version,
    #[error("it cannot be re-encoded")]
    NotEncodable,
    /// A field fails the checks an STS reply's would.
    #[error(transparent)]
    Field(#[from] ReplyProblem),
    /// The credentials' expiration (RFC 3339) is past.
    #[error("its credentials expired at {0}")]
    Expired(String),
}

/// What is wrong with a mounted `config` file's region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegionProblem {
    #[error("it has no `region = ` line")]
    Missing,
    #[error("it has more than one `region = ` line")]
    Repeated,
    #[error("its region is not 1 to 64 letters, digits, `_`, `.` or `-`")]
    Invalid,
}

/// One profile's files in a running mount; reading `json` again gives its current
/// credentials, so it can feed a [`crate::cache::CredentialCache`].
#[derive(Debug, Clone)]
pub struct MountFiles {
    dir: PathBuf,
    /// The region the mount writes for this profile.
    pub region: String,
    /// The mount's own refresh margin: its files hold at least this much validity.
    pub min_validity: Duration,
    /// The gateway the profile's credentials come from (its `status` says).
    pub gateway: String,
}

/// The default profile of the mount at `mount`, as its root `status` names it.
pub fn default_profile(mount: &Path) -> Option<String> {
    let status = read_file(&mount.join("status")).ok()?;
    let status: StatusDoc = serde_json::from_slice(&status).ok()?;
    Some(status.profile)
}

/// The variables the login secrets of the mount at `mount` are read from (each profile's,
/// by name), as its root `status` says; none when it says nothing readable.
pub fn secret_envs(mount: &Path) -> Vec<String> {
    let Some(status) = read_file(&mount.join("status"))
        .ok()
        .and_then(|text| serde_json::from_slice::<StatusDoc>(&text).ok())
    else {
        return Vec::new();
    };
    std::iter::once(&status)
        .chain(status.profiles.iter().flatten())
        .filter_map(|doc| doc.secret_env.clone())
        .collect()
}

fn read_file(path: &Path) -> std::result::Result<Zeroizing<Vec<u8>>, MountedProblem> {
    let mut bytes = Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut bytes))
        .map_err(|source| MountedProblem::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(MountedProblem::TooLarge(path.to_path_buf()));
    }
    Ok(bytes)
}

/// Zeroes every string in a parsed JSON value (the secrets among them) before it is
/// dropped.
fn zeroize_strings(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) => text.zeroize(),
        serde_json::Value::Array(items) => items.iter_mut().for_each(zeroize_strings),
        serde_json::Value::Object(map) => map.values_mut().for_each(zeroize_strings),
        _ => {}
    }
}

/// Parses the `json` file: an object with exactly [`JSON_KEYS`], `Version` 1, and fields
/// that pass the same checks as an STS reply. The problem never quotes a value.
pub fn parse_json(bytes: &[u8]) -> std::result::Result<Credentials, JsonProblem> {
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|_| JsonProblem::NotJson)?;
    let checked = (|| {
        let map = value.as_object_mut().ok_or(JsonProblem::NotObject)?;
        if map.len() != JSON_KEYS.len() || !JSON_KEYS.iter().all(|k| map.contains_key(*k)) {
            return Err(JsonProblem::Keys);
        }
        if map.remove("Version") != Some(serde_json::json!(1)) {
            return Err(JsonProblem::Version);
        }
        let mut reply = serde_json::json!({ "Credentials": std::mem::take(map) });
        let mut body = Zeroizing::new(Vec::new());
        let written = serde_json::to_writer(&mut *body, &reply);
        zeroize_strings(&mut reply);
        written.map_err(|_| JsonProblem::NotEncodable)?;
        Ok(parse_sts_reply(&body)?)
    })();
    zeroize_strings(&mut value);
    let creds = checked?;
    if creds.expiration <= Utc::now() {
        return Err(JsonProblem::Expired(creds.expiration_rfc3339()));
    }
    Ok(creds)
}

/// The region of a mounted `config` file: its one `region = VALUE` line, holding 1 to 64
/// letters, digits, `_`, `.` or `-` (what the settings accept).
pub fn parse_region(text: &str) -> std::result::Result<String, RegionProblem> {
    let mut found = text.lines().filter_map(|l| l.strip_prefix("region = "));
    let region = match (found.next(), found.next()) {
        (Some(region), None) => region,
        (None, _) => return Err(RegionProblem::Missing),
        (Some(_), Some(_)) => return Err(RegionProblem::Repeated),
    };
    let valid = (1..=64).contains(&region.len())
        && region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !valid {
        return Err(RegionProblem::Invalid);
    }
    Ok(region.to_string())
}

impl MountFiles {
    /// Checks the profile's files in `dir` (its `status`, `config` and `json`) and returns
    /// them with the credentials they hold now.
    pub fn open(dir: &Path) -> std::result::Result<(MountFiles, Credentials), MountedProblem> {
        let status = read_file(&dir.join("status"))?;
        let status: StatusDoc = serde_json::from_slice(&status)
            .map_err(|_| MountedProblem::NotStatus(dir.to_path_buf()))?;
        let config = read_file(&dir.join("config"))?;
        let config = std::str::from_utf8(&config)
            .map_err(|_| MountedProblem::ConfigNotText(dir.to_path_buf()))?;
        let region = parse_region(config).map_err(|problem| MountedProblem::Region {
            dir: dir.to_path_buf(),
            problem,
        })?;
        let files = MountFiles {
            dir: dir.to_path_buf(),
            region,
            min_validity: Duration::from_secs(status.min_validity_seconds.max(1)),
            gateway: status.gateway,
        };
        let creds = files.read()?;
        Ok((files, creds))
    }

    /// The credentials the mount serves now.
    fn read(&self) -> std::result::Result<Credentials, MountedProblem> {
        let path = self.dir.join("json");
        parse_json(&read_file(&path)?).map_err(|problem| MountedProblem::Json { path, problem })
    }
}

impl Fetch for MountFiles {
    async fn fetch(&self) -> Result<Credentials> {
        let files = self.clone();
        // A read may wait for the mount's own refresh: keep it off the runtime's threads.
        tokio::task::spawn_blocking(move || files.read())
            .await
            .map_err(|_| Error::Internal("reading the mounted credentials panicked".into()))?
            .map_err(|problem| {
                Error::Token(format!(
                    "the mounted credentials are unusable ({problem}); check the mount with `s3credsfs status`"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(tweak: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> Vec<u8> {
        let mut value = serde_json::json!({
            "Version": 1,
            "AccessKeyId": "AKIDEXAMPLE",
            "SecretAccessKey": "MARKs3cr3tMARK",
            "SessionToken": "tok/en+=",
            "Expiration": "2099-01-01T00:00:00Z",
            "EndpointURL": "http://rgw.local:8080",
        });
        tweak(value.as_object_mut().unwrap());
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn reads_what_the_mount_serves() {
        let creds = parse_json(&json(|_| {})).unwrap();
        assert_eq!(creds.access_key_id, "AKIDEXAMPLE");
        assert_eq!(creds.secret_access_key.expose(), "MARKs3cr3tMARK");
        assert_eq!(creds.session_token.expose(), "tok/en+=");
        assert_eq!(creds.endpoint_url, "http://rgw.local:8080");
        assert_eq!(creds.expiration_rfc3339(), "2099-01-01T00:00:00Z");
    }

    #[test]
    fn refuses_anything_else_without_quoting_it() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "not JSON"),
            (b"[1]".to_vec(), "not a JSON object"),
            (
                json(|m| {
                    m.insert("Extra".into(), 1.into());
                }),
                "keys are not exactly",
            ),
            (
                json(|m| {
                    m.remove("SessionToken");
                }),
                "keys are not exactly",
            ),
            (
                json(|m| {
                    m.insert("Version".into(), 2.into());
                }),
                "\"Version\" is not 1",
            ),
            (
                json(|m| {
                    m.insert("SecretAccessKey".into(), "MARKs3cr3tMARK\nx = y".into());
                }),
                "SecretAccessKey",
            ),
            (
                json(|m| {
                    m.insert("AccessKeyId".into(), "AK ID".into());
                }),
                "AccessKeyId",
            ),
            (
                json(|m| {
                    m.insert("EndpointURL".into(), "file:///etc".into());
                }),
                "EndpointURL",
            ),
            (
                json(|m| {
                    m.insert("Expiration".into(), "2001-01-01T00:00:00Z".into());
                }),
                "expired at 2001",
            ),
        ];
        for (bytes, expected) in cases {
            let problem = parse_json(&bytes).expect_err(expected).to_string();
            assert!(problem.contains(expected), "{expected}: {problem}");
            assert!(!problem.contains("MARK"), "{problem}");
        }
    }

    fn status(profile: &str, secret_env: Option<&str>) -> StatusDoc {
        StatusDoc {
            state: "valid".into(),
            expiration: None,
            seconds_remaining: None,
            last_refresh: None,
            refresh_count: 1,
            last_error: None,
            gateway: "https://api.example/".into(),
            auth: "password".into(),
            user: None,
            profile: profile.into(),
            mountpoint: "/m".into(),
            pid: 1,
            min_validity_seconds: 0,
            container_endpoint: None,
            log_file: None,
            control_socket: None,
            secret_env: secret_env.map(Into::into),
            clock_warning: None,
            profiles: None,
        }
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    #[test]
    fn a_mounted_file_is_read_up_to_its_cap_and_refused_one_byte_over() {
        let dir = tempfile::tempdir().unwrap();
        let at_cap = dir.path().join("at-cap");
        std::fs::write(&at_cap, vec![b'x'; MAX_FILE as usize]).unwrap();
        assert_eq!(read_file(&at_cap).unwrap().len() as u64, MAX_FILE);
        assert_eq!(MAX_FILE, 65_536);
        let over = dir.path().join("over");
        std::fs::write(&over, vec![b'x'; MAX_FILE as usize + 1]).unwrap();
        assert!(matches!(read_file(&over), Err(MountedProblem::TooLarge(p)) if p == over));
        let small = dir.path().join("small");
        std::fs::write(&small, b"ab").unwrap();
        assert_eq!(read_file(&small).unwrap().as_slice(), b"ab");
        let missing = dir.path().join("missing");
        assert!(matches!(
            read_file(&missing),
            Err(MountedProblem::Unreadable { .. })
        ));
    }

    #[test]
    fn the_root_status_names_the_default_profile_and_every_secret_variable() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(default_profile(dir.path()), None, "no status");
        assert!(secret_envs(dir.path()).is_empty());
        let mut root = status("team", Some("PW_ROOT"));
        root.profiles = Some(vec![
            status("team", Some("PW_TEAM")),
            status("other", None),
            status("third", Some("PW_THIRD")),
        ]);
        write(dir.path(), "status", &serde_json::to_vec(&root).unwrap());
        assert_eq!(default_profile(dir.path()).as_deref(), Some("team"));
        assert_eq!(secret_envs(dir.path()), ["PW_ROOT", "PW_TEAM", "PW_THIRD"]);
        write(dir.path(), "status", b"not a status");
        assert_eq!(default_profile(dir.path()), None);
        assert!(secret_envs(dir.path()).is_empty());
    }

    #[test]
    fn a_profile_directory_gives_its_region_margin_gateway_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut doc = status("default", None);
        doc.min_validity_seconds = 600;
        write(dir.path(), "status", &serde_json::to_vec(&doc).unwrap());
        write(dir.path(), "config", b"[default]\nregion = eu-2\n");
        write(dir.path(), "json", &json(|_| {}));
        let (files, creds) = MountFiles::open(dir.path()).unwrap();
        assert_eq!(files.region, "eu-2");
        assert_eq!(files.min_validity, Duration::from_secs(600));
        assert_eq!(files.gateway, "https://api.example/");
        assert_eq!(creds.access_key_id, "AKIDEXAMPLE");
        // Read again as a credential source: what the `json` file holds now.
        write(
            dir.path(),
            "json",
            &json(|m| {
                m.insert("AccessKeyId".into(), "AKIDNEWER".into());
            }),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let fetched = runtime.block_on(files.fetch()).unwrap();
        assert_eq!(fetched.access_key_id, "AKIDNEWER");
        write(dir.path(), "json", b"{}");
        let problem = runtime.block_on(files.fetch()).unwrap_err().to_string();
        assert!(
            problem.contains("the mounted credentials are unusable"),
            "{problem}"
        );
        // A margin of 0 would refresh never: at least a second.
        doc.min_validity_seconds = 0;
        write(dir.path(), "status", &serde_json::to_vec(&doc).unwrap());
        write(dir.path(), "json", &json(|_| {}));
        let (files, _) = MountFiles::open(dir.path()).unwrap();
        assert_eq!(files.min_validity, Duration::from_secs(1));
        write(dir.path(), "status", b"{}");
        assert!(matches!(
            MountFiles::open(dir.path()),
            Err(MountedProblem::NotStatus(_))
        ));
    }

    #[test]
    fn every_string_of_a_parsed_value_is_zeroed_at_every_depth() {
        let mut value = serde_json::json!({
            "top": "secret",
            "list": ["in a list", 1, {"deep": "in an object in a list"}],
            "object": {"inner": "in an object"},
        });
        zeroize_strings(&mut value);
        assert_eq!(
            value,
            serde_json::json!({
                "top": "",
                "list": ["", 1, {"deep": ""}],
                "object": {"inner": ""},
            })
        );
    }

    #[test]
    fn the_region_is_one_plain_line() {
        let config = "# AWS config\n[default]\nendpoint_url = http://x\nregion = eu-west-1\n";
        assert_eq!(parse_region(config).unwrap(), "eu-west-1");
        for (bad, expected) in [
            ("[default]\n", "no `region = ` line"),
            ("region = a\nregion = b\n", "more than one"),
            ("region = \n", "is not 1 to 64"),
            ("region = a b\n", "is not 1 to 64"),
            ("region = a\x1b[2J\n", "is not 1 to 64"),
            (&format!("region = {}\n", "a".repeat(65)), "is not 1 to 64"),
        ] {
            let problem = parse_region(bad).expect_err(bad).to_string();
            assert!(problem.contains(expected), "{bad:?}: {problem}");
        }
    }
}
