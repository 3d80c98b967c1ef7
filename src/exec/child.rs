//! Running the command: spawn it, pass signals on, and turn its end into our exit code.
//!
//! The forwarded signals are blocked in every thread from the start (the runtime's
//! threads are created later and inherit the mask) and taken by one thread with
//! `sigwaitinfo`, which tells who sent each one. That is what avoids a double delivery:
//! a terminal's ^C, ^\ or hangup is sent by the kernel to the whole foreground process
//! group, and the command shares ours, so it already has its copy; passing the signal on
//! too would make, say, a shell's INT trap run twice. Like `sudo` without a pty, we
//! forward what a process sent to us alone (`kill PID`), and what the kernel sent only
//! when the command has left our process group. A signal the command sends to us is not
//! sent back to it. One case still doubles: a process signalling our whole group with
//! `kill -- -PGID` reaches the command directly and again through us; nothing in the
//! signal says it was sent to a group.
//!
//! The child starts with an empty signal mask (it would inherit ours, with the forwarded
//! signals blocked); ignored signals stay ignored, as `nohup` wants.

use crate::sync::lock;
use crate::untrusted::clean;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;
use std::ffi::{OsStr, OsString};
use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, Mutex};

/// The signals passed on to the command.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Where a signal goes.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// No command yet: a signal ends us, as it would have without forwarding.
    Before,
    /// The command runs (or has ended but is not reaped, so its pid is still ours).
    Running(Pid),
    /// The command has ended and is being reaped: its pid may soon name another process.
    After,
}

/// Takes the forwarded signals for the whole process and passes them to the command.
pub struct Forwarder {
    target: Arc<Mutex<Target>>,
}

/// Whether a signal we received should be passed on to the command.
///
/// `code` is the signal's `si_code`: positive when the kernel sent it (a terminal's ^C,
/// ^\ or hangup goes to a whole process group), zero or negative when a process did.
pub fn should_forward(code: i32, sender: i32, child: i32, child_in_our_group: bool) -> bool {
    if code > 0 {
        // The kernel signals groups: the command got its own copy if it is in ours.
        return !child_in_our_group;
    }
    // The command signalling us must not get its own signal back.
    sender != child
}

/// Whether `signal` is ignored now (as `nohup` leaves SIGHUP).
fn ignored(signal: Signal) -> bool {
    // SAFETY: an all-zero sigaction is a valid value; sigaction only writes to it.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries the current one.
    let queried = unsafe { libc::sigaction(signal as libc::c_int, std::ptr::null(), &mut current) };
    queried == 0 && current.sa_sigaction == libc::SIG_IGN
}

/// The forwarded signals that are not ignored: an ignored one stays ignored, by us and
/// by the command, which inherits that.
fn forwarded_set() -> SigSet {
    let mut set = SigSet::empty();
    for signal in FORWARDED.into_iter().filter(|s| !ignored(*s)) {
        set.add(signal);
    }
    set
}

/// The next forwarded signal: (number, `si_code`, sender's pid).
fn next_signal(set: &SigSet) -> (i32, i32, i32) {
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value; sigwaitinfo fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t and `info` a writable siginfo_t.
        let signo = unsafe { libc::sigwaitinfo(set.as_ref(), &mut info) };
        if signo > 0 {
            // SAFETY: the signals waited for are all ones whose siginfo carries a pid.
            let sender = unsafe { info.si_pid() };
            return (signo, info.si_code, sender);
        }
    }
}

fn in_our_group(child: Pid) -> bool {
    nix::unistd::getpgid(Some(child)).ok() == Some(nix::unistd::getpgrp())
}

