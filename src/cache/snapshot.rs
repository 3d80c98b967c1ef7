//! What readers hold: one set of credentials and the moments it stops being served as
//! is. A leaf of `cache`, so the staleness rule (`rule`) reads it without importing the
//! cache that stores it.

use crate::creds::Credentials;
use chrono::{DateTime, Utc};

/// One set of credentials as handed to readers, with the moment it stops being served
/// without a refresh.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one per successful refresh; lets renderers cache per snapshot.
    pub generation: u64,
    pub creds: Credentials,
    /// When the credentials were fetched: the files' mtime.
    pub fetched_at: DateTime<Utc>,
    /// From this moment a read refreshes first.
    pub refresh_at: DateTime<Utc>,
    /// From this moment a read is served at once and starts one background refresh, so
    /// that in steady state no reader waits for the gateway (`--refresh-ahead`).
    pub refresh_ahead_at: DateTime<Utc>,
}

impl Snapshot {
    /// True while the credentials have not expired.
    pub fn valid_at(&self, now: DateTime<Utc>) -> bool {
        now < self.creds.expiration
    }
}
