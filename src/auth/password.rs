//! The password grant as Keycloak must be asked for it. Measured on Keycloak 26.7.3 with
//! brute-force detection on (tests/keycloak/README.md): a login while another of the same
//! user is in flight is refused with the very reply of a wrong password (400
//! `invalid_grant` "Invalid user credentials"), counts no failure, and a second later the
//! same password works; every real refusal counts one failure, five lock the account, and
//! two within a second lock it at once (`quickLoginCheckMilliSeconds`). So:
//! - logins of one user take turns within the process ([`super::turns`]);
//! - such a refusal is tried once more, after a wait longer than that second (another
//!   process or node may have been logging in), which costs a wrong password one more
//!   failure but no lockout;
//! - a password refused twice is remembered ([`super::refusals`]) and not sent again by
//!   a restarted process.

use super::keycloak::{Grant, GrantError, Issued};
use super::refusals::Remembered;
use super::{turns, Authenticator};
use crate::error::Error;
use crate::secret::Secret;
use std::time::Duration;

/// The wait before the second try of a refused password: longer than Keycloak's quick
/// login window (1 s by default) so that a wrong password's two failures never lock the
/// account at once, plus up to [`CONTENDED_JITTER`] so that colliding nodes part.
pub const CONTENDED_RETRY: Duration = Duration::from_secs(2);

/// The most added to [`CONTENDED_RETRY`], by the time source's jitter.
pub const CONTENDED_JITTER: Duration = Duration::from_secs(1);

/// Whether Keycloak's refusal says the password is wrong (and so counts a failure).
fn wrong_password(error: &str, description: &str) -> bool {
    error == "invalid_grant"
        && description
            .trim()
            .eq_ignore_ascii_case("invalid user credentials")
}

/// Whether Keycloak's refusal is the one a concurrent login also gets: Keycloak 26's 400
/// (older ones answered a wrong password with 401 and were not seen refusing a
/// concurrent login, so a 401 is not tried again).
fn may_be_contention(status: u16, error: &str, description: &str) -> bool {
    status == 400 && wrong_password(error, description)
}

impl Authenticator {
    /// One password login of `username` with `password`, in turn, tried twice at most,
    /// never with a password refused within the memory's time.
    pub(super) async fn password_grant(
        &self,
        username: &str,
        password: &Secret,
        who: &str,
        fix: &str,
    ) -> Result<Issued, GrantError> {
        let _turn = turns::take(username).await;
        let url = &self.token_url;
        if let Some(memory) = &self.refusals {
            if let Some(found) = memory.refused(url, username, password.expose(), self.time.now()) {
                return Err(GrantError::Failed(remembered(url, who, fix, &found)));
            }
        }
        let grant = || Grant::Password { username, password };
        let mut outcome = self.request(&self.client_id, grant()).await;
        if let Err(GrantError::Refused {
            status,
            error,
            description,
        }) = &outcome
        {
            if may_be_contention(*status, error, description) {
                let wait = CONTENDED_RETRY + CONTENDED_JITTER.mul_f64(self.time.jitter());
                tracing::info!(
                    user = username,
                    wait_seconds = wait.as_secs_f64(),
                    "Keycloak refused the password; it refuses a right one too while another \
                     login of this user is in flight, so trying once more after a wait"
                );
                self.time.sleep(wait).await;
                outcome = self.request(&self.client_id, grant()).await;
            }
        }
        if let Some(memory) = &self.refusals {
            match &outcome {
                Ok(_) => memory.forget(url, username),
                Err(GrantError::Refused {
                    error, description, ..
                }) if wrong_password(error, description) => {
                    memory.remember(url, username, password.expose(), self.time.now())
                }
                Err(_) => {}
            }
        }
        outcome
    }
}

/// The refusal of a password refused before, not sent again.
fn remembered(url: &str, who: &str, fix: &str, found: &Remembered) -> Error {
    let until = found.at + super::refusals::REMEMBERED;
    Error::AuthRejected {
        url: url.to_string(),
        who: who.to_string(),
        description: format!(
            "Invalid user credentials at {}, so it is not sent again until {} (each refusal \
             counts toward locking the account)",
            super::format_time(found.at),
            super::format_time(until)
        ),
        fix: format!(
            "{fix}; if the password is right after all (Keycloak refuses a right one too \
             while the account is locked), remove {} (for a running mount, `s3credsfs \
             refresh` does that and logs in again)",
            found.file.display()
        ),
    }
}
