//! `s3credsfs status [--check | --json] [--profile NAME]`: a mount's state for a person,
//! for scripts, and for monitoring. In every form the exit status is the verdict of the
//! monitoring plugin convention ([`Health`]): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, so
//! `status` in a script or a Nagios/Icinga check says the same thing.

use super::mountpoint_of;
use super::our_mount::{read_status, require_our_mount};
use crate::app_error::AppError;
use crate::cli::StatusArgs;
use crate::exit_status::Health;
use crate::mountpoint::{self, MountState};
use crate::status::StatusDoc;
use crate::untrusted::{clean, MAX_QUOTED};
use chrono::{DateTime, Utc};
use std::path::Path;

/// What `status --check` prints before its verdict.
const SERVICE: &str = "S3CREDSFS";

/// The verdict on one profile's document at `now`, and the words saying why.
pub fn judge(doc: &StatusDoc, now: DateTime<Utc>) -> (Health, String) {
    let name = clean(&doc.profile, 64);
    let left = doc
        .expiration
        .as_deref()
        .and_then(|e| DateTime::parse_from_rfc3339(e).ok())
        .map(|e| (e.with_timezone(&Utc) - now).num_seconds());
    let span =
        |s: i64| humantime::format_duration(std::time::Duration::from_secs(s.unsigned_abs()));
    let error = doc.last_error.as_deref().map(|e| clean(e, MAX_QUOTED * 2));
    // Valid: by the daemon's word and by the clock (never trust a "fresh" past expiry).
    let valid = left.filter(|s| *s > 0 && matches!(doc.state.as_str(), "fresh" | "expiring"));
    let Some(s) = valid else {
        let why = match (left, error) {
            _ if doc.state == "empty" => {
                let why =
                    format!("{name}: nothing fetched yet (a --lazy mount before its first read)");
                return (Health::Warning, why);
            }
            (Some(s), Some(e)) if s <= 0 => {
                format!("{name}: no valid credentials, expired {} ago: {e}", span(s))
            }
            (_, Some(e)) => format!("{name}: no valid credentials: {e}"),
            (Some(s), None) if s <= 0 => {
                format!("{name}: no valid credentials, expired {} ago", span(s))
            }
            (_, None) => format!("{name}: no valid credentials"),
        };
        return (Health::Critical, why);
    };
    match error {
        Some(e) => (
            Health::Warning,
            format!(
                "{name}: refreshing fails, credentials valid for {}: {e}",
                span(s)
            ),
        ),
        None if doc.state == "expiring" || s <= doc.min_validity_seconds as i64 => (
            Health::Warning,
            format!("{name}: expiring, valid for {}", span(s)),
        ),
        None => (Health::Ok, format!("{name}: fresh, valid for {}", span(s))),
    }
}

/// The profiles a root document covers: every one in a mount of several, else itself.
fn profiles_of(doc: &StatusDoc) -> Vec<&StatusDoc> {
    match &doc.profiles {
        Some(all) if !all.is_empty() => all.iter().collect(),
        _ => vec![doc],
    }
}

/// The one line of `--check`, and its verdict: the worst profile first, then perfdata
/// (seconds left per profile; warning below the refresh margin, critical below 1 s).
pub fn check_line(profiles: &[&StatusDoc], now: DateTime<Utc>) -> (Health, String) {
    let mut judged: Vec<(Health, String, &StatusDoc)> = profiles
        .iter()
        .map(|doc| {
            let (health, why) = judge(doc, now);
            (health, why, *doc)
        })
        .collect();
    judged.sort_by_key(|j| std::cmp::Reverse(j.0));
    let worst = judged.first().map_or(Health::Unknown, |j| j.0);
    let words: Vec<&str> = judged.iter().map(|j| j.1.as_str()).collect();
    let perf: Vec<String> = judged
        .iter()
        .map(|(_, _, doc)| {
            let left = doc
                .expiration
                .as_deref()
                .and_then(|e| DateTime::parse_from_rfc3339(e).ok())
                .map_or(0, |e| (e.with_timezone(&Utc) - now).num_seconds().max(0));
            let label: String = clean(&doc.profile, 64).replace(['\'', '='], "_");
            // Thresholds in the plugin's range syntax: "N:" alerts below N.
            format!("'{label}'={left}s;{}:;1:;0", doc.min_validity_seconds)
        })
        .collect();
    let line = format!(
        "{SERVICE} {} - {} | {}",
        worst.word(),
        words.join("; "),
        perf.join(" ")
    );
    (worst, line)
}

