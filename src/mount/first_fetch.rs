//! The fetch before mounting: every profile at once.

use super::Result;
use crate::cache::CredentialCache;
use crate::error::Error;
use crate::sts::Pipeline;
use std::sync::Arc;

/// Fetches every profile at once, each within its refresh budget, so that the mount
/// (and systemd's READY=1) comes only once every file shows every profile: credentials,
/// or a profile's definite failure. The default profile failing fails the mount; another
/// failing is shown in its files and `status`, and said in the detail.
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
    let default = outcomes.next().expect("a mount has a default profile")?;
    let failed: Vec<&str> = outcomes
        .zip(names.iter().skip(1))
        .filter_map(|(outcome, name)| {
            let error = outcome.err()?;
            tracing::warn!(profile = %name, error = %error, "no credentials for this profile");
            Some(*name)
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
