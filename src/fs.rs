//! The filesystem's logic in plain Rust: names, inodes, modes, sizes, and one inode per
//! credentials generation (see `inodes.rs`). No FUSE types here (see `fuse.rs`), so it is
//! tested without a mount.

use crate::cache::{CredentialCache, Fetch, Snapshot};
use crate::container::ContainerEndpoint;
use crate::error::Error;
use crate::render::{render, render_container_env, Format, Profile};
use crate::secret::SecretBytes;
use crate::status::{MountInfo, StatusDoc};
use crate::sync::lock;
use chrono::{DateTime, Utc};
use inodes::{decode, generation_ino, Generation, Generations, Ino, StatusDocs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

mod inodes;
pub use inodes::{KEPT_GENERATIONS, KEPT_STATUS, ROOT_INO};

/// The `d_ino` listing shows for `status`; each lookup gets a fresh inode instead.
const STATUS_DIR_INO: u64 = 0x80;

/// What a file serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A rendering of the current credentials.
    Creds(Format),
    /// The status JSON (never triggers a fetch).
    Status,
    /// `export` lines for the container credentials endpoint (`--container-endpoint`).
    ContainerEnv,
}

/// The files every mount has, in `ls` order; inode = generation << 8 | (index + 2).
pub const FILES: [(&str, FileKind); 7] = [
    ("credentials", FileKind::Creds(Format::Credentials)),
    ("config", FileKind::Creds(Format::Config)),
    ("env", FileKind::Creds(Format::Env)),
    ("json", FileKind::Creds(Format::Json)),
    ("s3cfg", FileKind::Creds(Format::S3cfg)),
    ("rclone.conf", FileKind::Creds(Format::Rclone)),
    ("status", FileKind::Status),
];

/// The extra file a mount with `--container-endpoint` has.
pub const CONTAINER_ENV: &str = "container-env";

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
    /// The name is credentials file number `index`.
    Credentials(usize),
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

/// The filesystem over one profile's credential cache.
pub struct CredsFs<F: Fetch> {
    cache: Arc<CredentialCache<F>>,
    profile: Profile,
    info: MountInfo,
    files: Vec<(&'static str, FileKind)>,
    container: Option<ContainerEndpoint>,
    uid: u32,
    gid: u32,
    mounted_at: SystemTime,
    user: UserOf<F>,
    /// Renderings of each generation still served, so sizes and reads agree per inode.
    generations: Mutex<Generations>,
    /// `status` documents frozen at lookup, until the kernel forgets them.
    status_docs: Mutex<StatusDocs>,
    /// Reads that reached the daemon: the page cache answers the rest.
    reads: AtomicU64,
}

/// The `credential_process` line the mounted `config` carries.
pub fn credential_process_for(mountpoint: &str) -> String {
    let json = format!("{}/json", mountpoint.trim_end_matches('/'));
    if json
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+@%=:,".contains(c))
    {
        format!("cat {json}")
    } else {
        format!("cat {}", crate::render::shell_quote(&json))
    }
}

impl<F: Fetch> CredsFs<F> {
    /// `user` reports who the fetcher is logged in as, for `status`; `container` adds
    /// the `container-env` file.
    pub fn new(
        cache: Arc<CredentialCache<F>>,
        info: MountInfo,
        container: Option<ContainerEndpoint>,
        user: impl Fn(&F) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        let mut files = FILES.to_vec();
        if container.is_some() {
            files.push((CONTAINER_ENV, FileKind::ContainerEnv));
        }
        let (uid, gid) = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        CredsFs {
            profile: Profile {
                name: info.profile.clone(),
                region: info.region.clone(),
                credential_process: Some(credential_process_for(&info.mountpoint)),
            },
            cache,
            info,
            files,
            container,
            uid,
            gid,
            mounted_at: SystemTime::now(),
            user: Box::new(user),
            generations: Mutex::new(Generations::default()),
            status_docs: Mutex::new(StatusDocs::default()),
            reads: AtomicU64::new(0),
        }
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

    /// A root entry. A credentials name gets the inode of the generation an open would
    /// serve now, refreshing first when due (see [`Self::lookup_credentials`]). `status`
    /// gets a new inode frozen now, so each open of it shows the state of that moment and
    /// never fetches.
    pub async fn lookup(&self, parent: u64, name: &str) -> Result<Entry, FsError> {
        match self.lookup_local(parent, name)? {
            Lookup::Done(entry) => Ok(entry),
            Lookup::Credentials(index) => self.lookup_credentials(index).await,
        }
    }

    /// The part of a lookup that never waits: all of it, except for a credentials name.
    pub fn lookup_local(&self, parent: u64, name: &str) -> Result<Lookup, FsError> {
        if parent != ROOT_INO {
            return Err(FsError::NotADirectory);
        }
        let index = self
            .files
            .iter()
            .position(|(n, _)| *n == name)
            .ok_or(FsError::NotFound)?;
        if self.files[index].1 != FileKind::Status {
            return Ok(Lookup::Credentials(index));
        }
        let now = self.cache.now();
        let bytes = self.status_json().into_bytes();
        let size = bytes.len() as u64;
        let ino = lock(&self.status_docs).insert(bytes, now.into());
        Ok(Lookup::Done(Entry {
            attr: self.attr(ino, size, false, now.into(), MAX_TTL),
            ttl: Duration::ZERO,
        }))
    }

    /// The entry of credentials file `index`, refreshing first when due. Async so the
    /// wait is on the runtime, not on a FUSE worker thread: `status` and `ls` still answer.
    pub async fn lookup_credentials(&self, index: usize) -> Result<Entry, FsError> {
        let snapshot = self.cache.current().await.map_err(FsError::Credentials)?;
        let now = self.cache.now();
        let generation = self.generation(&snapshot, now);
        let bytes = generation.files[index]
            .clone()
            .map_err(FsError::Credentials)?;
        let attr = self.attr(
            generation_ino(snapshot.generation, index),
            bytes.len() as u64,
            false,
            generation.fetched_at,
            ttl_until(now, generation.expiration),
        );
        Ok(Entry {
            attr,
            ttl: ttl_until(now, generation.refresh_at),
        })
    }

    /// Attributes. A generation's never change; once its credentials expired (or it was
    /// dropped) there are none: EIO, the error a reader of expired credentials gets.
    pub fn getattr(&self, ino: u64) -> Result<Attr, FsError> {
        match decode(ino, self.files.len()) {
            Ino::Root => Ok(self.attr(ino, 0, true, self.mounted_at, MAX_TTL)),
            Ino::Status(seq) => {
                let (bytes, mtime) = lock(&self.status_docs).get(seq).ok_or(FsError::Gone)?;
                Ok(self.attr(ino, bytes.len() as u64, false, mtime, MAX_TTL))
            }
            Ino::Generation { generation, index } => {
                let now = self.cache.now();
                let rendered = lock(&self.generations)
                    .get(generation, now)
                    .ok_or(FsError::Gone)?;
                let size = rendered.files[index].as_ref().map_or(0, |b| b.len() as u64);
                let ttl = ttl_until(now, rendered.expiration);
                Ok(self.attr(ino, size, false, rendered.fetched_at, ttl))
            }
            Ino::Unknown => Err(FsError::NotFound),
        }
    }

    /// Checks an open: files only, read only. Nothing is pinned: the inode is the snapshot.
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

    /// Bytes of an inode: its generation's rendering, or its frozen `status`.
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
        match decode(ino, self.files.len()) {
            Ino::Root => Err(FsError::IsADirectory),
            Ino::Status(seq) => {
                let (bytes, _) = lock(&self.status_docs).get(seq).ok_or(FsError::Gone)?;
                Ok(slice(&bytes))
            }
            Ino::Generation { generation, index } => {
                let rendered = lock(&self.generations)
                    .get(generation, self.cache.now())
                    .ok_or(FsError::Gone)?;
                let bytes = rendered.files[index]
                    .clone()
                    .map_err(FsError::Credentials)?;
                Ok(slice(&bytes))
            }
            Ino::Unknown => Err(FsError::NotFound),
        }
    }

