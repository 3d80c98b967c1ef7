//! A mountpoint another user controls is refused (issue 21): two unprivileged users, the
//! neighbour ([`OTHER_USER`]) setting traps and the victim ([`NOBODY`]) mounting, in a
//! private mount namespace whose own `/dev/fuse` node belongs to the victim (so the host's
//! `/dev/fuse` is never touched). Root, which CI runs as, gets the same refusals.
//!
//! A directory the neighbour owns or may write would let them plant a `config` whose
//! `credential_process` runs their command whenever the daemon is down; a link they can
//! re-point would move the victim's mount, or its name, elsewhere.

use crate::common;

use common::mount::*;
use common::namespace::*;
use common::{poll_until, text, wait_for, StopOnDrop};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{chown, symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The victim's namespace and home, and a root-owned sticky directory open to all (like
/// `/tmp`) where the neighbour sets traps.
struct Scene {
    m: UserMount,
    shared: PathBuf,
    _dir: tempfile::TempDir,
}

impl Scene {
    fn new() -> Scene {
        let m = UserMount::new(FuseNamespace::new(NOBODY, false));
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().canonicalize().unwrap();
        chmod(&shared, 0o1777);
        Scene {
            m,
            shared,
            _dir: dir,
        }
    }

    /// Runs `f` as `user` in the namespace.
    fn as_user<T: Send>(&self, user: (u32, u32), f: impl FnOnce() -> T + Send) -> T {
        self.m.ns.run(Some(user), f)
    }

    /// `s3credsfs mount PATH --foreground` as `user` (root when `None`), which must fail
    /// before logging in and leave nothing mounted; returns its stderr. A mount that goes
    /// ahead is stopped and unmounted, and the test fails.
    fn refused(&self, gw: &TestGateway, user: Option<(u32, u32)>, path: &Path) -> String {
        let mut cmd = match user {
            Some(_) => self.m.command(&[]),
            None => {
                let mut cmd = bin();
                cmd.env("PW", s3credsfs::dev::gateway::DEFAULT_PASSWORD)
                    .stdin(Stdio::null());
                cmd
            }
        };
        assert!(user.is_none() || user == Some(NOBODY));
        cmd.args(["mount", path.to_str().unwrap(), "--foreground"])
            .args(login_args(gw))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = self.m.ns.run(None, move || cmd.spawn().unwrap());
        if poll_until(Duration::from_secs(20), || child.try_wait().unwrap()).is_err() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
            if self.m.ns.mount_line(path).is_some() {
                let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
                // SAFETY: a valid path; root detaches the mount in the namespace.
                self.m.ns.run(None, move || unsafe {
                    libc::umount2(c.as_ptr(), libc::MNT_DETACH)
                });
            }
            panic!("{} was mounted on, not refused", path.display());
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{stderr}");
        assert_eq!(self.m.ns.mount_line(path), None, "{stderr}");
        assert_eq!(gw.stats().token_requests, 0, "refused before logging in");
        stderr
    }
}

const FIX: &str = "use a directory of your own such as ~/.s3creds";

#[test]
fn a_directory_the_neighbour_owns_or_others_may_write_is_refused() {
    let gw = TestGateway::start(|_| {});
    let s = Scene::new();
    // The neighbour's own directory, open to all, with a planted config in it.
    let theirs = s.shared.join("x");
    let planted = theirs.clone();
    s.as_user(OTHER_USER, move || {
        std::fs::create_dir(&planted).unwrap();
        chmod(&planted, 0o777);
        let config = "[default]\ncredential_process = sh -c 'touch /tmp/pwned'\n";
        std::fs::write(planted.join("config"), config).unwrap();
    });
    let stderr = s.refused(&gw, Some(NOBODY), &theirs);
    assert_eq!(
        stderr,
        format!(
            "s3credsfs: error: {} belongs to user id 65533, not to you (id 65534); {FIX}\n",
            theirs.display()
        )
    );
    // Root is refused it too.
    let stderr = s.refused(&gw, None, &theirs);
    assert!(
        stderr.contains(&format!(
            "{} belongs to user id 65533, not to you (id 0); {FIX}",
            theirs.display()
        )),
        "{stderr}"
    );

    // The victim's own directory, but writable by others.
    let open = s.shared.join("y");
    let made = open.clone();
    s.as_user(NOBODY, move || {
        std::fs::create_dir(&made).unwrap();
        chmod(&made, 0o777);
    });
    let stderr = s.refused(&gw, Some(NOBODY), &open);
    assert!(
        stderr.contains(&format!(
            "{shown} can be written by group or others (mode 0777), who could plant files in it; run `chmod go-w {shown}` or {FIX}",
            shown = open.display()
        )),
        "{stderr}"
    );

    // The victim's own directory inside one that others may write without the sticky bit
    // (they could rename it away and put theirs in its place), or inside the neighbour's.
    let (unsticky, neighbours) = (s.shared.join("open"), s.shared.join("theirs"));
    for (dir, owner) in [(&unsticky, (0, 0)), (&neighbours, OTHER_USER)] {
        std::fs::create_dir_all(dir.join("creds")).unwrap();
        chown(dir, Some(owner.0), Some(owner.1)).unwrap();
        chown(dir.join("creds"), Some(NOBODY.0), Some(NOBODY.1)).unwrap();
        chmod(&dir.join("creds"), 0o700);
    }
    chmod(&unsticky, 0o777);
    chmod(&neighbours, 0o755);
    let stderr = s.refused(&gw, Some(NOBODY), &unsticky.join("creds"));
    assert!(
        stderr.contains(&format!(
            "lies under {}, which can be written by group or others (mode 0777) without the sticky bit, so they could swap what is in it; {FIX}",
            unsticky.display()
        )),
        "{stderr}"
    );
    let stderr = s.refused(&gw, Some(NOBODY), &neighbours.join("creds"));
    assert!(
        stderr.contains(&format!(
            "lies under {}, which belongs to user id 65533, who could swap what is in it; {FIX}",
            neighbours.display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_link_as_the_mountpoint_or_one_the_neighbour_can_re_point_is_refused() {
    let gw = TestGateway::start(|_| {});
    let s = Scene::new();
    let home = s.m.home.clone();
    let creds = home.join("creds");
    // The victim's own link to their own directory: it could still be re-pointed while
    // mounted, and `status`, `unmount` and the files would name the link.
    let own_link = s.shared.join("mine");
    let (target, link) = (creds.clone(), own_link.clone());
    s.as_user(NOBODY, move || {
        std::fs::create_dir(&target).unwrap();
        symlink(&target, &link).unwrap();
    });
    let stderr = s.refused(&gw, Some(NOBODY), &own_link);
    assert!(
        stderr.contains(&format!(
            "{} is a symbolic link, which could be re-pointed elsewhere while mounted or in use; {FIX}",
            own_link.display()
        )),
        "{stderr}"
    );
    // The neighbour's link to the victim's home: they could re-point it at any time.
    let their_link = s.shared.join("home");
    let (target, link) = (home.clone(), their_link.clone());
    s.as_user(OTHER_USER, move || symlink(&target, &link).unwrap());
    let stderr = s.refused(&gw, Some(NOBODY), &their_link.join("creds"));
    assert!(
        stderr.contains(&format!(
            "goes through the symbolic link {}, which belongs to user id 65533, who could re-point it; {FIX}",
            their_link.display()
        )),
        "{stderr}"
    );
}

/// A link only root can change (as `/home` -> `/var/home`) is fine: the mount lands on
/// the resolved directory, the files name that, and `status` and `unmount` by the linked
/// name find it.
#[test]
fn a_trusted_link_resolves_and_every_command_agrees_on_the_path() {
    let gw = TestGateway::start(|_| {});
    let mut s = Scene::new();
    let links = tempfile::tempdir().unwrap();
    chmod(links.path(), 0o755);
    let linked = links.path().canonicalize().unwrap().join("home");
    symlink(&s.m.home, &linked).unwrap();
    let given = linked.join("creds");
    let resolved = s.m.home.join("creds");
    let mut cmd =
        s.m.command(&["mount", given.to_str().unwrap(), "--foreground"]);
    cmd.args(login_args(&gw))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    s.m.path = resolved.clone();
    s.m.child = Some(StopOnDrop::term(
        s.m.ns.run(None, move || cmd.spawn().unwrap()),
    ));
    let status = resolved.join("status");
    wait_for("the mount", Duration::from_secs(30), || {
        s.m.mount_line().is_some() && s.as_user(NOBODY, || status.exists())
    });
    let config = resolved.join("config");
    let config = s.as_user(NOBODY, move || std::fs::read_to_string(config).unwrap());
    assert!(
        config.contains(&format!("{}/json", resolved.display())),
        "{config}"
    );
    let out =
        s.m.output(s.m.command(&["status", given.to_str().unwrap()]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.starts_with(&format!("s3credsfs mounted at {} ", resolved.display())),
        "{said}"
    );
    let out =
        s.m.output(s.m.command(&["unmount", given.to_str().unwrap()]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.m.wait_exit().success());
    assert_eq!(s.m.mount_line(), None);
}

/// A FUSE filesystem the neighbour mounted (with `allow_other`, which `user_allow_other`
/// in /etc/fuse.conf lets any user ask for) whose server claims that its root is root's
/// and that its `x` is the victim's private directory, and that its `l` is a link of
/// root's to `link`; it could answer a lookup of `x` differently at any moment.
struct Liar {
    link: PathBuf,
}

impl Liar {
    fn link_attr() -> fuser::FileAttr {
        fuser::FileAttr {
            kind: fuser::FileType::Symlink,
            perm: 0o777,
            nlink: 1,
            ..Liar::attr(3, 0, 0o777)
        }
    }

    fn attr(ino: u64, uid: u32, perm: u16) -> fuser::FileAttr {
        let now = std::time::SystemTime::now();
        fuser::FileAttr {
            ino: fuser::INodeNo(ino),
            size: 0,
            blocks: 0,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            kind: fuser::FileType::Directory,
            perm,
            nlink: 2,
            uid,
            gid: uid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }
}

impl fuser::Filesystem for Liar {
    fn lookup(
        &self,
        _req: &fuser::Request,
        parent: fuser::INodeNo,
        name: &std::ffi::OsStr,
        reply: fuser::ReplyEntry,
    ) {
        if parent.0 == 1 && name == "x" {
            let attr = Liar::attr(2, NOBODY.0, 0o700);
            reply.entry(&Duration::ZERO, &attr, fuser::Generation(0));
        } else if parent.0 == 1 && name == "l" {
            reply.entry(&Duration::ZERO, &Liar::link_attr(), fuser::Generation(0));
        } else {
            reply.error(fuser::Errno::ENOENT);
        }
    }

    fn getattr(
        &self,
        _req: &fuser::Request,
        ino: fuser::INodeNo,
        _fh: Option<fuser::FileHandle>,
        reply: fuser::ReplyAttr,
    ) {
        match ino.0 {
            1 => reply.attr(&Duration::ZERO, &Liar::attr(1, 0, 0o755)),
            2 => reply.attr(&Duration::ZERO, &Liar::attr(2, NOBODY.0, 0o700)),
            3 => reply.attr(&Duration::ZERO, &Liar::link_attr()),
            _ => reply.error(fuser::Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &fuser::Request, ino: fuser::INodeNo, reply: fuser::ReplyData) {
        match ino.0 {
            3 => reply.data(self.link.as_os_str().as_bytes()),
            _ => reply.error(fuser::Errno::EINVAL),
        }
    }
}

/// Mounts [`Liar`] at `at` in the namespace as `owner`'s `fusermount3` would (`user_id`
/// theirs, `allow_other`), serving it until the returned session is dropped.
fn mount_liar(s: &Scene, at: &Path, owner: (u32, u32)) -> fuser::BackgroundSession {
    let dev = mount_fuse(s, at, owner);
    let link = s.m.path.clone();
    s.m.ns.run(None, move || {
        let session = fuser::Session::from_fd(
            Liar { link },
            dev.into(),
            fuser::SessionACL::All,
            fuser::Config::default(),
        )
        .unwrap();
        session.spawn().unwrap()
    })
}

/// Mounts a FUSE filesystem at `at` as [`mount_liar`] does, and returns its device: no
/// server yet, and closing it leaves the mount dead (every access fails with ENOTCONN).
fn mount_fuse(s: &Scene, at: &Path, owner: (u32, u32)) -> std::fs::File {
    let at = std::ffi::CString::new(at.to_str().unwrap()).unwrap();
    s.m.ns.run(None, move || {
        let dev = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .unwrap();
        use std::os::fd::AsRawFd;
        let data = format!(
            "fd={},rootmode=40000,user_id={},group_id={},allow_other",
            dev.as_raw_fd(),
            owner.0,
            owner.1
        );
        let data = std::ffi::CString::new(data).unwrap();
        // SAFETY: valid NUL-terminated strings; root mounts in the test's namespace.
        let mounted = unsafe {
            libc::mount(
                c"neighbour".as_ptr(),
                at.as_ptr(),
                c"fuse.liar".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                data.as_ptr().cast(),
            )
        };
        assert_eq!(mounted, 0, "{}", std::io::Error::last_os_error());
        dev
    })
}

/// The neighbour's own FUSE filesystem can report any owner and mode it likes, so its
/// directories are not trusted for what they claim: the victim is refused a mountpoint
/// on it, with the reason.
#[test]
fn a_fuse_filesystem_another_user_mounted_is_not_believed() {
    let gw = TestGateway::start(|_| {});
    let s = Scene::new();
    let theirs = s.shared.join("fs");
    let made = theirs.clone();
    s.as_user(OTHER_USER, move || std::fs::create_dir(&made).unwrap());
    let session = mount_liar(&s, &theirs, OTHER_USER);
    let x = theirs.join("x");
    let seen = s.as_user(NOBODY, || {
        std::fs::metadata(&x).map(|m| (m.uid(), m.is_dir()))
    });
    assert_eq!(seen.unwrap(), (NOBODY.0, true), "the lie is told");
    let stderr = s.refused(&gw, Some(NOBODY), &x);
    let c = std::ffi::CString::new(theirs.to_str().unwrap()).unwrap();
    // SAFETY: a valid path; root detaches the liar's mount in the namespace.
    s.m.ns.run(None, move || unsafe {
        libc::umount2(c.as_ptr(), libc::MNT_DETACH)
    });
    drop(session);
    assert!(
        stderr.contains(&format!(
            "{} lies on a FUSE filesystem that user id 65533 mounted, whose server can claim any owner; {FIX}",
            theirs.display()
        )),
        "{stderr}"
    );
    // The victim's own FUSE filesystem is theirs to believe; the mount is still refused,
    // by the later check that the directory is not a FUSE mount already.
    let own = s.m.home.join("fs");
    let made = own.clone();
    s.as_user(NOBODY, move || std::fs::create_dir(&made).unwrap());
    let session = mount_liar(&s, &own, NOBODY);
    let stderr = s.refused(&gw, Some(NOBODY), &own.join("x"));
    let c = std::ffi::CString::new(own.to_str().unwrap()).unwrap();
    // SAFETY: as above.
    s.m.ns.run(None, move || unsafe {
        libc::umount2(c.as_ptr(), libc::MNT_DETACH)
    });
    drop(session);
    assert!(!stderr.contains("lies on a FUSE filesystem"), "{stderr}");
    assert!(stderr.contains("a moment ago"), "{stderr}");
}

/// A command's path through the neighbour's FUSE filesystem follows nothing there: its
/// server claims `l` is root's link to the victim's mount (which `status` would then
/// report on, and `unmount` stop); the walk stops at the filesystem and keeps the name.
#[test]
fn a_commands_path_through_the_neighbours_fuse_filesystem_follows_nothing() {
    let gw = TestGateway::start(|_| {});
    let mut s = Scene::new();
    s.m.start(&gw);
    let theirs = s.shared.join("fs");
    let made = theirs.clone();
    s.as_user(OTHER_USER, move || std::fs::create_dir(&made).unwrap());
    let session = mount_liar(&s, &theirs, OTHER_USER);
    let lie = theirs.join("l");
    let told = lie.clone();
    let seen = s.as_user(NOBODY, move || std::fs::read_link(&told));
    assert_eq!(seen.unwrap(), s.m.path, "the lie is told");
    let status = |path: &Path| {
        s.m.output(s.m.command(&["status", "--check", path.to_str().unwrap()]))
    };
    let through = status(&lie);
    let own = status(&s.m.path);
    let c = std::ffi::CString::new(theirs.to_str().unwrap()).unwrap();
    // SAFETY: a valid path; root detaches the liar's mount in the namespace.
    s.m.ns.run(None, move || unsafe {
        libc::umount2(c.as_ptr(), libc::MNT_DETACH)
    });
    drop(session);
    assert!(own.status.success(), "{}", text(&own.stdout));
    assert_eq!(through.status.code(), Some(3), "{}", text(&through.stdout));
    assert!(
        text(&through.stdout).contains(&format!("nothing is mounted at {}", lie.display())),
        "{}",
        text(&through.stdout)
    );
}

/// Root asked to mount through a link the neighbour owns is refused before it touches
/// anything there: it used to look for a stale mount through the link, and detach what it
/// found (the neighbour's own dead FUSE mount here; re-pointing the link between the
/// look and the detach would make that any mount at all).
#[test]
fn a_stale_mount_behind_the_neighbours_link_is_left_alone() {
    let gw = TestGateway::start(|_| {});
    let s = Scene::new();
    let nest = s.shared.join("nest");
    let (dead, link) = (nest.join("dead"), nest.join("link"));
    let (d, l) = (dead.clone(), link.clone());
    s.as_user(OTHER_USER, move || {
        std::fs::create_dir(d.parent().unwrap()).unwrap();
        std::fs::create_dir(&d).unwrap();
        symlink(&d, &l).unwrap();
    });
    // Its server gone, the neighbour's mount fails every access with ENOTCONN.
    drop(mount_fuse(&s, &dead, OTHER_USER));
    let probe = dead.clone();
    let stale = s.as_user(NOBODY, move || {
        errno(nix::sys::statfs::statfs(&probe).map_err(std::io::Error::from))
    });
    assert_eq!(stale, Some(libc::ENOTCONN));
    let stderr = s.refused(&gw, None, &link);
    // Nor does root's `unmount`, by the link or by the mount's own path: the neighbour
    // could re-point either between the look and the detach.
    let unmounts: Vec<_> = [&link, &dead]
        .into_iter()
        .map(|path| {
            let mut cmd = bin();
            cmd.arg("unmount").arg(path);
            s.m.ns.run(None, move || cmd.output().unwrap())
        })
        .collect();
    let still = s.m.ns.mount_line(&dead);
    let c = std::ffi::CString::new(dead.to_str().unwrap()).unwrap();
    // SAFETY: a valid path; root detaches the dead mount in the namespace.
    s.m.ns.run(None, move || unsafe {
        libc::umount2(c.as_ptr(), libc::MNT_DETACH)
    });
    assert!(
        still.is_some(),
        "root detached the neighbour's mount: {stderr}"
    );
    assert_eq!(
        stderr,
        format!(
            "s3credsfs: error: {} lies under {}, which belongs to user id 65533, who could swap what is in it; {FIX}\n",
            link.display(),
            nest.display()
        )
    );
    for (out, path) in unmounts.iter().zip([&link, &dead]) {
        assert_eq!(out.status.code(), Some(78), "{}", text(&out.stdout));
        assert_eq!(
            text(&out.stderr),
            format!(
                "s3credsfs: error: not unmounting {}: {} belongs to user id 65533, who could swap what is in it, and so could re-point the name at another mount before it is detached; a mount there is not one s3credsfs made for you (its owner can run `s3credsfs unmount` on it, root `umount -l` on its own path)\n",
                path.display(),
                nest.display()
            )
        );
    }
}
