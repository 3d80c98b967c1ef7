//! Which inode numbers mean what, and the two tables behind them: the renderings of each
//! still-valid credentials generation, and the frozen `status` documents the kernel holds.
//!
//! An inode's bytes never change, so the kernel's page cache for it is always right and
//! an open descriptor keeps reading the generation it opened: no invalidation, no splice.

use crate::error::Error;
use crate::secret::SecretBytes;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

/// The root directory's inode.
pub const ROOT_INO: u64 = 1;

/// Low byte of a `status` inode; credentials files use 2 up to 2 + the number of files.
const STATUS_TAG: u64 = 0x80;

/// Generations of rendered credentials kept besides expiry: the newest one plus a few
/// that descriptors opened before recent refreshes may still read.
pub const KEPT_GENERATIONS: usize = 4;

/// The most frozen `status` documents kept, so a kernel that never sends FORGET cannot
/// grow the daemon's memory without bound; the oldest goes first.
pub const KEPT_STATUS: usize = 1024;

/// What an inode number names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ino {
    Root,
    /// File `index` rendered from credentials generation `generation` (>= 1).
    Generation {
        generation: u64,
        index: usize,
    },
    /// The `status` document frozen at lookup number `seq` (>= 1).
    Status(u64),
    Unknown,
}

/// The inode of file `index` of credentials generation `generation`.
pub fn generation_ino(generation: u64, index: usize) -> u64 {
    (generation << 8) | (index as u64 + 2)
}

fn status_ino(seq: u64) -> u64 {
    (seq << 8) | STATUS_TAG
}

/// Decodes an inode number; `files` is how many files the root has.
pub fn decode(ino: u64, files: usize) -> Ino {
    let (high, low) = (ino >> 8, ino & 0xff);
    match (high, low) {
        (0, 1) => Ino::Root,
        (seq, STATUS_TAG) if seq >= 1 => Ino::Status(seq),
        (generation, low) if generation >= 1 && low >= 2 && ((low - 2) as usize) < files => {
            Ino::Generation {
                generation,
                index: (low - 2) as usize,
            }
        }
        _ => Ino::Unknown,
    }
}

/// Every file's bytes for one credentials generation, or why a file could not be rendered.
pub struct Generation {
    pub expiration: DateTime<Utc>,
    pub refresh_at: DateTime<Utc>,
    pub fetched_at: SystemTime,
    pub files: Vec<Result<Arc<SecretBytes>, Error>>,
}

/// The renderings of the generations still served; dropping one zeroizes its bytes.
#[derive(Default)]
pub struct Generations {
    by_generation: BTreeMap<u64, Arc<Generation>>,
}

impl Generations {
    /// The generation if it is kept and its credentials have not expired at `now`.
    pub fn get(&mut self, generation: u64, now: DateTime<Utc>) -> Option<Arc<Generation>> {
        self.prune(now);
        self.by_generation.get(&generation).cloned()
    }

    /// The generation, rendered by `render` the first time it is asked for.
    pub fn get_or_render(
        &mut self,
        generation: u64,
        now: DateTime<Utc>,
        render: impl FnOnce() -> Generation,
    ) -> Arc<Generation> {
        let rendered = self
            .by_generation
            .entry(generation)
            .or_insert_with(|| Arc::new(render()))
            .clone();
        self.prune(now);
        rendered
    }

    /// Drops generations whose credentials expired, and all but the newest few.
    fn prune(&mut self, now: DateTime<Utc>) {
        self.by_generation.retain(|_, g| now < g.expiration);
        while self.by_generation.len() > KEPT_GENERATIONS {
            self.by_generation.pop_first();
        }
    }

    /// How many generations are kept.
    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.by_generation.len()
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
