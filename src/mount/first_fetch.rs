//! The fetch before mounting: every profile at once.

use super::{MountError, Result};
use crate::cache::CredentialCache;
use crate::error::Error;
use crate::exit_status::ExitStatus;
use crate::sts::Pipeline;
use std::sync::Arc;

/// Fetches every profile at once, each within its refresh budget, so that the mount
/// (and systemd's READY=1) comes only once every file shows every profile: credentials,
/// or a profile's definite failure. The default profile failing fails the mount (with a
/// refused login's exit status if any profile's was refused); another failing is shown
/// in its files and `status`, and said in the detail.
pub(super) fn first_fetch(
    runtime: &tokio::runtime::Runtime,
    caches: &[Arc<CredentialCache<Pipeline>>],
    names: &[&str],
) -> Result<String> {
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
    let default = match default {
        Ok(default) => default,
        // Another profile's refused login decides the exit status: a restart for the
        // default's failure would send the refused password again.
        Err(error) => {
            let refused = others
                .into_iter()
                .find(|(_, e)| e.exit_status() == ExitStatus::LoginRefused);
            return Err(match refused {
                Some((name, refusal)) if error.exit_status() != ExitStatus::LoginRefused => {
                    MountError::AlsoRefused(Box::new((error, name.to_string(), refusal)))
                }
                _ => error.into(),
            });
        }
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
    Ok(detail)
}
