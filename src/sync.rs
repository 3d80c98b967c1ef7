//! The one way this crate takes a lock.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: every mutex here guards plain values (counters,
/// snapshots, maps) that stay consistent between statements, and a daemon serving
/// credentials must keep serving after a panic elsewhere, which `cache` already turns
/// into a failed refresh.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
