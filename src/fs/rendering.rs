//! Turning profiles' snapshots into the bytes of one file. Free functions over the
//! profiles a mount serves, so this child of `fs` never imports the filesystem itself.

use super::inodes::{Input, Rendering, Slot};
use super::layout::FileKind;
use crate::cache::{CredentialCache, Fetch, Snapshot};
use crate::container::ContainerEndpoint;
use crate::error::{Error, Result};
use crate::render::{render, render_container_env, render_profiles, Format, Part, Profile};
use crate::secret::SecretBytes;
use crate::status::MountInfo;
use std::sync::Arc;

/// One profile the mount serves: its cache, how its files name it, and what `status`
/// says of it.
pub(super) struct Served<F: Fetch> {
    pub(super) cache: Arc<CredentialCache<F>>,
    /// Its name and region, and the `credential_process` of its `config` section.
    pub(super) profile: Profile,
    pub(super) info: MountInfo,
}

/// A credentials failure as a hash, so a rendering that names it is redone when it changes.
pub(super) fn failure_input(error: &Error) -> Input {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    error.to_string().hash(&mut hasher);
    Input::Failed(hasher.finish())
}

/// The snapshot of each of `sources` (indexes into `profiles`) to show now, each waited
/// for as any read waits, concurrently, so a file of several profiles never omits a
/// healthy one (its sections carry each system's endpoint, which only its credentials
/// carry). A profile with valid credentials, or failing and backing off, answers at once;
/// only one due for a refresh is waited for, and every profile's keeper
/// ([`crate::cache::CredentialCache::keep_current`]) refreshes ahead of that.
pub(super) async fn current<F: Fetch>(
    profiles: &[Served<F>],
    sources: &[usize],
) -> Vec<Result<Arc<Snapshot>>> {
    if let [only] = sources {
        return vec![profiles[*only].cache.current().await];
    }
    let tasks: Vec<_> = sources
        .iter()
        .map(|&i| {
            let cache = profiles[i].cache.clone();
            tokio::spawn(async move { cache.current().await })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        out.push(
            task.await
                .unwrap_or_else(|_| Err(Error::Internal("a profile's refresh task failed".into()))),
        );
    }
    out
}

/// Renders `slot`, a file of `kind`, from the snapshots of `sources` (at least one of
/// them valid); `container` is the mount's container endpoint, if it has one.
pub(super) fn render_slot<F: Fetch>(
    profiles: &[Served<F>],
    container: Option<&ContainerEndpoint>,
    slot: Slot,
    kind: FileKind,
    sources: &[usize],
    snapshots: &[Result<Arc<Snapshot>>],
) -> Rendering {
    let valid: Vec<&Arc<Snapshot>> = snapshots.iter().filter_map(|s| s.as_ref().ok()).collect();
    let expiration = valid
        .iter()
        .map(|s| s.creds.expiration)
        .min()
        .expect("one valid");
    let refresh_at = valid.iter().map(|s| s.refresh_at).min().expect("one valid");
    let fetched_at = valid.iter().map(|s| s.fetched_at).max().expect("one valid");
    let bytes = match (kind, snapshots) {
        (FileKind::Creds(format), [single]) => {
            let snapshot = single.as_ref().expect("one valid");
            render(format, &snapshot.creds, &profiles[sources[0]].profile)
        }
        (FileKind::Creds(format), _) => render_all(profiles, format, sources, snapshots),
        (FileKind::ContainerEnv, _) => Ok(container_env(profiles, container, valid[0])),
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
fn render_all<F: Fetch>(
    profiles: &[Served<F>],
    format: Format,
    sources: &[usize],
    snapshots: &[Result<Arc<Snapshot>>],
) -> Result<String> {
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
        let profile = &profiles[i].profile;
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

/// `container-env`: the endpoint's `export` lines for the default profile, empty
/// without an endpoint.
fn container_env<F: Fetch>(
    profiles: &[Served<F>],
    container: Option<&ContainerEndpoint>,
    snapshot: &Snapshot,
) -> String {
    match container {
        Some(c) => render_container_env(
            &c.url,
            &c.token,
            &snapshot.creds.endpoint_url,
            &profiles[0].profile.region,
        ),
        None => String::new(),
    }
}
