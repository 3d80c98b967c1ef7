//! The exit statuses of every command but `status` (whose statuses are the monitoring
//! plugin convention, see `commands::status`): one list, from which `main` exits, the
//! man page's EXIT STATUS section is written, and the systemd unit's
//! `RestartPreventExitStatus=` is checked, so the three cannot drift apart.
//!
//! The numbers follow sysexits.h, so a supervisor can tell a mistake a restart cannot
//! fix (a wrong setting, a refused password, where a restart loop would lock the account
//! in Keycloak) from an outage that a later attempt may survive.

/// Why a command failed, as its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// A failure that fits no other class.
    Failure,
    /// The command line could not be parsed (clap's own status).
    Usage,
    /// The gateway could not be reached, timed out, or answered with an error or a reply
    /// that is not what its API promises.
    Gateway,
    /// A bug in s3credsfs.
    Internal,
    /// The system refused a resource: a pipe, a fork, a thread, a signal handler.
    System,
    /// FUSE is unavailable or the kernel refused the mount.
    Fuse,
    /// A login token is missing, expired or no longer active: renew it (`cray auth login`)
    /// and try again.
    TokenExpired,
    /// Keycloak refused the password or client secret, or the gateway refused the account.
    LoginRefused,
    /// A setting, a file it names, or the mountpoint is wrong.
    Config,
}

impl ExitStatus {
    /// Every status, in the order the man page lists them.
    pub const ALL: [ExitStatus; 9] = [
        ExitStatus::Failure,
        ExitStatus::Usage,
        ExitStatus::Gateway,
        ExitStatus::Internal,
        ExitStatus::System,
        ExitStatus::Fuse,
        ExitStatus::TokenExpired,
        ExitStatus::LoginRefused,
        ExitStatus::Config,
    ];

    /// The number the process exits with.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Failure => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Gateway => 69,      // EX_UNAVAILABLE
            ExitStatus::Internal => 70,     // EX_SOFTWARE
            ExitStatus::System => 71,       // EX_OSERR
            ExitStatus::Fuse => 72,         // EX_OSFILE
            ExitStatus::TokenExpired => 75, // EX_TEMPFAIL
            ExitStatus::LoginRefused => 77, // EX_NOPERM
            ExitStatus::Config => 78,       // EX_CONFIG
        }
    }

    /// The status a number stands for (the daemon relays it to its parent as a number).
    pub fn from_code(code: u8) -> Option<ExitStatus> {
        ExitStatus::ALL.into_iter().find(|s| s.code() == code)
    }

    /// Whether restarting the same command unchanged may succeed. Not for a wrong setting
    /// or a refused login: those need a person, and retrying a refused password every few
    /// seconds gets the account locked by Keycloak's brute-force detection.
    pub fn restart_helps(self) -> bool {
        !matches!(
            self,
            ExitStatus::Usage | ExitStatus::LoginRefused | ExitStatus::Config
        )
    }

    /// What the status means, for the man page and the README.
    pub fn meaning(self) -> &'static str {
        match self {
            ExitStatus::Failure => "any other failure (for example `refresh` could not reach the daemon, or the background daemon died before mounting)",
            ExitStatus::Usage => "the command line could not be parsed",
            ExitStatus::Gateway => "the gateway (Keycloak or the STS) could not be reached, timed out, or answered with an error; a later attempt may work",
            ExitStatus::Internal => "a bug in s3credsfs; please report it",
            ExitStatus::System => "the system refused a resource (pipe, fork, thread, signal handler, unmount)",
            ExitStatus::Fuse => "FUSE is unavailable or the kernel refused the mount (check /dev/fuse and fusermount3)",
            ExitStatus::TokenExpired => "a login token is missing, expired or no longer active; renew it (`cray auth login`)",
            ExitStatus::LoginRefused => "Keycloak refused the password or client secret, or the gateway refused the account; a restart cannot fix this",
            ExitStatus::Config => "a setting, a file it names, or the mountpoint is wrong; a restart cannot fix this",
        }
    }

    /// The statuses a restart cannot fix, as systemd's `RestartPreventExitStatus=` lists
    /// them.
    pub fn restart_prevent_list() -> String {
        ExitStatus::ALL
            .into_iter()
            .filter(|s| !s.restart_helps())
            .map(|s| s.code().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `status`'s exit statuses and `--check`'s verdicts: the monitoring plugin convention
/// (Nagios, Icinga, Naemon), which CSM sites' monitoring speaks. The worse of two is the
/// greater, except that [`Health::Unknown`] says nothing could be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    /// Every profile holds fresh credentials.
    Ok,
    /// Credentials expire soon, or a profile's refresh fails while its credentials are
    /// still valid.
    Warning,
    /// A profile has no valid credentials, or the daemon is gone.
    Critical,
    /// Nothing (of ours) is mounted there, or the status could not be read.
    Unknown,
}

impl Health {
    /// Every verdict, in the order the man page lists them.
    pub const ALL: [Health; 4] = [
        Health::Ok,
        Health::Warning,
        Health::Critical,
        Health::Unknown,
    ];

    /// The number `status` exits with.
    pub fn code(self) -> u8 {
        match self {
            Health::Ok => 0,
            Health::Warning => 1,
            Health::Critical => 2,
            Health::Unknown => 3,
        }
    }

    /// The word `--check` prints.
    pub fn word(self) -> &'static str {
        match self {
            Health::Ok => "OK",
            Health::Warning => "WARNING",
            Health::Critical => "CRITICAL",
            Health::Unknown => "UNKNOWN",
        }
    }

    /// What the verdict means, for the man page and the README.
    pub fn meaning(self) -> &'static str {
        match self {
            Health::Ok => "every profile holds fresh credentials",
            Health::Warning => "credentials expire within the refresh margin, a profile's refresh is failing while its credentials are still valid, or a --lazy mount has fetched nothing yet",
            Health::Critical => "a profile has no valid credentials, or the daemon is gone (a stale mount)",
            Health::Unknown => "nothing of yours is mounted there, or its status cannot be read",
        }
    }
}

