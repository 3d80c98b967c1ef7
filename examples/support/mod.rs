//! What the soak test and the benchmark share: a foreground mount daemon that is always
//! stopped and unmounted, and a process's memory and descriptors.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Resident memory (KiB) and open descriptors of a process.
pub fn usage(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (rss, fds)
}

/// CPU time a process's threads have used so far, in nanoseconds of the scheduler's own
/// accounting (`/proc/PID/task/*/schedstat`), far finer than the 10 ms of `stat`.
#[allow(dead_code)]
pub fn cpu_time(pid: u32) -> Duration {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the process's threads");
    let nanos: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// A foreground mount; dropping it stops the daemon and unmounts whatever happens.
pub struct Daemon {
    pub child: Child,
    pub path: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while self.child.try_wait().ok().flatten().is_none()
            && start.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = s3credsfs::mountpoint::lazy_unmount(&self.path);
    }
}

/// Mounts `path` in the foreground against `gateway` as its default user, with `extra`
/// flags, logging to `log`; returns once the mount answers.
pub fn start_daemon(
    binary: &Path,
    gateway: &str,
    path: &Path,
    log: &Path,
    extra: &[&str],
) -> Daemon {
    let child = Command::new(binary)
        .args(["mount", "--foreground"])
        .args(extra)
        .args([
            "--api-gateway",
            gateway,
            "--username",
            "dev",
            "--password-env",
            "PW",
        ])
        .arg(path)
        .env("PW", s3credsfs::dev::gateway::DEFAULT_PASSWORD)
        .env("S3CREDSFS_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("start the daemon");
    let daemon = Daemon {
        child,
        path: path.to_path_buf(),
    };
    let start = Instant::now();
    while !path.join("status").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the mount did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon
}
