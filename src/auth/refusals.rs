//! Passwords Keycloak refused, remembered across runs, so that a mount a supervisor keeps
//! restarting (systemd with `Restart=always`, a container's restart policy), or `fetch`
//! and `exec` run again and again by a script, does not send a refused password each time:
//! every refusal counts toward Keycloak's brute-force lockout, and five of them (CSM sets
//! its own number) lock the account for everyone. Within one process the cache already
//! never sends a refused password again; this is the same rule across processes.
//!
//! What is kept is a keyed hash (HMAC-SHA256) of the token URL, the user and the refused
//! password, and when it was refused, under `$XDG_STATE_HOME/s3credsfs/refused/` (else
//! `~/.local/state/...`), each file 0600 in a directory 0700. The key is random, made
//! once, and lies beside it: whoever can read it is the user or root, who can read the
//! password's own source too. A password that was refused longer ago than [`REMEMBERED`]
//! is sent again (Keycloak forgets a failure after 12 hours, its `maxDeltaTimeSeconds`
//! default), as is any other password.

use crate::files::{private_dir, read_checked, replace_file, Kind};
use chrono::{DateTime, Utc};
use ring::hmac;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// How long a refused password is not sent again.
pub const REMEMBERED: chrono::Duration = chrono::Duration::hours(12);

/// The directory of the records, and whether it may be created.
#[derive(Debug, Clone)]
pub struct RefusalMemory {
    dir: PathBuf,
}

/// A refusal found in the memory: when, and the file that holds it (to be named in the
/// sentence, for whoever knows the password is right after all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    pub at: DateTime<Utc>,
    pub file: PathBuf,
}

const KEY_LEN: usize = 32;

impl RefusalMemory {
    /// The memory in `dir` (tests: a temporary directory).
    pub fn in_dir(dir: PathBuf) -> Self {
        RefusalMemory { dir }
    }

    /// The memory of the real environment: `$XDG_STATE_HOME` when absolute, else
    /// `$HOME/.local/state` when `HOME` is an existing directory; none otherwise (the
    /// process then remembers only within itself, as before).
    pub fn from_env() -> Option<Self> {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// [`Self::from_env`] with the variables from `var`. A relative path is ignored (as
    /// the XDG spec says): it would name a directory under wherever the process was
    /// started, which may be another user's.
    fn from_vars(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<Self> {
        let absolute = |name| var(name).map(PathBuf::from).filter(|p| p.is_absolute());
        let base = match absolute("XDG_STATE_HOME") {
            Some(state) => state,
            None => absolute("HOME")
                .filter(|home| home.is_dir())?
                .join(".local/state"),
        };
        Some(Self::in_dir(base.join("s3credsfs/refused")))
    }

    /// When Keycloak at `url` refused this very `password` of `user`, if within
    /// [`REMEMBERED`] of `now`. Nothing is created; an unreadable memory remembers nothing.
    pub fn refused(
        &self,
        url: &str,
        user: &str,
        password: &str,
        now: DateTime<Utc>,
    ) -> Option<Remembered> {
        let file = self.dir.join(self.record_name(url, user, false)?);
        let bytes = read_checked(&file, "refusal record", "remove it", Kind::Secret).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (at, tag) = text.trim().split_once(' ')?;
        let at = DateTime::from_timestamp(at.parse().ok()?, 0)?;
        let tag = hex_decode(tag)?;
        let key = self.key(false)?;
        hmac::verify(&key, &password_message(url, user, password), &tag).ok()?;
        // The date is not under the tag: a damaged record may hold the end of time.
        let until = at.checked_add_signed(REMEMBERED)?;
        (at <= now && now < until).then_some(Remembered { at, file })
    }

    /// Remembers that Keycloak at `url` refused `password` of `user` at `now` (replacing
    /// any other password of theirs remembered there). A failure is logged, not returned:
    /// the login's own error is what the user must see.
    pub fn remember(&self, url: &str, user: &str, password: &str, now: DateTime<Utc>) {
        let written = (|| {
            private_dir(&self.dir).map_err(|e| e.to_string())?;
            let key = self.checked_key(true)?;
            let name = self
                .record_name(url, user, true)
                .ok_or("its key went away")?;
            let tag = hmac::sign(&key, &password_message(url, user, password));
            let line = format!("{} {}\n", now.timestamp(), hex(tag.as_ref()));
            let what = "refusal record";
            replace_file(&self.dir.join(name), line.as_bytes(), 0o600, what, "")
                .map_err(|e| e.to_string())
        })();
        if let Err(cause) = written {
            tracing::warn!(
                dir = %self.dir.display(),
                error = %cause,
                "cannot remember the refused password there; a restarted mount would send it again"
            );
        }
    }

    /// Forgets any refused password of `user` at `url`: after a login that worked, or
    /// when the user asks for a new login (`s3credsfs refresh`).
    pub fn forget(&self, url: &str, user: &str) {
        if let Some(name) = self.record_name(url, user, false) {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
    }

    /// The record's file name: a hash of the URL and the user (no name in the clear).
    fn record_name(&self, url: &str, user: &str, create_key: bool) -> Option<String> {
        let key = self.key(create_key)?;
        let mut message = b"user\0".to_vec();
        message.extend_from_slice(url.as_bytes());
        message.push(0);
        message.extend_from_slice(user.to_lowercase().as_bytes());
        Some(hex(&hmac::sign(&key, &message).as_ref()[..16]))
    }

    /// The memory's key, made (once, by whichever process comes first) when `create`.
    fn key(&self, create: bool) -> Option<hmac::Key> {
        self.checked_key(create).ok()
    }

    /// [`Self::key`], with the sentence saying why there is none.
    fn checked_key(&self, create: bool) -> Result<hmac::Key, String> {
        let path = self.dir.join("key");
        if create {
            make_key(&path);
        }
        let bytes = read_checked(&path, "refusal key", "remove it", Kind::Secret)
            .map_err(|e| e.to_string())?;
        if bytes.len() != KEY_LEN {
            return Err(format!(
                "the refusal key {} is not {KEY_LEN} bytes long; remove it",
                path.display()
            ));
        }
        Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
    }
}

/// Writes a new random key at `path` unless one is there; never through a link. The key
/// is written whole under a name of its own first and then linked to `path`, which fails
/// if another process's key got there first: a process starting at the same moment never
/// sees a key not yet written (it would go without a memory), and one killed halfway
/// leaves no empty key behind (which would turn the memory off for good).
fn make_key(path: &Path) {
    if path.symlink_metadata().is_ok() {
        return;
    }
    let mut key = zeroize::Zeroizing::new([0u8; KEY_LEN]);
    let mut suffix = [0u8; 8];
    if crate::random::fill(&mut key[..]).is_err() || crate::random::fill(&mut suffix).is_err() {
        return;
    }
    let temp = path.with_file_name(format!(".key.{}.tmp", hex(&suffix)));
    // `create_new` (O_EXCL) neither follows a link nor opens what is there.
    let created = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp);
    if let Ok(mut file) = created {
        if file
            .write_all(&key[..])
            .and_then(|()| file.sync_all())
            .is_ok()
        {
            // Fails (EEXIST) when another process's key is there: that one is used.
            let _ = std::fs::hard_link(&temp, path);
        }
        let _ = std::fs::remove_file(&temp);
    }
}

fn password_message(url: &str, user: &str, password: &str) -> Vec<u8> {
    let mut message = b"password\0".to_vec();
    for part in [url, &user.to_lowercase(), password] {
        message.extend_from_slice(&(part.len() as u64).to_be_bytes());
        message.extend_from_slice(part.as_bytes());
    }
    message
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests;
