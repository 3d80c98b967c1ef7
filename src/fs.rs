//! The filesystem's logic in plain Rust: names, inodes, modes, sizes, and one inode per
//! rendering of current credentials (see `inodes.rs`). No FUSE types here (see
//! `fuse.rs`), so it is tested without a mount.
//!
//! The root serves the default profile, except `credentials`, `config` and `rclone.conf`,
//! which hold every profile; `profiles/NAME/` serves profile NAME alone.

use crate::cache::{CredentialCache, Fetch};
use crate::clock::{SystemTime as SystemClock, TimeSource};
use crate::container::ContainerEndpoint;
use crate::error::Error;
use crate::logging::repeats::Verdict;
use crate::render::{Format, Profile};
use crate::status::{MountInfo, StatusDoc};
use crate::sync::lock;
use chrono::{DateTime, Utc};
use inodes::{decode, Input, Renderings, StatusDocs};
use rendering::{current, failure_input, render_slot, Served};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

mod inodes;
mod layout;
mod rendering;
pub use inodes::{
    profile_dir_ino, Dir, Ino, Slot, KEPT_GENERATIONS, KEPT_STATUS, PROFILES_INO, ROOT_INO,
};
pub use layout::{FileKind, CONTAINER_ENV, FILES, PROFILES_DIR};

/// The `d_ino` listing shows for `status`; each lookup gets an inode of its own instead.
const UNRENDERED_INO: u64 = 0x80;

/// The `d_ino` listing shows for file `file` before any rendering of it: no inode's.
fn unrendered_ino(file: usize) -> u64 {
    UNRENDERED_INO + 1 + file as u64
}

/// Why a request fails, with the errno the kernel gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsError {
    NotFound,
    ReadOnly,
    NotADirectory,
    IsADirectory,
    /// The inode's credentials expired (or were dropped as too old): EIO, the error a
    /// read of expired credentials always gets (ESTALE would make the VFS retry some
    /// path calls but confuse readers holding a descriptor).
    Gone,
    /// No valid credentials could be had; the message is in the log and in `status`.
    Credentials(Error),
}

impl FsError {
    /// The errno for the kernel.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::ReadOnly => libc::EROFS,
            FsError::NotADirectory => libc::ENOTDIR,
            FsError::IsADirectory => libc::EISDIR,
            FsError::Gone => libc::EIO,
            FsError::Credentials(e) => e.errno(),
        }
    }
}

/// Attributes in FUSE-neutral form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub size: u64,
    pub is_dir: bool,
    pub perm: u16,
    pub mtime: SystemTime,
    pub uid: u32,
    pub gid: u32,
    /// How long the kernel may trust these attributes: never past the credentials'
    /// expiry, so a descriptor held longer re-asks and gets EIO.
    pub ttl: Duration,
}

/// A name's inode and how long the kernel may keep the name pointing at it: never past
/// the credentials' refresh time, so new opens soon reach the next generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub attr: Attr,
    pub ttl: Duration,
}

/// What a lookup needs: nothing more, or credentials (which may mean a refresh).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Done(Entry),
    /// The name is a credentials file.
    Credentials(Slot),
}

/// The longest the kernel trusts a name or attributes: a refresh reaches new opens, and
/// expiry reaches held descriptors, within this.
pub const MAX_TTL: Duration = Duration::from_secs(1);

/// `MAX_TTL`, or less when `until` comes sooner.
fn ttl_until(now: DateTime<Utc>, until: DateTime<Utc>) -> Duration {
    (until - now).to_std().unwrap_or_default().min(MAX_TTL)
}

/// Reports who the fetcher is logged in as.
type UserOf<F> = Box<dyn Fn(&F) -> Option<String> + Send + Sync>;

