//! The `status` file's JSON and its one-screen rendering for people. No secret enters it.

use crate::cache::CacheStatus;
use crate::untrusted::{clean, MAX_QUOTED};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// Facts about a mount that do not change while it runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountInfo {
    pub gateway: String,
    pub auth: String,
    pub profile: String,
    /// The region written into the files (not part of `status`).
    pub region: String,
    pub mountpoint: String,
    pub pid: u32,
    pub min_validity_seconds: u64,
    /// The container credentials endpoint's URL (never its token), when enabled.
    pub container_endpoint: Option<String>,
    /// The background daemon's log file; none in the foreground (stderr) or without one.
    pub log_file: Option<String>,
    /// The control socket's abstract name (random; see `control.rs`): `refresh` learns it
    /// here, where only the mounting user can read it.
    pub control_socket: Option<String>,
    /// The variable the login secret is read from (`--password-env` and the like), by
    /// name: `exec` keeps it from its command even when the mount's settings are not its.
    pub secret_env: Option<String>,
}

/// The document in `<mount>/status` and what `s3credsfs status --json` prints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusDoc {
    pub state: String,
    pub expiration: Option<String>,
    pub seconds_remaining: Option<i64>,
    pub last_refresh: Option<String>,
    pub refresh_count: u64,
    pub last_error: Option<String>,
    pub gateway: String,
    pub auth: String,
    pub user: Option<String>,
    pub profile: String,
    pub mountpoint: String,
    pub pid: u32,
    pub min_validity_seconds: u64,
    pub container_endpoint: Option<String>,
    pub log_file: Option<String>,
    /// The control socket's name; absent from a daemon that predates random names.
    #[serde(default)]
    pub control_socket: Option<String>,
    /// The variable the login secret is read from, by name (see [`MountInfo`]).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// This host's clock against the gateway's, when they differ by more than 30 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_warning: Option<String>,
    /// Every profile's document, in the root `status` of a mount of several profiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<Vec<StatusDoc>>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl StatusDoc {
    /// Combines the cache's view with the mount's facts at `now`.
    pub fn new(
        cache: &CacheStatus,
        info: &MountInfo,
        user: Option<String>,
        now: DateTime<Utc>,
    ) -> Self {
        StatusDoc {
            state: cache.state.name().to_string(),
            expiration: cache.expiration.map(rfc3339),
            seconds_remaining: cache.expiration.map(|e| (e - now).num_seconds().max(0)),
            last_refresh: cache.last_refresh.map(rfc3339),
            refresh_count: cache.refresh_count,
            last_error: cache.last_error.clone(),
            gateway: info.gateway.clone(),
            auth: info.auth.clone(),
            user,
            profile: info.profile.clone(),
            mountpoint: info.mountpoint.clone(),
            pid: info.pid,
            min_validity_seconds: info.min_validity_seconds,
            container_endpoint: info.container_endpoint.clone(),
            log_file: info.log_file.clone(),
            control_socket: info.control_socket.clone(),
            secret_env: info.secret_env.clone(),
            clock_warning: None,
            profiles: None,
        }
    }

    /// The file's bytes: pretty JSON and a newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// When these credentials expire, as `status` shows it: the time and "(in 50m)", or
    /// "(expired 3h 5m ago)" once past.
    pub fn expiry_at(&self, now: DateTime<Utc>) -> String {
        let Some(expiration) = &self.expiration else {
            return "-".into();
        };
        let shown = clean(expiration, MAX_QUOTED);
        let left = DateTime::parse_from_rfc3339(expiration)
            .ok()
            .map(|e| (e.with_timezone(&Utc) - now).num_seconds())
            .or(self.seconds_remaining);
        let span =
            |s: i64| humantime::format_duration(std::time::Duration::from_secs(s.unsigned_abs()));
        match left {
            Some(s) if s > 0 => format!("{shown} (in {})", span(s)),
            Some(s) => format!("{shown} (expired {} ago)", span(s)),
            None => shown,
        }
    }

    /// One screen for a person at the current time (see [`Self::to_human_at`]).
    pub fn to_human(&self) -> String {
        self.to_human_at(Utc::now())
    }

    /// One screen for a person at `now`. The document is read back from a mount, so every
    /// text in it is cleaned of control characters and cut short before it reaches the
    /// terminal.
    pub fn to_human_at(&self, now: DateTime<Utc>) -> String {
        let show = |v: &str| clean(v, MAX_QUOTED * 5);
        let or_dash = |v: &Option<String>| v.as_deref().map_or_else(|| "-".into(), show);
        let mut out = format!(
            "s3credsfs mounted at {} (pid {})\n\
             state:        {}\n\
             expires:      {}\n\
             last refresh: {} ({} refreshes)\n\
             last error:   {}\n\
             gateway:      {}\n\
             auth:         {} as {}\n\
             profile:      {}\n\
             log:          {}\n",
            show(&self.mountpoint),
            self.pid,
            show(&self.state),
            self.expiry_at(now),
            or_dash(&self.last_refresh),
            self.refresh_count,
            or_dash(&self.last_error),
            show(&self.gateway),
            show(&self.auth),
            or_dash(&self.user),
            show(&self.profile),
            or_dash(&self.log_file),
        );
        if let Some(warning) = &self.clock_warning {
            out.push_str(&format!("clock:        {}\n", show(warning)));
        }
        if let Some(url) = &self.container_endpoint {
            out.push_str(&format!(
                "container:    {} (source container-env)\n",
                show(url)
            ));
        }
        if let Some(profiles) = &self.profiles {
            out.push_str("profiles:\n");
            for p in profiles {
                out.push_str(&format!(
                    "  {}: {}, expires {}, gateway {}, last error: {}\n",
                    show(&p.profile),
                    show(&p.state),
                    p.expiry_at(now),
                    show(&p.gateway),
                    or_dash(&p.last_error),
                ));
            }
            out.push_str("              (each in profiles/NAME/; credentials, config and rclone.conf hold them all)\n");
        }
        out.push_str(&format!(
            "files:        credentials config env json s3cfg rclone.conf status (refreshed when under {} of validity)\n",
            humantime::format_duration(std::time::Duration::from_secs(self.min_validity_seconds))
        ));
        out
    }
}

