use super::*;
use std::os::unix::fs::PermissionsExt;

const URL: &str = "https://gw.example/keycloak/realms/shasta/protocol/openid-connect/token";

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
}

#[test]
fn a_refused_password_is_remembered_for_twelve_hours_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let memory = RefusalMemory::in_dir(dir.path().join("refused"));
    assert_eq!(
        memory.refused(URL, "vers", "wrong", at(0)),
        None,
        "nothing yet"
    );
    memory.remember(URL, "vers", "wrong", at(0));
    let found = memory
        .refused(URL, "vers", "wrong", at(1))
        .expect("remembered");
    assert_eq!(found.at, at(0));
    // Keycloak compares user names without case.
    assert!(memory.refused(URL, "VERS", "wrong", at(1)).is_some());
    // Another password, user or Keycloak: not this refusal.
    assert_eq!(memory.refused(URL, "vers", "wrong2", at(1)), None);
    assert_eq!(memory.refused(URL, "norole", "wrong", at(1)), None);
    assert_eq!(
        memory.refused("https://other/token", "vers", "wrong", at(1)),
        None
    );
    // One second before twelve hours: still; exactly then: no more.
    let limit = REMEMBERED.num_seconds();
    assert!(memory
        .refused(URL, "vers", "wrong", at(limit - 1))
        .is_some());
    assert_eq!(memory.refused(URL, "vers", "wrong", at(limit)), None);
    // A refusal dated in the future (a clock set back) is not believed.
    assert_eq!(memory.refused(URL, "vers", "wrong", at(-1)), None);
}

#[test]
fn the_records_hold_no_password_and_no_user_name_and_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let memory = RefusalMemory::in_dir(dir.path().join("refused"));
    memory.remember(URL, "vers", "hunter2-secret", at(0));
    let refused = dir.path().join("refused");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&refused), 0o700);
    let mut files = 0;
    for entry in std::fs::read_dir(&refused).unwrap() {
        let path = entry.unwrap().path();
        files += 1;
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in ["hunter2-secret", "vers", "gw.example"] {
            assert!(!text.contains(secret), "{secret} in {}", path.display());
            assert!(!path.to_string_lossy().contains(secret));
        }
    }
    assert_eq!(files, 2, "the key and one record");
}

#[test]
fn a_new_refused_password_replaces_the_old_and_forget_clears_it() {
    let dir = tempfile::tempdir().unwrap();
    let memory = RefusalMemory::in_dir(dir.path().join("refused"));
    memory.remember(URL, "vers", "first", at(0));
    memory.remember(URL, "vers", "second", at(5));
    assert_eq!(memory.refused(URL, "vers", "first", at(6)), None);
    assert_eq!(
        memory.refused(URL, "vers", "second", at(6)).unwrap().at,
        at(5)
    );
    memory.forget(URL, "vers");
    assert_eq!(memory.refused(URL, "vers", "second", at(6)), None);
}

#[test]
fn a_record_someone_else_could_have_written_is_not_believed() {
    // A record open to others might have been planted: it would stop a good password.
    let dir = tempfile::tempdir().unwrap();
    let memory = RefusalMemory::in_dir(dir.path().join("refused"));
    memory.remember(URL, "vers", "wrong", at(0));
    let found = memory.refused(URL, "vers", "wrong", at(1)).unwrap();
    std::fs::set_permissions(&found.file, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(memory.refused(URL, "vers", "wrong", at(1)), None);
}

#[test]
fn an_unwritable_memory_remembers_nothing_and_does_not_fail() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let memory = RefusalMemory::in_dir(blocker.join("refused"));
    memory.remember(URL, "vers", "wrong", at(0));
    assert_eq!(memory.refused(URL, "vers", "wrong", at(1)), None);
}

#[test]
fn a_record_dated_at_the_end_of_time_is_not_believed_and_does_not_panic() {
    // The record's date is not under the tag: a damaged file (or the user's own edit)
    // may hold any number, and adding twelve hours to the largest would overflow.
    let dir = tempfile::tempdir().unwrap();
    let memory = RefusalMemory::in_dir(dir.path().join("refused"));
    memory.remember(URL, "vers", "wrong", at(0));
    let found = memory.refused(URL, "vers", "wrong", at(1)).unwrap();
    let text = std::fs::read_to_string(&found.file).unwrap();
    let (_, tag) = text.trim().split_once(' ').unwrap();
    let last = DateTime::<Utc>::MAX_UTC.timestamp();
    std::fs::write(&found.file, format!("{last} {tag}\n")).unwrap();
    assert_eq!(memory.refused(URL, "vers", "wrong", at(1)), None);
    assert_eq!(
        memory.refused(URL, "vers", "wrong", DateTime::<Utc>::MAX_UTC),
        None
    );
}

#[test]
fn processes_making_the_key_at_once_all_use_the_one_key() {
    // Each thread stands for a process starting at the same time with a fresh memory: a
    // key seen before its maker wrote it (empty) would leave that process without a
    // memory, and one replaced by another's would make the first's records never match.
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let refused = dir.path().join("refused");
        std::fs::create_dir(&refused).unwrap();
        let users: Vec<String> = (0..8).map(|i| format!("user{i}")).collect();
        let barrier = std::sync::Barrier::new(users.len());
        std::thread::scope(|scope| {
            for user in &users {
                let (memory, barrier) = (RefusalMemory::in_dir(refused.clone()), &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    memory.remember(URL, user, "wrong", at(0));
                });
            }
        });
        let memory = RefusalMemory::in_dir(refused.clone());
        for user in &users {
            assert!(
                memory.refused(URL, user, "wrong", at(1)).is_some(),
                "round {round}: {user}'s refusal was lost"
            );
        }
    }
}

