//! The fetch before mounting: every profile at once.

use crate::app_error::{AppError, Result};
use crate::cache::CredentialCache;
use crate::error::Error;
use crate::exit_status::ExitStatus;
use crate::sts::Pipeline;
use std::sync::Arc;

/// A profile other than the default whose first login Keycloak refused: its name and
/// the refusal.
pub(super) type Refused = Option<(String, Error)>;

/// Fetches every profile at once, each within its refresh budget, so that the mount
/// (and systemd's READY=1) comes only once every file shows every profile: credentials,
/// or a profile's definite failure. The default profile failing fails the mount; another
/// failing is shown in its files and `status`, and said in the detail. Returns the detail
/// and the first other profile whose login was refused, for [`with_refusal`].
///
/// With `keep_trying` (a mount systemd started), a default profile that failed for a
/// transient cause (see [`Error::is_transient`]) does not fail the mount: it mounts
/// without credentials, says why in the detail, and its keeper retries on the cache's
/// backoff. Exiting instead would have systemd restart it every 10 s with no backoff and
/// no jitter: a whole system booting against a busy gateway would hammer it in step.
pub(super) fn first_fetch(
    runtime: &tokio::runtime::Runtime,
    caches: &[Arc<CredentialCache<Pipeline>>],
    names: &[&str],
    keep_trying: bool,
) -> Result<(String, Refused)> {
    let outcomes =
        runtime.block_on(async {
            let tasks: Vec<_> = caches
                .iter()
                .map(|cache| {
                    let cache = Arc::clone(cache);
                    tokio::spawn(async move { cache.current().await })
                })
                .collect();
            let mut outcomes = Vec::with_capacity(tasks.len());
            for task in tasks {
                outcomes.push(task.await.unwrap_or_else(|_| {
                    Err(Error::Internal("a profile's first fetch failed".into()))
                }));
            }
            outcomes
        });
    let mut outcomes = outcomes.into_iter();
    let default = outcomes.next().expect("a mount has a default profile");
    let others: Vec<(&str, Error)> = outcomes
        .zip(names.iter().skip(1))
        .filter_map(|(outcome, name)| Some((*name, outcome.err()?)))
        .collect();
    let refused = others
        .iter()
        .find(|(_, e)| e.exit_status() == ExitStatus::LoginRefused)
        .map(|(name, e)| (name.to_string(), e.clone()));
    let default = match default {
        Ok(default) => default,
        Err(error) if keep_trying && refused.is_none() && error.is_transient() => {
            tracing::warn!(
                error = %error,
                "no credentials yet; the mount serves EIO and retries on a backoff"
            );
            return Ok((no_credentials_yet(&error), None));
        }
        Err(error) => return Err(with_refusal(error.into(), refused)),
    };
    let failed: Vec<&str> = others
        .iter()
        .map(|(name, error)| {
            tracing::warn!(profile = %name, error = %error, "no credentials for this profile");
            *name
        })
        .collect();
    let mut detail = format!(
        "credentials valid until {}",
        default.creds.expiration_rfc3339()
    );
    if !failed.is_empty() {
        detail.push_str(&format!(
            "; no credentials for profile {} (see `s3credsfs status`)",
            failed.join(", ")
        ));
    }
    Ok((detail, refused))
}

/// What a mount that came up without credentials says (to systemd's `STATUS=`).
pub(super) fn no_credentials_yet(error: &Error) -> String {
    format!("no credentials yet ({error}); retrying on a backoff, see `s3credsfs status`")
}

/// A failed start's error, with a refused login's exit status when a restart could
/// otherwise cure it: every start logs in again, and a supervisor restarting the mount
/// for a gateway outage or FUSE would send the refused password each time.
pub(super) fn with_refusal(error: AppError, refused: Refused) -> AppError {
    match refused {
        Some((name, refusal)) if error.exit_status().restart_helps() => {
            AppError::AlsoRefused(Box::new((error, name, refusal)))
        }
        _ => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a failure a restart could cure takes the refusal's status; a wrong setting
    /// or a refusal of the default's own stays as it is.
    #[test]
    fn a_refusal_keeps_a_restartable_failure_from_being_restarted() {
        let refusal = Error::AuthRejected {
            url: "https://gw/t".into(),
            who: "dev".into(),
            description: "Invalid user credentials".into(),
            fix: "check the password".into(),
        };
        let refused = || Some(("tds".to_string(), refusal.clone()));
        let fuse = || AppError::Mount {
            path: "/m".into(),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        };
        let wrapped = with_refusal(fuse(), refused());
        assert_eq!(wrapped.exit_status(), ExitStatus::LoginRefused);
        assert!(
            wrapped.to_string().starts_with(&format!(
                "{}; also, profile tds's login was refused: ",
                fuse()
            )),
            "{wrapped}"
        );
        assert_eq!(with_refusal(fuse(), None).exit_status(), ExitStatus::Fuse);
        let config = AppError::from(Error::Config("bad".into()));
        let kept = with_refusal(config, refused());
        assert_eq!(
            (kept.exit_status(), kept.to_string()),
            (ExitStatus::Config, "bad".into())
        );
    }
}