#[cfg(test)]
impl MountInfo {
    /// A mount of profile `profile` with nothing optional set, for tests of what is shown.
    pub(crate) fn for_test(profile: &str) -> MountInfo {
        MountInfo {
            gateway: "https://gw".into(),
            auth: "password".into(),
            profile: profile.into(),
            region: "us-east-1".into(),
            mountpoint: "/m".into(),
            pid: 42,
            min_validity_seconds: 1200,
            container_endpoint: None,
            log_file: None,
            control_socket: None,
            secret_env: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::State;

    #[test]
    fn status_document_and_screen() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let cache = CacheStatus {
            state: State::Fresh,
            expiration: Some(now + chrono::Duration::seconds(3000)),
            last_refresh: Some(now - chrono::Duration::seconds(600)),
            refresh_count: 2,
            last_error: None,
        };
        let info = MountInfo {
            gateway: "https://gw".into(),
            auth: "password".into(),
            profile: "default".into(),
            region: "us-east-1".into(),
            mountpoint: "/home/u/.s3creds".into(),
            pid: 42,
            min_validity_seconds: 1200,
            container_endpoint: None,
            log_file: Some("/home/u/.local/state/s3credsfs/s3creds.log".into()),
            control_socket: None,
            secret_env: Some("PW".into()),
        };
        let doc = StatusDoc::new(&cache, &info, Some("vers".into()), now);
        let json: serde_json::Value = serde_json::from_str(&doc.to_json()).unwrap();
        assert_eq!(json["state"], "fresh");
        assert_eq!(json["seconds_remaining"], 3000);
        assert_eq!(json["expiration"], "2027-01-15T08:50:00Z");
        assert_eq!(json["last_error"], serde_json::Value::Null);
        assert_eq!(json["user"], "vers");
        assert_eq!(json["secret_env"], "PW");
        let screen = doc.to_human_at(now);
        assert!(!screen.contains("clock:"), "{screen}");
        assert!(json.get("clock_warning").is_none(), "{json}");
        let skewed = StatusDoc {
            clock_warning: Some("this host's clock is 2h behind the gateway's".into()),
            ..doc.clone()
        };
        assert!(skewed
            .to_human_at(now)
            .contains("clock:        this host's clock is 2h behind the gateway's\n"));
        assert!(skewed.to_json().contains("\"clock_warning\": \"this host"));
        assert!(screen.contains("state:        fresh\n"), "{screen}");
        assert!(
            screen.contains("expires:      2027-01-15T08:50:00Z (in 50m)\n"),
            "{screen}"
        );
        assert!(
            screen.contains("auth:         password as vers\n"),
            "{screen}"
        );
        assert!(
            screen.contains("log:          /home/u/.local/state/s3credsfs/s3creds.log\n"),
            "{screen}"
        );
    }

    #[test]
    fn a_hostile_document_cannot_steer_the_terminal() {
        let evil = "x\x1b]0;title\x07\x1b[2J\nstate:        fresh\u{202e}";
        let doc: StatusDoc = serde_json::from_value(serde_json::json!({
            "state": evil, "expiration": evil, "seconds_remaining": -5,
            "last_refresh": evil, "refresh_count": 1, "last_error": evil, "gateway": evil,
            "auth": evil, "user": evil, "profile": evil, "mountpoint": evil, "pid": 1,
            "min_validity_seconds": 1, "container_endpoint": evil, "log_file": evil,
        }))
        .unwrap();
        let screen = doc.to_human();
        assert_eq!(screen.lines().count(), 11, "{screen}");
        assert!(!screen.contains(['\x1b', '\x07', '\u{202e}']), "{screen:?}");
        assert!(screen.contains("(expired 5s ago)"), "{screen}");
    }

    /// At the second they expire, credentials are no longer valid: shown as expired.
    #[test]
    fn credentials_expiring_now_are_shown_expired() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let at = |seconds: i64| StatusDoc {
            expiration: Some(rfc3339(now + chrono::Duration::seconds(seconds))),
            ..StatusDoc::new(
                &CacheStatus {
                    state: State::Fresh,
                    expiration: None,
                    last_refresh: None,
                    refresh_count: 0,
                    last_error: None,
                },
                &MountInfo::for_test("default"),
                None,
                now,
            )
        };
        assert_eq!(
            at(0).expiry_at(now),
            "2027-01-15T08:00:00Z (expired 0s ago)"
        );
        assert_eq!(at(1).expiry_at(now), "2027-01-15T08:00:01Z (in 1s)");
    }