impl From<Health> for std::process::ExitCode {
    fn from(health: Health) -> Self {
        std::process::ExitCode::from(health.code())
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_round_trip() {
        let mut codes: Vec<u8> = ExitStatus::ALL.iter().map(|s| s.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ExitStatus::ALL.len());
        for status in ExitStatus::ALL {
            assert_eq!(ExitStatus::from_code(status.code()), Some(status));
        }
        assert_eq!(ExitStatus::from_code(0), None);
        assert_eq!(ExitStatus::from_code(3), None);
    }

    #[test]
    fn a_restart_fixes_neither_a_setting_nor_a_refused_login() {
        assert_eq!(ExitStatus::restart_prevent_list(), "2 77 78");
        assert!(ExitStatus::Gateway.restart_helps());
        assert!(ExitStatus::TokenExpired.restart_helps());
        assert!(ExitStatus::Fuse.restart_helps());
    }

    /// `status` speaks the monitoring plugin convention: these exact numbers, in this
    /// order of worsening, and as the process's exit code.
    #[test]
    fn health_is_the_plugin_convention() {
        let codes: Vec<u8> = Health::ALL.iter().map(|h| h.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3]);
        for health in Health::ALL {
            let code = std::process::ExitCode::from(health.code());
            assert_eq!(std::process::ExitCode::from(health), code);
        }
        assert_ne!(
            std::process::ExitCode::from(Health::Ok),
            std::process::ExitCode::from(Health::Critical)
        );
        for status in ExitStatus::ALL {
            let code = std::process::ExitCode::from(status.code());
            assert_eq!(std::process::ExitCode::from(status), code);
        }
        assert_ne!(
            std::process::ExitCode::from(ExitStatus::Config),
            std::process::ExitCode::SUCCESS
        );
    }

    /// The man page and README show a meaning per number: each says something of its own.
    #[test]
    fn every_status_has_a_meaning_of_its_own() {
        let mut meanings: Vec<&str> = ExitStatus::ALL.iter().map(|s| s.meaning()).collect();
        meanings.extend(Health::ALL.iter().map(|h| h.meaning()));
        assert!(meanings.iter().all(|m| m.len() > 20), "{meanings:?}");
        let count = meanings.len();
        meanings.sort_unstable();
        meanings.dedup();
        assert_eq!(meanings.len(), count, "two statuses share a meaning");
    }
}