impl Forwarder {
    /// Blocks the forwarded signals and starts the thread that takes them. Must run before
    /// any other thread exists, so that none of them can receive a signal instead.
    pub fn start() -> std::io::Result<Forwarder> {
        let set = forwarded_set();
        set.thread_block().map_err(std::io::Error::from)?;
        let target = Arc::new(Mutex::new(Target::Before));
        let shared = target.clone();
        std::thread::Builder::new()
            .name("s3credsfs-signals".into())
            .spawn(move || loop {
                let (signo, code, sender) = next_signal(&set);
                // Held while signalling, so the command cannot be reaped meanwhile.
                let target = lock(&shared);
                match *target {
                    Target::Before => std::process::exit(128 + signo),
                    Target::Running(child) => {
                        let Ok(signal) = Signal::try_from(signo) else {
                            continue;
                        };
                        let group = in_our_group(child);
                        if should_forward(code, sender, child.as_raw(), group) {
                            tracing::debug!(signal = %signal, "passing a signal on to the command");
                            let _ = nix::sys::signal::kill(child, signal);
                        } else {
                            tracing::debug!(
                                signal = %signal,
                                from_kernel = code > 0,
                                "not passing on a signal the command has already received"
                            );
                        }
                    }
                    Target::After => {}
                }
            })?;
        Ok(Forwarder { target })
    }
}

/// Why the command could not be started: the sentence and the shell's exit code for it.
#[derive(Debug)]
pub struct SpawnFailure {
    pub sentence: String,
    pub code: i32,
}

fn spawn_failure(program: &OsStr, error: &std::io::Error) -> SpawnFailure {
    let name = clean(&program.to_string_lossy(), 80);
    match error.kind() {
        std::io::ErrorKind::NotFound => SpawnFailure {
            sentence: format!(
                "cannot run `{name}`: there is no such command (searched PATH); check its name or give its full path"
            ),
            code: 127,
        },
        std::io::ErrorKind::PermissionDenied => SpawnFailure {
            sentence: format!(
                "cannot run `{name}`: it is not executable (permission denied); check its mode with `ls -l`"
            ),
            code: 126,
        },
        _ => SpawnFailure {
            sentence: format!("cannot run `{name}` ({error}); check that it is a program"),
            code: 126,
        },
    }
}

