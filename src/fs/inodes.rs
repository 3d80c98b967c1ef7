//! Which inode numbers mean what, and the two tables behind them: the renderings of each
//! file from still-valid credentials, and the frozen `status` documents the kernel holds.
//!
//! A rendering's inode is new whenever its content would change (a new credentials
//! generation of any profile it shows), so its bytes never change: the kernel's page
//! cache for it is always right and an open descriptor keeps reading what it opened.

use crate::error::Error;
use crate::secret::SecretBytes;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

/// The root directory's inode.
pub const ROOT_INO: u64 = 1;
/// The `profiles` directory's inode.
pub const PROFILES_INO: u64 = 2;
/// Profile directory `i` has inode `PROFILE_DIR_BASE + i`.
const PROFILE_DIR_BASE: u64 = 0x10;

/// Low byte of a rendering's inode.
const RENDERING_TAG: u64 = 0x40;
/// Low byte of a `status` inode.
const STATUS_TAG: u64 = 0x80;

/// Renderings kept per file besides expiry: the newest one plus a few that descriptors
/// opened before recent refreshes may still read.
pub const KEPT_GENERATIONS: usize = 4;

/// The most frozen `status` documents kept, so a kernel that never sends FORGET cannot
/// grow the daemon's memory without bound; the oldest goes first.
pub const KEPT_STATUS: usize = 1024;

/// A directory of the mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    Root,
    /// `profiles/NAME` for profile number `i`.
    Profile(usize),
}

/// One file of one directory: what a name stands for across refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot {
    pub dir: Dir,
    pub file: usize,
}

/// What one profile contributed to a rendering: a credentials generation, or a failure
/// (by a hash of its error), so a rendering is reused exactly while its inputs hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Input {
    Generation(u64),
    Failed(u64),
}

/// What an inode number names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ino {
    Root,
    Profiles,
    /// `profiles/NAME` for profile number `i` (not checked against the profile count).
    ProfileDir(usize),
    /// Rendering number `seq` (>= 1).
    Rendering(u64),
    /// The `status` document frozen at lookup number `seq` (>= 1).
    Status(u64),
    Unknown,
}

/// The inode of profile directory `i`.
pub fn profile_dir_ino(i: usize) -> u64 {
    PROFILE_DIR_BASE + i as u64
}

fn rendering_ino(seq: u64) -> u64 {
    (seq << 8) | RENDERING_TAG
}

fn status_ino(seq: u64) -> u64 {
    (seq << 8) | STATUS_TAG
}

/// Decodes an inode number.
pub fn decode(ino: u64) -> Ino {
    let (high, low) = (ino >> 8, ino & 0xff);
    match (high, low) {
        (0, 1) => Ino::Root,
        (0, 2) => Ino::Profiles,
        (0, low) if (PROFILE_DIR_BASE..RENDERING_TAG).contains(&low) => {
            Ino::ProfileDir((low - PROFILE_DIR_BASE) as usize)
        }
        (seq, RENDERING_TAG) if seq >= 1 => Ino::Rendering(seq),
        (seq, STATUS_TAG) if seq >= 1 => Ino::Status(seq),
        _ => Ino::Unknown,
    }
}

/// One file's bytes from given inputs, or why it could not be rendered.
pub struct Rendering {
    pub slot: Slot,
    inputs: Vec<Input>,
    /// The earliest expiry of the credentials it shows: it is gone after this.
    pub expiration: DateTime<Utc>,
    /// The earliest refresh time of those credentials: names point here until then.
    pub refresh_at: DateTime<Utc>,
    pub fetched_at: SystemTime,
    pub bytes: Result<Arc<SecretBytes>, Error>,
}

impl Rendering {
    /// A rendering of `slot` (its inputs are recorded when it is kept).
    pub fn new(
        slot: Slot,
        expiration: DateTime<Utc>,
        refresh_at: DateTime<Utc>,
        fetched_at: SystemTime,
        bytes: Result<Arc<SecretBytes>, Error>,
    ) -> Self {
        Rendering {
            slot,
            inputs: Vec::new(),
            expiration,
            refresh_at,
            fetched_at,
            bytes,
        }
    }
}

