//! The shared helpers every other test leans on: a wait that fails says what it waited
//! for and what it saw, and a child guard leaves no process behind, even on a panic.

use crate::common::{poll_until, wait_for, wait_for_async, StopOnDrop};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn wait_for_returns_the_value_once_the_probe_holds() {
    let mut looks = 0;
    let value = wait_for("the third look", Duration::from_secs(10), || {
        looks += 1;
        if looks == 3 {
            Ok(looks * 10)
        } else {
            Err(format!("look {looks}"))
        }
    });
    assert_eq!(value, 30);
}

#[test]
#[should_panic(expected = "timed out after 50ms waiting for the answer; last seen: still 41")]
fn a_timed_out_wait_names_what_it_awaited_and_the_last_state() {
    wait_for("the answer", Duration::from_millis(50), || {
        Err::<(), _>("still 41")
    });
}

#[test]
fn poll_until_gives_the_last_state_instead_of_panicking() {
    let mut looks = 0;
    let outcome = poll_until(Duration::from_millis(50), || {
        looks += 1;
        looks > 1_000_000
    });
    assert_eq!(outcome, Err("the condition did not hold".to_string()));
    assert!(looks >= 2, "looked again before giving up: {looks}");
}

#[tokio::test]
#[should_panic(expected = "waiting for a reply; last seen: nothing yet")]
async fn an_async_wait_times_out_the_same_way() {
    wait_for_async("a reply", Duration::from_millis(50), async || None::<u8>).await;
}

/// Whether `pid` is still a process of any kind; a zombie (exited, not reaped) counts.
fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn stopped_children_are_gone_and_reaped_even_when_the_test_panics() {
    let sleeper = || {
        Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (killed, terminated) = (StopOnDrop::kill(sleeper()), StopOnDrop::term(sleeper()));
    let pids = [killed.id(), terminated.id()];
    assert!(pids.iter().all(|pid| exists(*pid)));
    let panicked = std::panic::catch_unwind(move || {
        let _guards = (killed, terminated);
        panic!("a failing test");
    });
    assert!(panicked.is_err());
    for pid in pids {
        assert!(!exists(pid), "process {pid} outlived its guard");
    }
}

/// A process left holding a child's output pipe (a shell's background job outliving the
/// shell) is found by the pipe and killed, so a reader of that pipe reaches its end.
#[test]
fn the_holders_of_a_childs_pipe_are_found_and_killed() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let mut shell = Command::new("sh")
        .args(["-c", "sleep 600 & echo $!"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = shell.stdout.take().unwrap();
    let inode = std::fs::metadata(format!("/proc/self/fd/{}", pipe.as_raw_fd()))
        .unwrap()
        .ino();
    assert!(shell.wait().unwrap().success());
    let mut first = [0u8; 32];
    let n = pipe.read(&mut first).unwrap();
    let sleeper: i32 = std::str::from_utf8(&first[..n])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let killed = crate::common::child::kill_pipe_holders(&[inode]);
    assert_eq!(killed, vec![sleeper]);
    let mut rest = Vec::new();
    pipe.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    // The sleeper, orphaned to init (or a subreaper), is gone: no process is left behind.
    wait_for("the sleeper to end", Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{sleeper}/stat"))
            .map_or(true, |stat| stat.contains(") Z "))
    });
}