/// Runs `program` with `args`, removing every variable named in `hidden`, setting (`Some`)
/// or removing (`None`) each variable of `env` and inheriting the rest; returns its exit code, or 128 + N when signal N killed
/// it, as shells do.
pub fn run(
    forwarder: &Forwarder,
    program: &OsStr,
    args: &[OsString],
    env: &[(&'static str, Option<OsString>)],
    hidden: &[String],
) -> Result<i32, SpawnFailure> {
    let mut command = std::process::Command::new(program);
    command.args(args);
    // SAFETY: sigprocmask is async-signal-safe, so it may run between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&SigSet::empty()),
                None,
            )
            .map_err(std::io::Error::from)
        });
    }
    for name in hidden {
        command.env_remove(name);
    }
    for (name, value) in env {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    // Held across the spawn: a signal arriving meanwhile waits, then goes to the command
    // instead of ending us and orphaning it.
    let mut target = lock(&forwarder.target);
    let mut child = command
        .spawn()
        .map_err(|error| spawn_failure(program, &error))?;
    let pid = Pid::from_raw(child.id() as libc::pid_t);
    *target = Target::Running(pid);
    drop(target);
    // Wait without reaping, so the pid stays the command's while signals may still go to it.
    let exited = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
    while let Err(nix::errno::Errno::EINTR) = waitid(Id::Pid(pid), exited) {}
    *lock(&forwarder.target) = Target::After;
    let status = child.wait().map_err(|error| SpawnFailure {
        sentence: format!(
            "cannot learn how the command ended ({error}); this is a bug in s3credsfs"
        ),
        code: 1,
    })?;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|n| 128 + n))
        .unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_signal_reaches_a_command_in_our_group_once() {
        // ^C from a terminal: the kernel sent it to the group, the command has it already.
        assert!(!should_forward(libc::SI_KERNEL, 0, 42, true));
        // A command in a group of its own did not get it: pass it on.
        assert!(should_forward(libc::SI_KERNEL, 0, 42, false));
    }

    #[test]
    fn signals_sent_to_us_are_passed_on_except_the_commands_own() {
        assert!(should_forward(libc::SI_USER, 7, 42, true));
        assert!(should_forward(libc::SI_QUEUE, 7, 42, true));
        assert!(should_forward(libc::SI_TKILL, 7, 42, false));
        assert!(!should_forward(libc::SI_USER, 42, 42, true));
    }

    #[test]
    fn spawn_failures_have_the_shells_codes() {
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let failure = spawn_failure(OsStr::new("no-such\x1b[2J"), &missing);
        assert_eq!(failure.code, 127);
        assert!(!failure.sentence.contains('\x1b'), "{}", failure.sentence);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let failure = spawn_failure(OsStr::new("x"), &denied);
        assert_eq!(failure.code, 126);
        assert!(
            failure.sentence.contains("not executable"),
            "{}",
            failure.sentence
        );
        let other = std::io::Error::from(std::io::ErrorKind::InvalidData);
        let failure = spawn_failure(OsStr::new("x"), &other);
        assert_eq!(failure.code, 126);
        assert!(
            failure.sentence.contains("check that it is a program"),
            "{}",
            failure.sentence
        );
    }

    /// A forwarder whose signal thread is not started: `run` records the command in it, and
    /// the test process's own signals are left alone.
    fn idle_forwarder() -> Forwarder {
        Forwarder {
            target: Arc::new(Mutex::new(Target::Before)),
        }
    }

    fn sh(script: &str) -> Result<i32, SpawnFailure> {
        let args = [OsString::from("-c"), OsString::from(script)];
        run(&idle_forwarder(), OsStr::new("sh"), &args, &[], &[])
    }

    #[test]
    fn the_commands_end_becomes_our_exit_code_as_in_a_shell() {
        assert_eq!(sh("exit 0").unwrap(), 0);
        assert_eq!(sh("exit 3").unwrap(), 3);
        // Killed by signal N: 128 + N.
        assert_eq!(sh("kill -TERM $$").unwrap(), 128 + libc::SIGTERM);
        assert_eq!(sh("kill -KILL $$").unwrap(), 128 + libc::SIGKILL);
    }

    /// Kills and reaps a process a test started, even when the test fails.
    struct Reaped(std::process::Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn a_command_in_a_process_group_of_its_own_is_told_apart() {
        use std::os::unix::process::CommandExt;
        let start = |own_group: bool| {
            let mut command = std::process::Command::new("sleep");
            command.arg("60");
            if own_group {
                command.process_group(0);
            }
            let child = Reaped(command.spawn().unwrap());
            let pid = Pid::from_raw(child.0.id() as libc::pid_t);
            (child, pid)
        };
        let (_ours, in_ours) = start(false);
        let (_apart, in_its_own) = start(true);
        assert!(in_our_group(in_ours));
        assert!(!in_our_group(in_its_own));
    }

    #[test]
    fn next_signal_names_the_signal_its_code_and_its_sender() {
        let (sent, received) = std::sync::mpsc::channel();
        // A thread of its own, which blocks SIGUSR1 and sends it to itself alone: no other
        // thread of the test process can take it, and a hang fails the test, not the run.
        std::thread::spawn(move || {
            let mut set = SigSet::empty();
            set.add(Signal::SIGUSR1);
            set.thread_block().unwrap();
            // SAFETY: signalling this very thread, which blocks the signal.
            let raised = unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGUSR1) };
            assert_eq!(raised, 0);
            let _ = sent.send(next_signal(&set));
        });
        let got = received
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("next_signal returns the pending signal");
        let (signo, code, sender) = got;
        assert_eq!(signo, libc::SIGUSR1);
        assert!(code <= 0, "a process sent it, not the kernel: {code}");
        assert_eq!(sender, std::process::id() as i32);
    }

    /// Restores a signal's action when a test that changed it ends.
    struct Restore(Signal, nix::sys::signal::SigAction);

    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: putting back the action that was there before.
            let _ = unsafe { nix::sys::signal::sigaction(self.0, &self.1) };
        }
    }

    #[test]
    fn an_ignored_signal_is_not_taken_so_the_command_inherits_it_ignored() {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler};
        // SIGUSR2: nothing else in the unit tests uses it.
        let signal = Signal::SIGUSR2;
        let set_to = |handler| {
            let action = SigAction::new(handler, SaFlags::empty(), SigSet::empty());
            // SAFETY: SIG_IGN and SIG_DFL run no code of ours.
            unsafe { sigaction(signal, &action) }.unwrap()
        };
        let _restore = Restore(signal, set_to(SigHandler::SigIgn));
        assert!(ignored(signal));
        assert!(!forwarded_set().contains(signal));
        set_to(SigHandler::SigDfl);
        assert!(!ignored(signal));
        assert!(forwarded_set().contains(signal));
    }
}