/// The filesystem over every profile's credential cache.
pub struct CredsFs<F: Fetch> {
    /// The default profile first.
    profiles: Vec<Served<F>>,
    root_files: Vec<(&'static str, FileKind)>,
    container: Option<ContainerEndpoint>,
    uid: u32,
    gid: u32,
    mounted_at: SystemTime,
    /// The mount's one clock: inode lifetimes, `status` times, and the log's once-a-minute
    /// refusals (tests: the caches' manual clock).
    time: Arc<dyn TimeSource>,
    user: UserOf<F>,
    /// Renderings still served, so sizes and reads agree per inode.
    renderings: Mutex<Renderings>,
    /// `status` documents frozen at lookup, until the kernel forgets them.
    status_docs: Mutex<StatusDocs>,
    /// Reads that reached the daemon: the page cache answers the rest.
    reads: AtomicU64,
    /// Refusals logged lately: a reader retrying every second logs once a minute.
    refusals: Mutex<crate::logging::repeats::Repeats>,
}

/// The `credential_process` line the mounted `config` carries for the profile whose
/// `json` is at `json` (a path in the mount).
pub fn credential_process_for(mountpoint: &str) -> String {
    credential_process_reading(&format!("{}/json", mountpoint.trim_end_matches('/')))
}

fn credential_process_reading(json: &str) -> String {
    if json
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+@%=:,".contains(c))
    {
        format!("cat {json}")
    } else {
        format!("cat {}", crate::render::shell_quote(json))
    }
}

impl<F: Fetch> CredsFs<F> {
    /// A mount of one profile. `user` reports who the fetcher is logged in as, for
    /// `status`; `container` adds the `container-env` file.
    pub fn new(
        cache: Arc<CredentialCache<F>>,
        info: MountInfo,
        container: Option<ContainerEndpoint>,
        user: impl Fn(&F) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Self::with_profiles(vec![(cache, info)], container, user)
    }

    /// A mount of several profiles, the default one first; the container endpoint
    /// serves the default one.
    pub fn with_profiles(
        profiles: Vec<(Arc<CredentialCache<F>>, MountInfo)>,
        container: Option<ContainerEndpoint>,
        user: impl Fn(&F) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        assert!(
            !profiles.is_empty() && profiles.len() <= crate::config::MAX_PROFILES,
            "a mount serves 1 to MAX_PROFILES profiles"
        );
        let mut root_files = FILES.to_vec();
        if container.is_some() {
            root_files.push((CONTAINER_ENV, FileKind::ContainerEnv));
        }
        let (uid, gid) = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        let profiles = profiles
            .into_iter()
            .enumerate()
            .map(|(i, (cache, info))| {
                // The default profile's `json` is the root one, as before profiles.
                let json = match i {
                    0 => format!("{}/json", info.mountpoint.trim_end_matches('/')),
                    _ => format!(
                        "{}/{PROFILES_DIR}/{}/json",
                        info.mountpoint.trim_end_matches('/'),
                        info.profile
                    ),
                };
                Served {
                    profile: Profile {
                        name: info.profile.clone(),
                        region: info.region.clone(),
                        credential_process: Some(credential_process_reading(&json)),
                    },
                    cache,
                    info,
                }
            })
            .collect();
        CredsFs {
            profiles,
            root_files,
            container,
            uid,
            gid,
            mounted_at: SystemTime::now(),
            time: Arc::new(SystemClock),
            user: Box::new(user),
            renderings: Mutex::new(Renderings::default()),
            status_docs: Mutex::new(StatusDocs::default()),
            reads: AtomicU64::new(0),
            refusals: Mutex::default(),
        }
    }

    /// The same filesystem reading the time from `time` (tests: a [`crate::clock::ManualClock`],
    /// the one its caches use); the root's mtime is then its now.
    pub fn with_time(mut self, time: Arc<dyn TimeSource>) -> Self {
        self.mounted_at = time.now().into();
        self.time = time;
        self
    }

    fn now(&self) -> DateTime<Utc> {
        self.time.now()
    }

    fn attr(&self, ino: u64, size: u64, is_dir: bool, mtime: SystemTime, ttl: Duration) -> Attr {
        Attr {
            ino,
            size,
            is_dir,
            perm: if is_dir { 0o500 } else { 0o400 },
            mtime,
            uid: self.uid,
            gid: self.gid,
            ttl,
        }
    }