/// The renderings still served; dropping one zeroizes its bytes.
#[derive(Default)]
pub struct Renderings {
    next: u64,
    by_seq: BTreeMap<u64, Arc<Rendering>>,
}

impl Renderings {
    /// Rendering `seq` if it is kept and its credentials have not expired at `now`.
    pub fn get(&mut self, seq: u64, now: DateTime<Utc>) -> Option<Arc<Rendering>> {
        self.prune(now);
        self.by_seq.get(&seq).cloned()
    }

    /// The inode and rendering of `slot` from `inputs`: the kept one, or one made by
    /// `render` the first time these inputs are seen.
    pub fn get_or_render(
        &mut self,
        slot: Slot,
        inputs: &[Input],
        now: DateTime<Utc>,
        render: impl FnOnce() -> Rendering,
    ) -> (u64, Arc<Rendering>) {
        self.prune(now);
        let kept = self
            .by_seq
            .iter()
            .rev()
            .find(|(_, r)| r.slot == slot && r.inputs == inputs);
        if let Some((&seq, rendering)) = kept {
            return (rendering_ino(seq), rendering.clone());
        }
        self.next += 1;
        let mut rendering = render();
        rendering.inputs = inputs.to_vec();
        let rendering = Arc::new(rendering);
        self.by_seq.insert(self.next, rendering.clone());
        let seqs: Vec<u64> = self
            .by_seq
            .iter()
            .filter(|(_, r)| r.slot == slot)
            .map(|(&seq, _)| seq)
            .collect();
        for seq in &seqs[..seqs.len().saturating_sub(KEPT_GENERATIONS)] {
            self.by_seq.remove(seq);
        }
        (rendering_ino(self.next), rendering)
    }

    /// The inode of the newest rendering of `slot`, if any (what a listing shows).
    pub fn newest(&self, slot: Slot) -> Option<u64> {
        self.by_seq
            .iter()
            .rev()
            .find(|(_, r)| r.slot == slot)
            .map(|(&seq, _)| rendering_ino(seq))
    }

    /// Drops renderings whose credentials expired.
    fn prune(&mut self, now: DateTime<Utc>) {
        self.by_seq.retain(|_, r| now < r.expiration);
    }

    /// How many renderings of `slot` are kept.
    #[cfg(test)]
    pub fn kept(&self, slot: Slot) -> usize {
        self.by_seq.values().filter(|r| r.slot == slot).count()
    }
}

/// One frozen `status` document and how many lookups the kernel holds on it.
pub struct StatusDoc {
    pub bytes: Arc<Vec<u8>>,
    pub mtime: SystemTime,
    lookups: u64,
}

/// The `status` documents the kernel may still read, by sequence number.
#[derive(Default)]
pub struct StatusDocs {
    next: u64,
    by_seq: BTreeMap<u64, StatusDoc>,
}

impl StatusDocs {
    /// Freezes a new document and returns its inode.
    pub fn insert(&mut self, bytes: Vec<u8>, mtime: SystemTime) -> u64 {
        self.next += 1;
        while self.by_seq.len() >= KEPT_STATUS {
            self.by_seq.pop_first();
        }
        self.by_seq.insert(
            self.next,
            StatusDoc {
                bytes: Arc::new(bytes),
                mtime,
                lookups: 1,
            },
        );
        status_ino(self.next)
    }

    /// The document `seq`, if still kept.
    pub fn get(&self, seq: u64) -> Option<(Arc<Vec<u8>>, SystemTime)> {
        self.by_seq.get(&seq).map(|d| (d.bytes.clone(), d.mtime))
    }

    /// The kernel dropped `nlookup` references: the document goes once none remain.
    pub fn forget(&mut self, seq: u64, nlookup: u64) {
        if let Some(doc) = self.by_seq.get_mut(&seq) {
            doc.lookups = doc.lookups.saturating_sub(nlookup);
            if doc.lookups == 0 {
                self.by_seq.remove(&seq);
            }
        }
    }

    /// How many documents are kept.
    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.by_seq.len()
    }
}