    /// A long last error (a gateway's page quoted in it, say) is shown up to five
    /// quotes' length, then cut, so one field cannot fill the screen.
    #[test]
    fn long_texts_are_shown_up_to_a_limit() {
        let info = MountInfo::for_test("default");
        let doc = |error: String| StatusDoc {
            last_error: Some(error),
            ..StatusDoc::new(
                &CacheStatus {
                    state: State::Error,
                    expiration: None,
                    last_refresh: None,
                    refresh_count: 0,
                    last_error: None,
                },
                &info,
                None,
                DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            )
        };
        let whole = "e".repeat(MAX_QUOTED * 5);
        let screen = doc(whole.clone()).to_human();
        assert!(
            screen.contains(&format!("last error:   {whole}\n")),
            "{screen}"
        );
        let screen = doc("e".repeat(MAX_QUOTED * 5 + 1)).to_human();
        assert!(
            screen.contains(&format!("last error:   {whole}…\n")),
            "{screen}"
        );
    }

    #[test]
    fn long_expired_credentials_say_how_long_ago() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let cache = CacheStatus {
            state: State::Error,
            expiration: Some(now - chrono::Duration::seconds(3 * 3600 + 300)),
            last_refresh: Some(now - chrono::Duration::seconds(4 * 3600 + 300)),
            refresh_count: 1,
            last_error: Some("cannot reach https://gw".into()),
        };
        let info = MountInfo::for_test("default");
        let mut doc = StatusDoc::new(&cache, &info, None, now);
        assert_eq!(doc.seconds_remaining, Some(0));
        // Read a while after the document was written.
        let later = now + chrono::Duration::seconds(60);
        let screen = doc.to_human_at(later);
        assert!(
            screen.contains("expires:      2027-01-15T04:55:00Z (expired 3h 6m ago)\n"),
            "{screen}"
        );
        assert!(!screen.contains("(in "), "{screen}");
        doc.profiles = Some(vec![doc.clone()]);
        assert!(
            doc.to_human_at(later)
                .contains("  default: error, expires 2027-01-15T04:55:00Z (expired 3h 6m ago), "),
            "{}",
            doc.to_human_at(later)
        );
    }
}