    fn dir_attr(&self, ino: u64) -> Attr {
        self.attr(ino, 0, true, self.mounted_at, MAX_TTL)
    }

    fn files(&self, dir: Dir) -> &[(&'static str, FileKind)] {
        match dir {
            Dir::Root => &self.root_files,
            Dir::Profile(_) => &FILES,
        }
    }

    /// The directory an inode names, if it holds files.
    fn file_dir(&self, ino: u64) -> Option<Dir> {
        match decode(ino) {
            Ino::Root => Some(Dir::Root),
            Ino::ProfileDir(i) if i < self.profiles.len() => Some(Dir::Profile(i)),
            _ => None,
        }
    }

    /// The profiles a file shows: all of them for the root's multi-profile files (just
    /// the first when there is one), else its directory's one.
    fn sources(&self, slot: Slot) -> Vec<usize> {
        match (slot.dir, self.files(slot.dir)[slot.file].1) {
            (Dir::Root, FileKind::Creds(Format::Credentials | Format::Config | Format::Rclone)) => {
                (0..self.profiles.len()).collect()
            }
            (Dir::Root, _) => vec![0],
            (Dir::Profile(i), _) => vec![i],
        }
    }

    /// An entry. A credentials name gets the inode of the rendering an open would serve
    /// now, refreshing first when due (see [`Self::lookup_credentials`]). `status` gets a
    /// new inode frozen now, so each open of it shows the state of that moment and never
    /// fetches.
    pub async fn lookup(&self, parent: u64, name: &str) -> Result<Entry, FsError> {
        match self.lookup_local(parent, name)? {
            Lookup::Done(entry) => Ok(entry),
            Lookup::Credentials(slot) => self.lookup_credentials(slot).await,
        }
    }

    /// The part of a lookup that never waits: all of it, except for a credentials name.
    pub fn lookup_local(&self, parent: u64, name: &str) -> Result<Lookup, FsError> {
        let done = |attr: Attr| Ok(Lookup::Done(Entry { attr, ttl: MAX_TTL }));
        if parent == PROFILES_INO {
            let i = self
                .profiles
                .iter()
                .position(|p| p.profile.name == name)
                .ok_or(FsError::NotFound)?;
            return done(self.dir_attr(profile_dir_ino(i)));
        }
        let dir = match decode(parent) {
            Ino::Rendering(_) | Ino::Status(_) => return Err(FsError::NotADirectory),
            _ => self.file_dir(parent).ok_or(FsError::NotFound)?,
        };
        if dir == Dir::Root && name == PROFILES_DIR {
            return done(self.dir_attr(PROFILES_INO));
        }
        let file = self
            .files(dir)
            .iter()
            .position(|(n, _)| *n == name)
            .ok_or(FsError::NotFound)?;
        if self.files(dir)[file].1 != FileKind::Status {
            return Ok(Lookup::Credentials(Slot { dir, file }));
        }
        let profile = match dir {
            Dir::Root => 0,
            Dir::Profile(i) => i,
        };
        let now = self.now();
        let bytes = self.status_json_of(profile, dir == Dir::Root).into_bytes();
        let size = bytes.len() as u64;
        let ino = lock(&self.status_docs).insert(bytes, now.into());
        Ok(Lookup::Done(Entry {
            attr: self.attr(ino, size, false, now.into(), MAX_TTL),
            ttl: Duration::ZERO,
        }))
    }

    /// The entry of a credentials file, refreshing its profiles first when due. Async so
    /// the wait is on the runtime, not on a FUSE worker thread: `status` and `ls` still
    /// answer. A file of several profiles waits for all of them, each on its own cache.
    pub async fn lookup_credentials(&self, slot: Slot) -> Result<Entry, FsError> {
        let sources = self.sources(slot);
        let snapshots = current(&self.profiles, &sources).await;
        let now = self.now();
        if snapshots.iter().all(|s| s.is_err()) {
            let first = snapshots.into_iter().next().and_then(|s| s.err());
            return Err(self.refuse(sources[0], first.expect("a file shows a profile")));
        }
        let inputs: Vec<Input> = snapshots
            .iter()
            .map(|s| match s {
                Ok(snapshot) => Input::Generation(snapshot.generation),
                Err(e) => failure_input(e),
            })
            .collect();
        let (ino, rendering) = lock(&self.renderings).get_or_render(slot, &inputs, now, || {
            let kind = self.files(slot.dir)[slot.file].1;
            render_slot(
                &self.profiles,
                self.container.as_ref(),
                slot,
                kind,
                &sources,
                &snapshots,
            )
        });
        let bytes = rendering
            .bytes
            .clone()
            .map_err(|e| self.refuse(sources[0], e))?;
        let attr = self.attr(
            ino,
            bytes.len() as u64,
            false,
            rendering.fetched_at,
            ttl_until(now, rendering.expiration),
        );
        Ok(Entry {
            attr,
            ttl: ttl_until(now, rendering.refresh_at),
        })
    }

    /// A read refused for want of valid credentials of profile `index`: logged with the
    /// profile's name, once a minute with a count while the same failure repeats.
    fn refuse(&self, index: usize, error: Error) -> FsError {
        let profile = &self.profiles[index].info.profile;
        let now = self.now();
        let message = format!("{profile}\n{error}");
        match lock(&self.refusals).note(&message, now) {
            Verdict::Log { suppressed: 0 } => {
                tracing::warn!(profile = %profile, error = %error, "refusing a read: no valid credentials");
            }
            Verdict::Log { suppressed } => tracing::warn!(
                profile = %profile,
                error = %error,
                "refusing a read: no valid credentials ({suppressed} more like it in the last minute, not logged)"
            ),
            Verdict::Quiet => {}
        }
        FsError::Credentials(error)
    }

    /// Attributes. A rendering's never change; once its credentials expired (or it was
    /// dropped) there are none: EIO, the error a reader of expired credentials gets.
    pub fn getattr(&self, ino: u64) -> Result<Attr, FsError> {
        match decode(ino) {
            Ino::Root | Ino::Profiles => Ok(self.dir_attr(ino)),
            Ino::ProfileDir(i) if i < self.profiles.len() => Ok(self.dir_attr(ino)),
            Ino::Status(seq) => {
                let (bytes, mtime) = lock(&self.status_docs).get(seq).ok_or(FsError::Gone)?;
                Ok(self.attr(ino, bytes.len() as u64, false, mtime, MAX_TTL))
            }
            Ino::Rendering(seq) => {
                let now = self.now();
                let rendering = lock(&self.renderings).get(seq, now).ok_or(FsError::Gone)?;
                let size = rendering.bytes.as_ref().map_or(0, |b| b.len() as u64);
                let ttl = ttl_until(now, rendering.expiration);
                Ok(self.attr(ino, size, false, rendering.fetched_at, ttl))
            }
            Ino::ProfileDir(_) | Ino::Unknown => Err(FsError::NotFound),
        }
    }

    /// Checks an open: files only, read only. Nothing is pinned: the inode is the content.
    pub fn open(&self, ino: u64, write: bool) -> Result<(), FsError> {
        let attr = self.getattr(ino)?;
        if attr.is_dir {
            return Err(FsError::IsADirectory);
        }
        if write {
            return Err(FsError::ReadOnly);
        }
        Ok(())
    }

    /// Bytes of an inode: its rendering, or its frozen `status`.
    pub fn read(
        &self,
        ino: u64,
        offset: u64,
        size: u32,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, FsError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let slice = |bytes: &[u8]| {
            let start = (offset as usize).min(bytes.len());
            let end = start.saturating_add(size as usize).min(bytes.len());
            // The copy handed to the kernel is zeroed once sent, like the rendering itself.
            zeroize::Zeroizing::new(bytes[start..end].to_vec())
        };
        match decode(ino) {
            Ino::Root | Ino::Profiles | Ino::ProfileDir(_) => Err(FsError::IsADirectory),
            Ino::Status(seq) => {
                let (bytes, _) = lock(&self.status_docs).get(seq).ok_or(FsError::Gone)?;
                Ok(slice(&bytes))
            }
            Ino::Rendering(seq) => {
                let rendering = lock(&self.renderings)
                    .get(seq, self.now())
                    .ok_or(FsError::Gone)?;
                let profile = self.sources(rendering.slot)[0];
                let bytes = rendering
                    .bytes
                    .clone()
                    .map_err(|e| self.refuse(profile, e))?;
                Ok(slice(&bytes))
            }
            Ino::Unknown => Err(FsError::NotFound),
        }
    }

    /// The kernel dropped `nlookup` references to an inode: a `status` document with
    /// none left is freed. Renderings go by expiry and age instead.
    pub fn forget(&self, ino: u64, nlookup: u64) {
        if let Ino::Status(seq) = decode(ino) {
            lock(&self.status_docs).forget(seq, nlookup);
        }
    }

    /// How many reads reached the daemon; the kernel's page cache answers the others.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// A directory's entries after `offset`: (inode, is_dir, name, next offset). A
    /// credentials file shows its newest rendering's inode (or a placeholder before
    /// any), `status` a number of its own: `d_ino` is informational, and listing must
    /// never fetch.
    pub fn readdir(&self, ino: u64, offset: u64) -> Result<Vec<(u64, bool, String, u64)>, FsError> {
        let mut entries: Vec<(u64, bool, String)> = Vec::new();
        if ino == PROFILES_INO {
            entries.push((PROFILES_INO, true, ".".into()));
            entries.push((ROOT_INO, true, "..".into()));
            entries.extend(
                self.profiles
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (profile_dir_ino(i), true, p.profile.name.clone())),
            );
        } else {
            let dir = match decode(ino) {
                Ino::Rendering(_) | Ino::Status(_) => return Err(FsError::NotADirectory),
                _ => self.file_dir(ino).ok_or(FsError::NotFound)?,
            };
            let parent = if dir == Dir::Root {
                ROOT_INO
            } else {
                PROFILES_INO
            };
            entries.push((ino, true, ".".into()));
            entries.push((parent, true, "..".into()));
            let renderings = lock(&self.renderings);
            for (file, (name, kind)) in self.files(dir).iter().enumerate() {
                let ino = match kind {
                    FileKind::Status => UNRENDERED_INO,
                    _ => renderings
                        .newest(Slot { dir, file })
                        .unwrap_or_else(|| unrendered_ino(file)),
                };
                entries.push((ino, false, name.to_string()));
            }
            if dir == Dir::Root {
                entries.push((PROFILES_INO, true, PROFILES_DIR.into()));
            }
        }
        Ok(entries
            .into_iter()
            .enumerate()
            .skip(offset as usize)
            .map(|(i, (ino, dir, name))| (ino, dir, name, i as u64 + 1))
            .collect())
    }

    fn status_doc(&self, i: usize) -> StatusDoc {
        let served = &self.profiles[i];
        let user = (self.user)(served.cache.fetcher());
        StatusDoc::new(&served.cache.status(), &served.info, user, self.now())
    }

    /// Profile `i`'s status document as of now; `with_all` (the root's) adds every
    /// profile's when there are several.
    fn status_json_of(&self, i: usize, with_all: bool) -> String {
        let mut doc = self.status_doc(i);
        // One clock for the whole mount.
        doc.clock_warning = crate::skew::current_warning();
        if with_all && self.profiles.len() > 1 {
            doc.profiles = Some(
                (0..self.profiles.len())
                    .map(|i| self.status_doc(i))
                    .collect(),
            );
        }
        doc.to_json()
    }
}

#[cfg(test)]
mod tests;
