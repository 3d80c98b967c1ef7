//! A mount of several profiles: what each directory and the root's shared files show,
//! and that one failing profile hides no other.

use super::*;
use std::sync::Mutex as StdMutex;

/// A profile's fetcher: keys named after the profile, or the given error.
struct Named {
    name: &'static str,
    calls: AtomicUsize,
    failure: StdMutex<Option<String>>,
    clock: Arc<ManualClock>,
}

impl Fetch for Named {
    async fn fetch(&self) -> crate::error::Result<Credentials> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(why) = lock(&self.failure).clone() {
            return Err(Error::Internal(why));
        }
        Ok(Credentials {
            access_key_id: format!("AK-{}-{n}", self.name),
            secret_access_key: Secret::new(format!("secret-{}-{n}", self.name)),
            session_token: Secret::new("token"),
            expiration: self.clock.now() + chrono::Duration::hours(1),
            endpoint_url: format!("http://rgw-{}:8080", self.name),
        })
    }
}

struct Multi {
    fs: CredsFs<Named>,
    clock: Arc<ManualClock>,
    runtime: tokio::runtime::Runtime,
}

impl Multi {
    fn new(names: &[&'static str]) -> Multi {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let start = chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").unwrap();
        let clock = Arc::new(ManualClock::new(start.to_utc(), 0.0));
        let profiles = names
            .iter()
            .map(|&name| {
                let fetcher = Named {
                    name,
                    calls: AtomicUsize::new(0),
                    failure: StdMutex::new(None),
                    clock: clock.clone(),
                };
                let cache = Arc::new(
                    CredentialCache::new(
                        fetcher,
                        Duration::from_secs(1200),
                        Duration::from_secs(5),
                        "https://gw",
                    )
                    .with_time(clock.clone()),
                );
                let info = MountInfo {
                    gateway: format!("https://{name}.example"),
                    auth: "password".into(),
                    profile: name.into(),
                    region: format!("{name}-region"),
                    mountpoint: "/m".into(),
                    pid: 1,
                    min_validity_seconds: 1200,
                    container_endpoint: None,
                    log_file: None,
                    control_socket: None,
                    secret_env: None,
                };
                (cache, info)
            })
            .collect();
        let fs = CredsFs::with_profiles(profiles, None, |f: &Named| Some(f.name.into()))
            .with_time(clock.clone());
        Multi { fs, clock, runtime }
    }

    fn fetcher(&self, i: usize) -> &Named {
        self.fs.profiles[i].cache.fetcher()
    }

    fn calls(&self, i: usize) -> usize {
        self.fetcher(i).calls.load(Ordering::SeqCst)
    }

    fn fail(&self, i: usize, why: Option<&str>) {
        *lock(&self.fetcher(i).failure) = why.map(String::from);
    }

    /// Looks a path up from the root, one name at a time.
    fn lookup(&self, path: &str) -> Result<Entry, FsError> {
        let mut parent = ROOT_INO;
        let mut entry = None;
        for name in path.split('/') {
            let found = self.runtime.block_on(self.fs.lookup(parent, name))?;
            parent = found.attr.ino;
            entry = Some(found);
        }
        Ok(entry.unwrap())
    }

    fn read(&self, path: &str) -> Result<String, FsError> {
        let entry = self.lookup(path)?;
        let bytes = self.fs.read(entry.attr.ino, 0, 1 << 20)?;
        assert_eq!(bytes.len() as u64, entry.attr.size, "{path}");
        Ok(String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn list(&self, path: &str) -> Vec<String> {
        let ino = match path {
            "" => ROOT_INO,
            path => self.lookup(path).unwrap().attr.ino,
        };
        let entries = self.fs.readdir(ino, 0).unwrap();
        entries.into_iter().map(|e| e.2).skip(2).collect()
    }
}

#[test]
fn each_profile_has_a_directory_and_the_root_serves_the_default() {
    let m = Multi::new(&["prod", "tds"]);
    assert_eq!(m.list("").last().map(String::as_str), Some("profiles"));
    assert_eq!(m.list("profiles"), ["prod", "tds"]);
    assert_eq!(m.list("profiles/tds"), FILES.map(|(n, _)| n.to_string()));
    let attr = m.lookup("profiles/tds").unwrap().attr;
    assert!(attr.is_dir && attr.perm == 0o500);
    assert_eq!(m.lookup("profiles/nope").unwrap_err().errno(), libc::ENOENT);
    assert_eq!(
        m.lookup("profiles/tds/nope").unwrap_err().errno(),
        libc::ENOENT
    );
    assert_eq!((m.calls(0), m.calls(1)), (0, 0), "listing fetches nothing");

    // A profile is fetched only when something of it is read.
    let env = m.read("profiles/tds/env").unwrap();
    assert!(
        env.contains("AWS_ACCESS_KEY_ID='AK-tds-0'") && env.contains("'tds-region'"),
        "{env}"
    );
    assert_eq!((m.calls(0), m.calls(1)), (0, 1));
    let root_env = m.read("env").unwrap();
    assert!(
        root_env.contains("AK-prod-0") && !root_env.contains("tds"),
        "{root_env}"
    );
    assert_eq!(m.read("profiles/prod/env").unwrap(), root_env);
    let json = m.read("profiles/tds/json").unwrap();
    assert!(
        json.contains("\"EndpointURL\": \"http://rgw-tds:8080\""),
        "{json}"
    );
    assert_eq!((m.calls(0), m.calls(1)), (1, 1));
}

#[test]
fn the_root_credentials_config_and_rclone_hold_every_profile() {
    let m = Multi::new(&["prod", "tds"]);
    // The very first read holds every profile: each is waited for, concurrently.
    assert_eq!((m.calls(0), m.calls(1)), (0, 0));
    let creds = m.read("credentials").unwrap();
    let sections: Vec<&str> = creds.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(sections, ["[default]", "[prod]", "[tds]"], "{creds}");
    assert_eq!(
        creds.matches("aws_access_key_id = AK-prod-0\n").count(),
        2,
        "{creds}"
    );
    assert!(creds.contains("aws_access_key_id = AK-tds-0\n"), "{creds}");

    let config = m.read("config").unwrap();
    let sections: Vec<&str> = config.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(
        sections,
        ["[default]", "[profile prod]", "[profile tds]"],
        "{config}"
    );
    assert!(config.contains("endpoint_url = http://rgw-tds:8080\nregion = tds-region\nrequest_checksum_calculation = when_required\ncredential_process = cat /m/profiles/tds/json\n"), "{config}");
    assert!(config.contains("[profile prod]\nendpoint_url = http://rgw-prod:8080\nregion = prod-region\nrequest_checksum_calculation = when_required\ncredential_process = cat /m/json\n"), "{config}");

    let rclone = m.read("rclone.conf").unwrap();
    let sections: Vec<&str> = rclone.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(sections, ["[prod]", "[tds]"], "{rclone}");
    // A profile directory's files hold that profile alone.
    let tds = m.read("profiles/tds/credentials").unwrap();
    let sections: Vec<&str> = tds.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(sections, ["[tds]"]);
    let tds_config = m.read("profiles/tds/config").unwrap();
    assert!(
        tds_config.contains("[profile tds]\n") && !tds_config.contains("prod"),
        "{tds_config}"
    );
}

#[test]
fn a_failing_profile_is_a_comment_and_hides_no_other() {
    let m = Multi::new(&["prod", "tds", "lab"]);
    m.fail(
        1,
        Some("the gateway refused\n[evil]\ncredential_process = sh -c id"),
    );
    m.read("profiles/lab/json").unwrap();
    assert_eq!(m.read("profiles/tds/json").unwrap_err().errno(), libc::EIO);
    let creds = m.read("credentials").unwrap();
    assert!(
        creds.contains("[prod]\naws_access_key_id = AK-prod-0\n"),
        "{creds}"
    );
    assert!(
        creds.contains("[lab]\naws_access_key_id = AK-lab-0\n"),
        "{creds}"
    );
    let comment: Vec<&str> = creds.lines().filter(|l| l.contains("tds")).collect();
    assert_eq!(comment.len(), 1, "{creds}");
    assert!(comment[0].starts_with("# profile tds: no credentials: the gateway refused [evil] credential_process = sh -c id"), "{creds}");
    assert!(
        !creds
            .lines()
            .any(|l| l.starts_with("[evil]") || l.starts_with("credential_process")),
        "{creds}"
    );
    assert_eq!(m.read("profiles/tds/json").unwrap_err().errno(), libc::EIO);
    assert!(m.read("profiles/lab/json").is_ok());

    // The root status reports every profile.
    let status: serde_json::Value = serde_json::from_str(&m.read("status").unwrap()).unwrap();
    let profiles = status["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 3);
    assert_eq!(status["profile"], "prod");
    assert_eq!(profiles[1]["profile"], "tds");
    assert!(profiles[1]["last_error"]
        .as_str()
        .unwrap()
        .contains("the gateway refused"));
    assert_eq!(profiles[2]["last_error"], serde_json::Value::Null);
    let own: serde_json::Value =
        serde_json::from_str(&m.read("profiles/tds/status").unwrap()).unwrap();
    assert_eq!(own["profile"], "tds");
    assert!(own.get("profiles").is_none());

    // Every profile failing: no file at all.
    m.fail(0, Some("down"));
    m.fail(2, Some("down"));
    m.clock.advance(Duration::from_secs(3600));
    assert_eq!(m.lookup("credentials").unwrap_err().errno(), libc::EIO);
}

#[test]
fn the_shared_files_follow_each_profile_s_refreshes_and_recoveries() {
    let m = Multi::new(&["prod", "tds"]);
    m.fail(1, Some("down"));
    assert!(m.read("profiles/tds/json").is_err());
    let first = m.lookup("credentials").unwrap().attr.ino;
    let tds_dir_before = m.lookup("profiles/prod/json").unwrap().attr.ino;
    assert_eq!(
        m.lookup("credentials").unwrap().attr.ino,
        first,
        "same inputs, same inode"
    );
    // tds recovers (after its backoff): the shared file gets a new inode holding it.
    m.fail(1, None);
    m.clock.advance(Duration::from_secs(600));
    m.read("profiles/tds/json").unwrap();
    let recovered = m.lookup("credentials").unwrap().attr.ino;
    assert_ne!(recovered, first);
    assert!(m.read("credentials").unwrap().contains("[tds]\n"));
    // The old inode still serves what it held, until its credentials expire.
    let old = String::from_utf8(m.fs.read(first, 0, 1 << 20).unwrap().to_vec()).unwrap();
    assert!(old.contains("# profile tds: no credentials: down"), "{old}");
    // prod refreshes: the shared file and prod's own change; tds's own does not.
    let tds_own = m.lookup("profiles/tds/json").unwrap().attr.ino;
    m.clock.advance(Duration::from_secs(41 * 60 - 600));
    assert_ne!(
        m.lookup("profiles/prod/json").unwrap().attr.ino,
        tds_dir_before
    );
    assert_ne!(m.lookup("credentials").unwrap().attr.ino, recovered);
    assert_eq!(m.calls(0), 2);
    assert_eq!(m.lookup("profiles/tds/json").unwrap().attr.ino, tds_own);
}

#[test]
fn a_single_named_profile_keeps_its_one_section_as_before_profiles() {
    // `--profile cray` without tables: the root files are that profile's alone.
    let m = Multi::new(&["cray"]);
    let creds = m.read("credentials").unwrap();
    let sections: Vec<&str> = creds.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(sections, ["[cray]"], "{creds}");
    assert_eq!(m.read("profiles/cray/credentials").unwrap(), creds);
    // Its status is as before profiles too: no list of one.
    let status: serde_json::Value = serde_json::from_str(&m.read("status").unwrap()).unwrap();
    assert_eq!(status["profile"], "cray");
    assert!(status.get("profiles").is_none(), "{status}");
}

#[test]
fn a_long_error_is_cut_short_in_its_comment() {
    let m = Multi::new(&["prod", "tds"]);
    m.fail(1, Some(&"the gateway said no. ".repeat(100)));
    assert!(m.read("profiles/tds/json").is_err());
    let creds = m.read("credentials").unwrap();
    let comment = creds
        .lines()
        .find(|l| l.starts_with("# profile tds"))
        .unwrap();
    assert!((500..1000).contains(&comment.len()), "{}", comment.len());
}

#[test]
fn inodes_past_the_last_profile_name_nothing() {
    let m = Multi::new(&["prod", "tds"]);
    let beyond = profile_dir_ino(2);
    assert_eq!(m.fs.getattr(beyond).unwrap_err().errno(), libc::ENOENT);
    assert_eq!(m.fs.readdir(beyond, 0).unwrap_err().errno(), libc::ENOENT);
    let lookup = m.runtime.block_on(m.fs.lookup(beyond, "json"));
    assert_eq!(lookup.unwrap_err().errno(), libc::ENOENT);
    assert!(m.fs.getattr(profile_dir_ino(1)).unwrap().is_dir);
    assert!(m.fs.getattr(PROFILES_INO).unwrap().is_dir);
    assert_eq!(decode(PROFILES_INO), Ino::Profiles);
    assert_eq!((m.calls(0), m.calls(1)), (0, 0));
}

#[test]
fn listings_name_their_parents_and_a_file_is_no_directory() {
    let m = Multi::new(&["prod", "tds"]);
    let parent = |ino: u64| m.fs.readdir(ino, 0).unwrap()[1].0;
    assert_eq!(parent(ROOT_INO), ROOT_INO);
    assert_eq!(parent(PROFILES_INO), ROOT_INO);
    assert_eq!(parent(profile_dir_ino(1)), PROFILES_INO);
    let json = m.lookup("profiles/tds/json").unwrap().attr.ino;
    assert_eq!(m.fs.readdir(json, 0).unwrap_err().errno(), libc::ENOTDIR);
    let status = m.lookup("status").unwrap().attr.ino;
    assert_eq!(m.fs.readdir(status, 0).unwrap_err().errno(), libc::ENOTDIR);
}

#[test]
fn the_root_config_waits_for_every_profile_s_endpoint() {
    // Its sections carry each system's endpoint, which only credentials bring.
    let m = Multi::new(&["prod", "tds"]);
    let config = m.read("config").unwrap();
    assert!(
        config.contains("[profile tds]\nendpoint_url = http://rgw-tds:8080\n"),
        "{config}"
    );
    assert_eq!((m.calls(0), m.calls(1)), (1, 1));
}