#[test]
fn a_key_others_can_read_is_not_used() {
    // With the key, whoever reads the records can try passwords against them offline.
    let dir = tempfile::tempdir().unwrap();
    let memory = RefusalMemory::in_dir(dir.path().join("refused"));
    memory.remember(URL, "vers", "wrong", at(0));
    assert!(memory.refused(URL, "vers", "wrong", at(1)).is_some());
    let key = dir.path().join("refused/key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(memory.refused(URL, "vers", "wrong", at(1)), None);
}

#[test]
fn a_record_or_key_another_user_owns_is_not_believed() {
    // Another user who could write the directory (or a copy of ours) would otherwise stop
    // a right password with a record, or pick the key that records are checked with.
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: giving a file to another user needs root");
        return;
    }
    let other = Some(nix::unistd::Uid::from_raw(4242));
    for planted in ["record", "key"] {
        let dir = tempfile::tempdir().unwrap();
        let memory = RefusalMemory::in_dir(dir.path().join("refused"));
        memory.remember(URL, "vers", "wrong", at(0));
        let found = memory.refused(URL, "vers", "wrong", at(1)).unwrap();
        let file = match planted {
            "record" => found.file,
            _ => dir.path().join("refused/key"),
        };
        nix::unistd::chown(&file, other, None).unwrap();
        assert_eq!(
            memory.refused(URL, "vers", "wrong", at(1)),
            None,
            "{planted} of user 4242 believed"
        );
    }
}

#[test]
fn a_damaged_record_is_not_believed_and_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let memory = RefusalMemory::in_dir(dir.path().join("refused"));
    memory.remember(URL, "vers", "wrong", at(0));
    let file = memory.refused(URL, "vers", "wrong", at(1)).unwrap().file;
    let text = std::fs::read_to_string(&file).unwrap();
    let (date, tag) = text.trim().split_once(' ').unwrap();
    for damaged in [
        format!("{date} {}", &tag[1..]),
        format!("{date} é{}", &tag[2..]),
        format!("{date} zz{}", &tag[2..]),
        date.to_string(),
        format!("soon {tag}"),
    ] {
        std::fs::write(&file, &damaged).unwrap();
        assert_eq!(
            memory.refused(URL, "vers", "wrong", at(1)),
            None,
            "{damaged}"
        );
    }
}

#[test]
fn the_memory_is_under_an_absolute_state_dir_or_an_existing_home_only() {
    let home = tempfile::tempdir().unwrap();
    let home_path = home.path().as_os_str().to_owned();
    let file = home.path().join("file");
    std::fs::write(&file, "").unwrap();
    let dir_of = |vars: &[(&str, &std::ffi::OsStr)]| {
        RefusalMemory::from_vars(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_os_string())
        })
        .map(|memory| memory.dir)
    };
    let state = std::ffi::OsStr::new("/var/state");
    assert_eq!(
        dir_of(&[("XDG_STATE_HOME", state), ("HOME", &home_path)]),
        Some(PathBuf::from("/var/state/s3credsfs/refused"))
    );
    // A relative XDG_STATE_HOME would be under wherever the process was started.
    let relative = std::ffi::OsStr::new("state");
    assert_eq!(
        dir_of(&[("XDG_STATE_HOME", relative), ("HOME", &home_path)]),
        Some(home.path().join(".local/state/s3credsfs/refused"))
    );
    assert_eq!(dir_of(&[("HOME", relative)]), None, "relative HOME");
    assert_eq!(dir_of(&[("HOME", file.as_os_str())]), None, "HOME a file");
    let gone = home.path().join("gone");
    assert_eq!(dir_of(&[("HOME", gone.as_os_str())]), None, "HOME missing");
    assert_eq!(dir_of(&[]), None, "nothing set");
}

/// The warning for a memory that cannot be written says why (the administrator's fix
/// depends on it): here a key of the wrong length, and a directory that is a file.
#[test]
fn a_memory_that_cannot_be_written_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let refused = dir.path().join("refused");
    let memory = RefusalMemory::in_dir(refused.clone());
    std::fs::create_dir(&refused).unwrap();
    std::fs::set_permissions(&refused, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(refused.join("key"), b"short").unwrap();
    std::fs::set_permissions(refused.join("key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = crate::test_log::logged(tracing::Level::WARN, || {
        memory.remember(URL, "vers", "wrong", at(0));
    });
    assert!(
        text.contains("cannot remember the refused password"),
        "{text}"
    );
    assert!(text.contains("is not 32 bytes long; remove it"), "{text}");
    assert!(!text.contains("wrong"), "no password in the log: {text}");
    assert_eq!(memory.refused(URL, "vers", "wrong", at(1)), None);

    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let text = crate::test_log::logged(tracing::Level::WARN, || {
        RefusalMemory::in_dir(file.clone()).remember(URL, "vers", "wrong", at(0));
    });
    assert!(
        text.contains("cannot remember the refused password"),
        "{text}"
    );
    assert!(text.contains("error="), "the cause is logged: {text}");
}
