//! The filesystem's logic in plain Rust: names, inodes, modes, sizes and per-handle
//! snapshots. No FUSE types here (see `fuse.rs`), so it is tested without a mount.

use crate::cache::{CredentialCache, Fetch, Snapshot};
use crate::container::ContainerEndpoint;
use crate::error::Error;
use crate::render::{render, render_container_env, Format, Profile};
use crate::secret::SecretBytes;
use crate::status::{MountInfo, StatusDoc};
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The root directory's inode.
pub const ROOT_INO: u64 = 1;

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

/// The files every mount has, in `ls` order; inode = index + 2.
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
    BadHandle,
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
            FsError::BadHandle => libc::EBADF,
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
}

/// Every file's bytes for one snapshot, or why a file could not be rendered.
type Rendered = Arc<Vec<Result<Arc<SecretBytes>, Error>>>;

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
    handles: Mutex<HashMap<u64, Arc<SecretBytes>>>,
    next_handle: AtomicU64,
    /// Renderings of the newest snapshot, by generation, so sizes and reads agree.
    rendered: Mutex<Option<(u64, Rendered)>>,
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
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            rendered: Mutex::new(None),
        }
    }

    /// The inode of a root entry.
    pub fn lookup(&self, parent: u64, name: &str) -> Result<Attr, FsError> {
        if parent != ROOT_INO {
            return Err(FsError::NotADirectory);
        }
        let index = self
            .files
            .iter()
            .position(|(n, _)| *n == name)
            .ok_or(FsError::NotFound)?;
        self.getattr(index as u64 + 2)
    }

    fn kind(&self, ino: u64) -> Result<(usize, FileKind), FsError> {
        let index = ino.checked_sub(2).ok_or(FsError::NotFound)? as usize;
        self.files
            .get(index)
            .map(|(_, k)| (index, *k))
            .ok_or(FsError::NotFound)
    }

    /// Attributes; a credential file's size is that of what an open would serve now.
    pub fn getattr(&self, ino: u64) -> Result<Attr, FsError> {
        let attr = |ino, size, is_dir, perm, mtime| Attr {
            ino,
            size,
            is_dir,
            perm,
            mtime,
            uid: self.uid,
            gid: self.gid,
        };
        if ino == ROOT_INO {
            return Ok(attr(ino, 0, true, 0o500, self.mounted_at));
        }
        let (index, kind) = self.kind(ino)?;
        match kind {
            FileKind::Status => {
                let size = self.status_json().len() as u64;
                Ok(attr(ino, size, false, 0o400, SystemTime::now()))
            }
            FileKind::Creds(_) | FileKind::ContainerEnv => Ok(match self.cache.peek() {
                Some(snapshot) => {
                    let size = self.rendered(&snapshot)[index]
                        .as_ref()
                        .map_or(0, |bytes| bytes.len() as u64);
                    attr(ino, size, false, 0o400, snapshot.fetched_at.into())
                }
                None => attr(ino, 0, false, 0o400, self.mounted_at),
            }),
        }
    }

    /// Opens a file: refreshes credentials first when they are stale, then pins the bytes
    /// this handle will read. Async so a refresh waits on the runtime, not on a FUSE
    /// worker thread: however many readers wait, `status` and `ls` still answer.
    pub async fn open(&self, ino: u64, write: bool) -> Result<u64, FsError> {
        if ino == ROOT_INO {
            return Err(FsError::IsADirectory);
        }
        let (index, kind) = self.kind(ino)?;
        if write {
            return Err(FsError::ReadOnly);
        }
        let bytes = match kind {
            FileKind::Status => Arc::new(SecretBytes::new(self.status_json())),
            FileKind::Creds(_) | FileKind::ContainerEnv => {
                let snapshot = self.cache.current().await.map_err(FsError::Credentials)?;
                self.rendered(&snapshot)[index]
                    .clone()
                    .map_err(FsError::Credentials)?
            }
        };
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(handle, bytes);
        Ok(handle)
    }

    /// Bytes of an open handle's snapshot.
    pub fn read(
        &self,
        handle: u64,
        offset: u64,
        size: u32,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, FsError> {
        let bytes = lock(&self.handles)
            .get(&handle)
            .cloned()
            .ok_or(FsError::BadHandle)?;
        let start = (offset as usize).min(bytes.len());
        let end = start.saturating_add(size as usize).min(bytes.len());
        // The copy handed to the kernel is zeroed once sent, like the snapshot itself.
        Ok(zeroize::Zeroizing::new(bytes[start..end].to_vec()))
    }

    /// Forgets a handle.
    pub fn release(&self, handle: u64) {
        lock(&self.handles).remove(&handle);
    }

    /// The root's entries after `offset`: (inode, is_dir, name, next offset).
    pub fn readdir(
        &self,
        ino: u64,
        offset: u64,
    ) -> Result<Vec<(u64, bool, &'static str, u64)>, FsError> {
        if ino != ROOT_INO {
            return Err(FsError::NotADirectory);
        }
        let mut entries = vec![(ROOT_INO, true, "."), (ROOT_INO, true, "..")];
        entries.extend(
            self.files
                .iter()
                .enumerate()
                .map(|(i, (name, _))| (i as u64 + 2, false, *name)),
        );
        Ok(entries
            .into_iter()
            .enumerate()
            .skip(offset as usize)
            .map(|(i, (ino, dir, name))| (ino, dir, name, i as u64 + 1))
            .collect())
    }

    fn rendered(&self, snapshot: &Snapshot) -> Rendered {
        let mut cached = lock(&self.rendered);
        if let Some((generation, files)) = cached.as_ref() {
            if *generation == snapshot.generation {
                return files.clone();
            }
        }
        let render_one = |kind: &FileKind| -> Result<Arc<SecretBytes>, Error> {
            let text = match (kind, &self.container) {
                (FileKind::Creds(format), _) => render(*format, &snapshot.creds, &self.profile)
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
        };
        let files: Rendered = Arc::new(
            self.files
                .iter()
                .map(|(_, kind)| render_one(kind))
                .collect(),
        );
        // Keep the newest generation only; an older snapshot still being served renders
        // afresh (rare: only readers that opened just before a refresh).
        if cached
            .as_ref()
            .is_none_or(|(g, _)| *g < snapshot.generation)
        {
            *cached = Some((snapshot.generation, files.clone()));
        }
        files
    }

    /// The status document as of now.
    pub fn status_json(&self) -> String {
        let user = (self.user)(self.cache.fetcher());
        StatusDoc::new(&self.cache.status(), &self.info, user, self.cache.now()).to_json()
    }
}

#[cfg(test)]
mod tests;
