//! `s3credsfs refresh`: a running mount refreshes a profile on request, with a new
//! login, through a channel only the mounting user can use.

use crate::common;

use common::mount::*;
use common::wait_for;
use s3credsfs::dev::gateway::{Endpoint, Times};
use std::os::unix::process::CommandExt;
use std::process::Output;
use std::time::Duration;

fn refresh(m: &Mounted, extra: &[&str]) -> Output {
    bin()
        .arg("refresh")
        .arg(&m.path)
        .args(extra)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn refresh_gets_new_credentials_with_a_new_login() {
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &[]);
    let before = m.access_key();
    let stats = gw.stats();
    let out = refresh(&m, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.starts_with(
            "s3credsfs: refreshed profile default; the new credentials are valid until 20"
        ),
        "{said}"
    );
    let after = gw.stats();
    assert_eq!(after.sts_issued, stats.sts_issued + 1);
    assert_eq!(
        after.password_grants,
        stats.password_grants + 1,
        "a new login, not the cached token"
    );
    assert_ne!(
        m.access_key(),
        before,
        "the mount serves the new credentials"
    );
    assert_eq!(m.status()["refresh_count"], 2);
}

#[test]
fn a_failed_refresh_is_reported_and_the_valid_credentials_stay() {
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &["--timeout", "5s"]);
    let before = m.access_key();
    let refused = crate::common::status_fault(403, "text/plain", "no");
    gw.gw.inject(Endpoint::Sts, refused, Times::Always);
    let out = refresh(&m, &[]);
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(
        said.starts_with("s3credsfs: error: refreshing profile default failed: ")
            && said.contains("403"),
        "{said}"
    );
    assert_eq!(said.lines().count(), 1, "{said}");
    assert_eq!(m.access_key(), before);
}