    /// The kernel dropped `nlookup` references to an inode: a `status` document with
    /// none left is freed. Generations go by expiry and age instead.
    pub fn forget(&self, ino: u64, nlookup: u64) {
        if let Ino::Status(seq) = decode(ino, self.files.len()) {
            lock(&self.status_docs).forget(seq, nlookup);
        }
    }

    /// How many reads reached the daemon; the kernel's page cache answers the others.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// The root's entries after `offset`: (inode, is_dir, name, next offset). A
    /// credentials file shows the newest generation's inode (or its generation-0 number
    /// before any), `status` a number of its own: `d_ino` is informational, and listing
    /// must never fetch.
    pub fn readdir(
        &self,
        ino: u64,
        offset: u64,
    ) -> Result<Vec<(u64, bool, &'static str, u64)>, FsError> {
        if ino != ROOT_INO {
            return Err(FsError::NotADirectory);
        }
        let generation = self.cache.peek().map_or(0, |s| s.generation);
        let mut entries = vec![(ROOT_INO, true, "."), (ROOT_INO, true, "..")];
        entries.extend(self.files.iter().enumerate().map(|(i, (name, kind))| {
            let ino = match kind {
                FileKind::Status => STATUS_DIR_INO,
                _ => generation_ino(generation, i),
            };
            (ino, false, *name)
        }));
        Ok(entries
            .into_iter()
            .enumerate()
            .skip(offset as usize)
            .map(|(i, (ino, dir, name))| (ino, dir, name, i as u64 + 1))
            .collect())
    }

    /// The kept rendering of `snapshot`, rendered now if it is new.
    fn generation(&self, snapshot: &Snapshot, now: DateTime<Utc>) -> Arc<Generation> {
        lock(&self.generations).get_or_render(snapshot.generation, now, || Generation {
            expiration: snapshot.creds.expiration,
            refresh_at: snapshot.refresh_at,
            fetched_at: snapshot.fetched_at.into(),
            files: self
                .files
                .iter()
                .map(|(_, kind)| self.render(*kind, snapshot))
                .collect(),
        })
    }

    fn render(&self, kind: FileKind, snapshot: &Snapshot) -> Result<Arc<SecretBytes>, Error> {
        let text = match (kind, &self.container) {
            (FileKind::Creds(format), _) => render(format, &snapshot.creds, &self.profile)
                .inspect_err(|e| {
                    tracing::error!(error = %e, "cannot render a credentials file");
                })?,
            (FileKind::ContainerEnv, Some(c)) => render_container_env(
                &c.url,
                &c.token,
                &snapshot.creds.endpoint_url,
                &self.profile.region,
            ),
            _ => String::new(),
        };
        Ok(Arc::new(SecretBytes::new(text)))
    }

    /// The status document as of now.
    pub fn status_json(&self) -> String {
        let user = (self.user)(self.cache.fetcher());
        StatusDoc::new(&self.cache.status(), &self.info, user, self.cache.now()).to_json()
    }
}

#[cfg(test)]
mod tests;