/// The verdict when there is no document to judge: CRITICAL for a daemon that died
/// (a stale mount), else UNKNOWN.
fn unjudged(path: &Path) -> Health {
    match mountpoint::state(path) {
        MountState::Stale { .. } => Health::Critical,
        _ => Health::Unknown,
    }
}

/// Runs `s3credsfs status`; returns the exit status (the verdict).
pub fn run(args: StatusArgs) -> Health {
    let fail = |health: Health, sentence: String| {
        if args.check {
            println!(
                "{SERVICE} {} - {}",
                health.word(),
                clean(&sentence, MAX_QUOTED * 4)
            );
        } else {
            eprintln!("s3credsfs: error: {sentence}");
        }
        health
    };
    let path = match mountpoint_of(&args.target.mountpoint) {
        Ok(path) => path,
        Err(e) => return fail(Health::Unknown, e.to_string()),
    };
    let text = match require_our_mount(&path).and_then(|()| read_status(&path)) {
        Ok(text) => text,
        Err(e) => return fail(unjudged(&path), e.to_string()),
    };
    let doc: StatusDoc = match serde_json::from_str(&text) {
        Ok(doc) => doc,
        Err(source) => {
            let error = AppError::StatusNotJson {
                path: path.clone(),
                source,
            };
            return fail(Health::Unknown, error.to_string());
        }
    };
    let all = profiles_of(&doc);
    let chosen: Vec<&StatusDoc> = match &args.profile {
        Some(name) => all.into_iter().filter(|p| &p.profile == name).collect(),
        None => all,
    };
    if chosen.is_empty() {
        let sentence = format!(
            "the mount at {} serves no profile {}; `s3credsfs status {}` lists its profiles",
            path.display(),
            clean(args.profile.as_deref().unwrap_or_default(), 64),
            path.display()
        );
        return fail(Health::Unknown, sentence);
    }
    let now = Utc::now();
    let (health, line) = check_line(&chosen, now);
    if args.check {
        println!("{line}");
    } else if args.json {
        match (&args.profile, chosen.first()) {
            (Some(_), Some(one)) => print!("{}", one.to_json()),
            _ => print!("{text}"),
        }
    } else {
        print!("{}", doc.to_human_at(now));
    }
    health
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{CacheStatus, State};
    use crate::status::MountInfo;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn doc(profile: &str, state: State, left: i64, error: Option<&str>) -> StatusDoc {
        let cache = CacheStatus {
            state,
            expiration: Some(now() + chrono::Duration::seconds(left)),
            last_refresh: Some(now() - chrono::Duration::seconds(600)),
            refresh_count: 1,
            last_error: error.map(String::from),
        };
        let info = MountInfo::for_test(profile);
        StatusDoc::new(&cache, &info, None, now())
    }

    #[test]
    fn each_state_gets_its_verdict() {
        let verdict = |d: &StatusDoc| judge(d, now()).0;
        assert_eq!(verdict(&doc("a", State::Fresh, 3000, None)), Health::Ok);
        // Expiring soon: within the refresh margin.
        assert_eq!(
            verdict(&doc("a", State::Expiring, 600, None)),
            Health::Warning
        );
        assert_eq!(
            verdict(&doc("a", State::Fresh, 1100, None)),
            Health::Warning
        );
        // Failing while still valid.
        let failing = doc("a", State::Fresh, 3000, Some("cannot reach https://gw"));
        let (health, why) = judge(&failing, now());
        assert_eq!(health, Health::Warning);
        assert_eq!(
            why,
            "a: refreshing fails, credentials valid for 50m: cannot reach https://gw"
        );
        // No valid credentials.
        let gone = doc("a", State::Error, -3600, Some("Keycloak refused"));
        let (health, why) = judge(&gone, now());
        assert_eq!(health, Health::Critical);
        assert_eq!(
            why,
            "a: no valid credentials, expired 1h ago: Keycloak refused"
        );
        assert_eq!(
            verdict(&doc("a", State::Expired, -5, None)),
            Health::Critical
        );
        // A document claiming fresh for credentials past their expiry is judged by time.
        assert_eq!(verdict(&doc("a", State::Fresh, -5, None)), Health::Critical);
        let mut never = doc("a", State::Error, 0, Some("refused"));
        never.expiration = None;
        assert_eq!(verdict(&never), Health::Critical);
        let mut lazy = doc("a", State::Empty, 0, None);
        lazy.expiration = None;
        assert_eq!(verdict(&lazy), Health::Warning);
    }

    #[test]
    fn the_words_say_how_long_ago_only_for_what_expired() {
        let why = |d: &StatusDoc| judge(d, now());
        // Expired, with or without an error.
        let expired = doc("a", State::Expired, -5, None);
        assert_eq!(
            why(&expired),
            (
                Health::Critical,
                "a: no valid credentials, expired 5s ago".into()
            )
        );
        // At the very second of expiry: no longer valid.
        let at_expiry = doc("a", State::Fresh, 0, None);
        assert_eq!(
            why(&at_expiry),
            (
                Health::Critical,
                "a: no valid credentials, expired 0s ago".into()
            )
        );
        // Not valid by the daemon's word although not yet expired: no "ago".
        let refused = doc("a", State::Error, 100, Some("refused"));
        assert_eq!(
            why(&refused),
            (Health::Critical, "a: no valid credentials: refused".into())
        );
        let odd = doc("a", State::Error, 100, None);
        assert_eq!(
            why(&odd),
            (Health::Critical, "a: no valid credentials".into())
        );
        // A long error is cut short: the line stays readable.
        let long = "x".repeat(10_000);
        let (_, words) = why(&doc("a", State::Error, -5, Some(&long)));
        assert!(
            words.len() < 2 * crate::untrusted::MAX_QUOTED + 64,
            "{}",
            words.len()
        );
        assert!(
            words.len() > 2 * crate::untrusted::MAX_QUOTED,
            "{}",
            words.len()
        );
    }

    #[test]
    fn the_check_line_leads_with_the_worst_and_carries_perfdata() {
        let ok = doc("default", State::Fresh, 3000, None);
        let bad = doc("tds", State::Error, -60, Some("refused"));
        let (health, line) = check_line(&[&ok, &bad], now());
        assert_eq!(health, Health::Critical);
        assert_eq!(
            line,
            "S3CREDSFS CRITICAL - tds: no valid credentials, expired 1m ago: refused; \
             default: fresh, valid for 50m | 'tds'=0s;1200:;1:;0 'default'=3000s;1200:;1:;0"
        );
        let (health, line) = check_line(&[&ok], now());
        assert_eq!(health, Health::Ok);
        assert!(line.starts_with("S3CREDSFS OK - default: fresh"), "{line}");
        assert_eq!(line.lines().count(), 1);
    }

    #[test]
    fn a_mount_of_several_profiles_is_judged_by_every_profile_it_lists() {
        let mut root = doc("default", State::Fresh, 3000, None);
        let listed = |d: &StatusDoc| -> Vec<String> {
            profiles_of(d).iter().map(|p| p.profile.clone()).collect()
        };
        // One profile: the document itself.
        assert_eq!(listed(&root), ["default"]);
        // An empty list (a hostile or truncated document) still judges the root.
        root.profiles = Some(vec![]);
        assert_eq!(listed(&root), ["default"]);
        root.profiles = Some(vec![
            doc("default", State::Fresh, 3000, None),
            doc("tds", State::Error, -60, Some("refused")),
        ]);
        assert_eq!(listed(&root), ["default", "tds"]);
    }

    #[test]
    fn a_hostile_document_stays_on_one_line() {
        let mut evil = doc("a'=\nb", State::Fresh, 3000, Some("x\ny\x1b[2J"));
        evil.profile = "a'=\nb".into();
        let (_, line) = check_line(&[&evil], now());
        assert_eq!(line.lines().count(), 1, "{line:?}");
        assert!(!line.contains('\x1b'), "{line:?}");
        assert!(line.contains("'a__ b'="), "{line:?}");
    }
}