#[test]
fn refresh_names_a_profile_and_refuses_an_unknown_one() {
    let (prod, tds) = (TestGateway::start(|_| {}), TestGateway::start(|_| {}));
    let config = format!(
        "username = \"dev\"\npassword-env = \"PW\"\ndefault-profile = \"prod\"\n\
         [profiles.prod]\napi-gateway = \"{}\"\n[profiles.tds]\napi-gateway = \"{}\"\n",
        prod.gw.base_url(),
        tds.gw.base_url()
    );
    let m = Mounted::start_configured(&config, &[]);
    let out = refresh(&m, &["--profile", "tds"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("s3credsfs: refreshed profile tds;"));
    // Each fetched once at mount, and tds again.
    assert_eq!((prod.stats().sts_issued, tds.stats().sts_issued), (1, 2));
    let out = refresh(&m, &["--profile", "nope"]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        "s3credsfs: error: refreshing profile nope failed: unknown profile \"nope\"; this mount serves: prod, tds\n"
    );
    assert_eq!((prod.stats().sts_issued, tds.stats().sts_issued), (1, 2));
}

/// Another user reaching the socket (its name shows in /proc/net/unix once bound) is hung
/// up on, unserved.
#[test]
fn another_user_cannot_ask_for_a_refresh() {
    common::require_root("it connects as another user, uid 65534");
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &[]);
    let name = m.status()["control_socket"].as_str().unwrap().to_string();
    let script = format!(
        "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('\\0{name}')\n\
         try:\n    s.sendall(b'refresh \\n')\n    got = s.recv(4096)\n\
         except (BrokenPipeError, ConnectionResetError):\n    got = b''\n\
         print('hung up' if got == b'' else got.decode())\n"
    );
    let run = |uid: u32| {
        let out = std::process::Command::new("python3")
            .args(["-c", &script])
            .env_clear()
            .uid(uid)
            .gid(uid)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let issued = gw.stats().sts_issued;
    assert_eq!(run(65534).trim(), "hung up", "no answer for another user");
    assert_eq!(gw.stats().sts_issued, issued);
    // Refusals are logged, but not once each: another user cannot flood the log.
    for _ in 0..5 {
        assert_eq!(run(65534).trim(), "hung up");
    }
    let logged = m
        .log()
        .matches("refused connections from another user")
        .count();
    assert_eq!(logged, 1, "{}", m.log());
    // The same request from the mounting user is served: the refusal was about the user.
    assert!(run(nix::unistd::geteuid().as_raw()).contains("expiration"));
    assert_eq!(gw.stats().sts_issued, issued + 1);
}

/// A refresh that lands while a lookup in the same directory waits for a slow gateway:
/// dropping the old names must wait for that lookup without stopping the runtime that
/// finishes it (it once wedged the whole mount for good).
#[test]
fn a_refresh_during_a_waiting_lookup_does_not_wedge_the_mount() {
    // A gateway that accepts connections and never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tds = TestGateway::start(|_| {});
    let config = format!(
        "username = \"dev\"\npassword-env = \"PW\"\ntimeout = \"2s\"\ndefault-profile = \"slow\"\n\
         [profiles.slow]\napi-gateway = \"http://{}\"\n[profiles.tds]\napi-gateway = \"{}\"\n",
        hole.local_addr().unwrap(),
        tds.gw.base_url()
    );
    let m = Mounted::start_configured(&config, &["--lazy"]);
    let json = m.file("json");
    let reader = std::thread::spawn(move || std::fs::read(json));
    // Accepted and held open, never answered: the lookup waits its whole timeout.
    hole.set_nonblocking(true).unwrap();
    let mut held = Vec::new();
    wait_for(
        "the slow profile's fetch to start",
        Duration::from_secs(10),
        || match hole.accept() {
            Ok((stream, _)) => {
                held.push(stream);
                true
            }
            Err(_) => false,
        },
    );
    let started = std::time::Instant::now();
    let mut child = bin()
        .arg("refresh")
        .arg(&m.path)
        .args(["--profile", "tds"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("refresh to answer", Duration::from_secs(30), || {
        child.try_wait().unwrap().is_some()
    });
    assert!(child.wait().unwrap().success());
    assert!(started.elapsed() < Duration::from_secs(20));
    drop(held);
    assert!(
        reader.join().unwrap().is_err(),
        "the slow profile has no credentials"
    );
    assert_eq!(m.status()["profile"], "slow", "status still answers");
}

/// A neighbour who binds, in advance, the control socket's name for every pid the next
/// daemon may get cannot cut `refresh` off from it: the name is 128 random bits, known only
/// from the owner's `status`. (Names made of the pid were all taken here, and `refresh`
/// then failed.)
#[test]
fn names_taken_in_advance_do_not_stop_refresh() {
    common::require_root("the squatter is another user, uid 65534");
    let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The next pids, wrapping as the kernel does (past pid_max it starts again at 300).
    let count = 5000.min(pid_max - 300);
    let pids: Vec<u32> = (1..=count)
        .map(|i| {
            let p = last + i;
            if p < pid_max {
                p
            } else {
                300 + (p - pid_max) % (pid_max - 300)
            }
        })
        .collect();
    let script = "import resource, socket, sys\n\
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n\
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n\
        held = []\n\
        for pid in sys.stdin.readline().split():\n\
        \x20   s = socket.socket(socket.AF_UNIX)\n\
        \x20   try:\n\
        \x20       s.bind('\\0s3credsfs/control/' + pid)\n\
        \x20       s.listen()\n\
        \x20       held.append(s)\n\
        \x20   except OSError:\n\
        \x20       s.close()\n\
        print(len(held), flush=True)\n\
        sys.stdin.read()\n";
    let mut squatter = std::process::Command::new("python3")
        .args(["-c", script])
        .env_clear()
        .uid(65534)
        .gid(65534)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = squatter.stdin.take().unwrap();
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    std::io::Write::write_all(&mut stdin, format!("{}\n", list.join(" ")).as_bytes()).unwrap();
    let mut held = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(squatter.stdout.as_mut().unwrap()),
        &mut held,
    )
    .unwrap();
    assert!(held.trim().parse::<u32>().unwrap() > count - 50, "{held}");

    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &[]);
    let out = refresh(&m, &[]);
    let daemon = m.child.id();
    drop(stdin);
    let _ = squatter.wait();
    assert!(
        pids.contains(&daemon),
        "the daemon's pid {daemon} was not among the {count} names taken (pids {}..); too many processes started meanwhile",
        pids[0]
    );
    assert!(out.status.success(), "{}{}", stderr(&out), m.log());
    assert!(stdout(&out).starts_with("s3credsfs: refreshed profile default;"));
    let name = m.status()["control_socket"].as_str().unwrap().to_string();
    assert!(s3credsfs::control::is_name(&name), "{name}");
}
