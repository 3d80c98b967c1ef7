//! What the zypper tests (tests/it/zypper.rs) stand on: a throwaway GnuPG keyring whose
//! agent is gone when the guard is, a scratch root that Debian's zypper and rpm act on
//! (`--root`), and the tiny stand-in RPMs a scratch root needs for s3credsfs's `Requires`.

use super::wait::poll_until;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use tempfile::TempDir;

/// Everything a program said, for assertions and failure messages.
pub fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` to its end; a program that is not there fails with the Debian package to
/// install.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {:?} ({e}): the zypper tests need Debian's zypper, createrepo-c, rpm \
             and gnupg; run scripts/venv as root, which installs them",
            cmd.get_program()
        )
    })
}

/// Runs `cmd`, panics with all it said unless it succeeded, and returns that.
pub fn succeed(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        said(&out)
    );
    said(&out)
}

/// A GnuPG home of its own (no passphrases, batch mode), removed on drop with nothing
/// left running: gpg starts an agent per home, which would outlive the test.
pub struct Keyring {
    home: TempDir,
}

impl Keyring {
    pub fn new() -> Keyring {
        let home = tempfile::tempdir().expect("create a temporary directory");
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        Keyring { home }
    }

    /// What `GNUPGHOME` is for the programs that use this keyring.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `program` with this keyring as its `GNUPGHOME`.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("GNUPGHOME", self.home.path());
        cmd
    }

    /// A new RSA signing key for `name`, valid for a day, without a passphrase; its
    /// fingerprint. RSA, as SLES 15's rpm checks it.
    pub fn generate(&self, name: &str) -> String {
        let uid = format!("{name} <{}@s3credsfs.invalid>", name.replace(' ', "-"));
        succeed(self.command("gpg").args([
            "--batch",
            "--quiet",
            "--passphrase",
            "",
            "--quick-gen-key",
            &uid,
            "rsa2048",
            "sign",
            "1d",
        ]));
        let listing = succeed(self.command("gpg").args([
            "--batch",
            "--with-colons",
            "--list-secret-keys",
            &format!("={uid}"),
        ]));
        fingerprints(&listing)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no fingerprint for {uid}: {listing}"))
    }

    /// The armored public key of `fingerprint`, as a node imports it.
    pub fn export(&self, fingerprint: &str, to: &Path) {
        let key =
            succeed(
                self.command("gpg")
                    .args(["--batch", "--armor", "--export", fingerprint]),
            );
        std::fs::write(to, key).unwrap();
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        for args in [&["--kill", "all"][..], &["--remove-socketdir"]] {
            let _ = self.command("gpgconf").args(args).output();
        }
        // gpgconf asks the agent to end; the home goes only once nothing uses it.
        let home = self.home.path().to_string_lossy().into_owned();
        let _ = poll_until(Duration::from_secs(10), || {
            processes_naming(&home).is_empty()
        });
    }
}

/// The primary keys' fingerprints in gpg's `--with-colons` listing.
pub fn fingerprints(listing: &str) -> Vec<String> {
    let mut primary = false;
    let mut found = Vec::new();
    for line in listing.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        match fields[0] {
            "pub" | "sec" => primary = true,
            "sub" | "ssb" => primary = false,
            "fpr" if primary => {
                found.push(fields[9].to_string());
                primary = false;
            }
            _ => {}
        }
    }
    found
}

/// The processes whose command line mentions `text` (a gpg-agent's `--homedir`), by pid
/// and command line.
pub fn processes_naming(text: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline
                .contains(text)
                .then(|| format!("{} {cmdline}", e.file_name().to_string_lossy()))
        })
        .collect()
}

/// A scratch root for Debian's zypper and rpm (`--root`), as a fresh node: no packages,
/// no repositories, no keys. zypper's log goes beside it, not to the host's /var/log.
pub struct Node {
    dir: TempDir,
}

impl Node {
    pub fn new() -> Node {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        std::fs::create_dir(dir.path().join("root")).unwrap();
        Node { dir }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// `zypper --non-interactive --root ROOT ARGS`: every question gets its default
    /// answer, which for an unknown key or an unsigned file is no.
    pub fn zypper(&self, args: &[&str]) -> Output {
        output(
            Command::new("zypper")
                .env("ZYPP_LOGFILE", self.dir.path().join("zypper.log"))
                .arg("--non-interactive")
                .arg("--root")
                .arg(self.root())
                .args(args),
        )
    }

    /// `rpm --root ROOT ARGS`.
    pub fn rpm(&self, args: &[&str]) -> Output {
        output(
            Command::new("rpm")
                .arg("--root")
                .arg(self.root())
                .args(args),
        )
    }

    /// `zypper addrepo FLAGS DIR s3credsfs`.
    pub fn add_repository(&self, flags: &[&str], dir: &Path) {
        let mut args = vec!["addrepo"];
        args.extend_from_slice(flags);
        args.extend([dir.to_str().unwrap(), "s3credsfs"]);
        let out = self.zypper(&args);
        assert!(out.status.success(), "zypper {args:?}: {}", said(&out));
    }

    /// Trusts `key` (an armored public key) as `rpm --import` does on a node.
    pub fn import_key(&self, key: &Path) {
        let out = self.rpm(&["--import", key.to_str().unwrap()]);
        assert!(out.status.success(), "rpm --import: {}", said(&out));
    }

    /// The installed `name`'s NAME-VERSION-RELEASE.ARCH, if it is installed.
    pub fn installed(&self, name: &str) -> Option<String> {
        let out = self.rpm(&["-q", name]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// Builds an empty `noarch` RPM named `name` in `dir` (by rpmbuild) that provides
/// `provides` besides itself, described as the test-only stand-in it is; its path.
pub fn stand_in(dir: &Path, name: &str, instead_of: &str, provides: &[String]) -> PathBuf {
    let top = dir.join(format!("{name}-standin-build"));
    std::fs::create_dir_all(top.join("SPECS")).unwrap();
    let mut spec = format!(
        "Name: {name}\nVersion: 0\nRelease: standin\nLicense: MIT\nBuildArch: noarch\n\
         Summary: Stand-in for {instead_of}, for the s3credsfs zypper test only: empty\n"
    );
    for capability in provides {
        spec.push_str(&format!("Provides: {capability}\n"));
    }
    spec.push_str(&format!(
        "%description\nNot {instead_of}: an empty package that only satisfies the \
         s3credsfs RPM's dependencies in a scratch root, for tests/it/zypper.rs.\n%files\n"
    ));
    let spec_file = top.join("SPECS").join(format!("{name}.spec"));
    std::fs::write(&spec_file, spec).unwrap();
    succeed(
        Command::new("rpmbuild")
            .args(["-bb", "--quiet", "--define"])
            .arg(format!("_topdir {}", top.display()))
            .arg("--define")
            .arg(format!("_rpmdir {}", dir.display()))
            .arg(&spec_file),
    );
    let rpm = dir.join(format!("noarch/{name}-0-standin.noarch.rpm"));
    assert!(rpm.is_file(), "rpmbuild made no {}", rpm.display());
    std::fs::remove_dir_all(&top).unwrap();
    rpm
}
