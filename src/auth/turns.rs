//! Password logins take turns per user within the process. Keycloak (26.7, brute-force
//! detection on) refuses a login, even with the right password, while another login of
//! the same user is in flight: the same 400 `invalid_grant` "Invalid user credentials" as
//! a wrong password, with no failure counted. A mount's profiles log in at once at start,
//! and two of them may name the same user (even through two gateways in front of one
//! Keycloak), so each waits for the other's login to end.

use crate::sync::lock;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};

/// One lock per user name (as Keycloak compares them: without case), kept only while
/// some login holds or awaits it.
static TURNS: Mutex<BTreeMap<String, Weak<tokio::sync::Mutex<()>>>> = Mutex::new(BTreeMap::new());

/// The turn of `username`'s password logins: held while one is in flight.
pub struct Turn {
    _held: tokio::sync::OwnedMutexGuard<()>,
}

/// Waits until no other password login of `username` in this process is in flight.
pub async fn take(username: &str) -> Turn {
    let key = username.to_lowercase();
    let shared = {
        let mut turns = lock(&TURNS);
        turns.retain(|_, turn| turn.strong_count() > 0);
        match turns.get(&key).and_then(Weak::upgrade) {
            Some(turn) => turn,
            None => {
                let turn = Arc::new(tokio::sync::Mutex::new(()));
                turns.insert(key, Arc::downgrade(&turn));
                turn
            }
        }
    };
    Turn {
        _held: shared.lock_owned().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_users_logins_take_turns_and_another_users_do_not_wait() {
        let first = take("Vers").await;
        // The same user, spelt as Keycloak would still match it: waits.
        let waiting = tokio::spawn(async { take("vers").await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "a second login of vers did not wait"
        );
        // Another user: at once.
        let other = tokio::time::timeout(Duration::from_secs(5), take("norole")).await;
        assert!(other.is_ok(), "another user's login waited");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(second.is_ok(), "the second login never got its turn");
    }

    #[tokio::test]
    async fn a_finished_users_lock_is_not_kept() {
        drop(take("someone-gone").await);
        drop(take("someone-else").await);
        assert!(!lock(&TURNS).contains_key("someone-gone"));
    }
}
