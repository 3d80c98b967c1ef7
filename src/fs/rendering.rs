//! Turning profiles' snapshots into the bytes of one file.

use super::inodes::{Input, Rendering, Slot};
use super::{CredsFs, FileKind};
use crate::cache::{Fetch, Snapshot};
use crate::error::Error;
use crate::render::{render, render_container_env, render_profiles, Format, Part, Profile};
use crate::secret::SecretBytes;
use std::sync::Arc;

/// A credentials failure as a hash, so a rendering that names it is redone when it changes.
pub(super) fn failure_input(error: &Error) -> Input {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    error.to_string().hash(&mut hasher);
    Input::Failed(hasher.finish())
}

impl<F: Fetch> CredsFs<F> {
    /// The snapshot of each of `sources` to show now, each waited for as any read waits,
    /// concurrently, so a file of several profiles never omits a healthy one (its
    /// sections carry each system's endpoint, which only its credentials carry). A profile
    /// with valid credentials, or failing and backing off, answers at once; only one due
    /// for a refresh is waited for, and every profile's keeper
    /// ([`crate::cache::CredentialCache::keep_current`]) refreshes ahead of that.
    pub(super) async fn current(
        &self,
        sources: &[usize],
    ) -> Vec<crate::error::Result<Arc<Snapshot>>> {
        if let [only] = sources {
            return vec![self.profiles[*only].cache.current().await];
        }
        let tasks: Vec<_> = sources
            .iter()
            .map(|&i| {
                let cache = self.profiles[i].cache.clone();
                tokio::spawn(async move { cache.current().await })
            })
            .collect();
        let mut out = Vec::with_capacity(tasks.len());
        for task in tasks {
            out.push(task.await.unwrap_or_else(|_| {
                Err(Error::Internal("a profile's refresh task failed".into()))
            }));
        }
        out
    }

    /// Renders `slot` from the snapshots of `sources` (at least one of them valid).
    pub(super) fn render_slot(
        &self,
        slot: Slot,
        sources: &[usize],
        snapshots: &[crate::error::Result<Arc<Snapshot>>],
    ) -> Rendering {
        let valid: Vec<&Arc<Snapshot>> = snapshots.iter().filter_map(|s| s.as_ref().ok()).collect();
        let expiration = valid
            .iter()
            .map(|s| s.creds.expiration)
            .min()
            .expect("one valid");
        let refresh_at = valid.iter().map(|s| s.refresh_at).min().expect("one valid");
        let fetched_at = valid.iter().map(|s| s.fetched_at).max().expect("one valid");
        let kind = self.files(slot.dir)[slot.file].1;
        let bytes = match (kind, snapshots) {
            (FileKind::Creds(format), [single]) => {
                let snapshot = single.as_ref().expect("one valid");
                render(format, &snapshot.creds, &self.profiles[sources[0]].profile)
            }
            (FileKind::Creds(format), _) => self.render_all(format, sources, snapshots),
            (FileKind::ContainerEnv, _) => Ok(self.render_container_env(valid[0])),
            (FileKind::Status, _) => Ok(String::new()),
        };
        let bytes = bytes
            .inspect_err(|e| tracing::error!(error = %e, "cannot render a credentials file"))
            .map(|text| Arc::new(SecretBytes::new(text)));
        Rendering::new(slot, expiration, refresh_at, fetched_at.into(), bytes)
    }

    /// The root's file of every profile. `credentials` and `config` also get a
    /// `default` section for the default profile (unless it is called so), so tools
    /// given no profile use it, as every root file does.
    fn render_all(
        &self,
        format: Format,
        sources: &[usize],
        snapshots: &[crate::error::Result<Arc<Snapshot>>],
    ) -> Result<String, Error> {
        let messages: Vec<String> = snapshots
            .iter()
            .map(|s| {
                s.as_ref()
                    .err()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            })
            .collect();
        let mut parts: Vec<(Profile, Part<'_>)> = Vec::new();
        for ((&i, snapshot), message) in sources.iter().zip(snapshots).zip(&messages) {
            let part = match snapshot {
                Ok(snapshot) => Part::Creds(&snapshot.creds),
                Err(_) => Part::Failed(message),
            };
            let profile = &self.profiles[i].profile;
            let wants_default = i == 0
                && profile.name != "default"
                && matches!(format, Format::Credentials | Format::Config);
            if wants_default {
                let mut default = profile.clone();
                default.name = "default".into();
                parts.push((default, part));
            }
            parts.push((profile.clone(), part));
        }
        render_profiles(format, &parts)
    }

    fn render_container_env(&self, snapshot: &Snapshot) -> String {
        match &self.container {
            Some(c) => render_container_env(
                &c.url,
                &c.token,
                &snapshot.creds.endpoint_url,
                &self.profiles[0].profile.region,
            ),
            None => String::new(),
        }
    }
}
