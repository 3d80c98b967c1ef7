//! The zypper repository (`package-tests`): what `scripts/package --sign KEYID` does to the
//! RPM it built (scripts/zypper-repo: rpmsign, createrepo_c, a signed repomd.xml), done to
//! a copy with a throwaway key, then installed by Debian's real zypper (1.14) into a
//! scratch root (`zypper --root`) the way docs/install.md tells a node to: the key imported
//! with `rpm --import`, the repository added with `--gpgcheck-strict`. A repository
//! changed after signing, signed by another key, or holding a package signed by another
//! key is refused; the unsigned repository scripts/package builds by default is refused
//! unless checks are turned off.
//!
//! The key is imported with `rpm --import` of a file whose fingerprint was checked, not
//! with zypper's `--gpg-auto-import-keys`, which trusts whatever key the repository
//! serves (so a replaced repository would bring its own): the tests show zypper refusing
//! the repository before the import.

use crate::common::zypper::{
    fingerprints, output, processes_naming, said, stand_in, succeed, Keyring, Node,
};
use crate::packaging::{package_dir, rpm_file};
use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How docs/install.md has a node add the repository: each package's signature checked
/// too, not only the metadata's (zypper's default checks a package's signature only when
/// the repository's metadata is unsigned).
const ADDREPO_FLAGS: &[&str] = &["--gpgcheck-strict"];

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// The RPMs of the test repository, in `dir`: a copy of scripts/package's s3credsfs (a
/// copy, as signing changes it in place) and stand-ins for the `fuse3` and the glibc it
/// requires, which a scratch root does not have.
fn packages(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let s3credsfs = dir.join(rpm_file().file_name().unwrap());
    std::fs::copy(rpm_file(), &s3credsfs).unwrap();
    let requires = succeed(
        Command::new("rpm")
            .args(["-qp", "--requires"])
            .arg(&s3credsfs),
    );
    let libraries: Vec<String> = requires
        .lines()
        .map(str::trim)
        .filter(|r| r.starts_with("lib") || r.starts_with("ld-linux"))
        .map(str::to_string)
        .collect();
    assert!(
        libraries.iter().any(|l| l.starts_with("libc.so.6")),
        "{requires}"
    );
    vec![
        s3credsfs,
        stand_in(dir, "fuse3", "fuse3", &[]),
        stand_in(dir, "glibc", "glibc", &libraries),
    ]
}

/// `scripts/zypper-repo [--sign KEY] DIR RPMS...` with `keyring`'s keys.
fn make_repository(keyring: &Keyring, key: Option<&str>, dir: &Path, rpms: &[PathBuf]) {
    let mut cmd = keyring.command(script("zypper-repo").to_str().unwrap());
    if let Some(key) = key {
        cmd.args(["--sign", key]);
    }
    succeed(cmd.arg(dir).args(rpms));
}

/// The key id (the fingerprint's last 16 digits) `rpm` shows in a package's signature,
/// or `(none)`.
fn rpm_signer(rpm: &Path) -> String {
    let out = output(
        Command::new("rpm")
            .args(["-qp", "--qf", "%{RSAHEADER:pgpsig}"])
            .arg(rpm),
    );
    assert!(
        out.status.success(),
        "rpm -qp {}: {}",
        rpm.display(),
        said(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A throwaway key, the test packages signed with it and their repository, in `work`.
struct SignedRepository {
    keyring: Keyring,
    key: String,
    dir: PathBuf,
}

impl SignedRepository {
    fn new(work: &Path) -> SignedRepository {
        let keyring = Keyring::new();
        let key = keyring.generate("s3credsfs repository");
        let dir = work.join("repo");
        let rpms = packages(&work.join("packages"));
        make_repository(&keyring, Some(&key), &dir, &rpms);
        SignedRepository { keyring, key, dir }
    }

    fn s3credsfs_rpm(&self) -> PathBuf {
        self.dir
            .join("x86_64")
            .join(rpm_file().file_name().unwrap())
    }

    fn key_file(&self) -> PathBuf {
        self.dir.join("repodata/repomd.xml.key")
    }
}

#[test]
fn zypper_installs_s3credsfs_from_the_signed_repository_once_its_key_is_imported() {
    let work = tempfile::tempdir().unwrap();
    let repo = SignedRepository::new(work.path());

    // What scripts/zypper-repo made: every RPM signed by the key, repomd.xml signed by it
    // (a detached armored signature gpg accepts), and the key beside it.
    let key_id = repo.key[repo.key.len() - 16..].to_lowercase();
    for rpm in walk(&repo.dir, ".rpm") {
        let signer = rpm_signer(&rpm);
        assert!(signer.ends_with(&key_id), "{}: {signer}", rpm.display());
    }
    let published = succeed(repo.keyring.command("gpg").args([
        "--batch",
        "--with-colons",
        "--show-keys",
        repo.key_file().to_str().unwrap(),
    ]));
    assert_eq!(
        fingerprints(&published),
        vec![repo.key.clone()],
        "{published}"
    );
    let repodata = repo.dir.join("repodata");
    let verified = succeed(repo.keyring.command("gpg").args([
        "--batch",
        "--verify",
        repodata.join("repomd.xml.asc").to_str().unwrap(),
        repodata.join("repomd.xml").to_str().unwrap(),
    ]));
    assert!(verified.contains("Good signature"), "{verified}");

    // A node that has not imported the key refuses the repository: zypper checks.
    let node = Node::new();
    node.add_repository(ADDREPO_FLAGS, &repo.dir);
    let refused = node.zypper(&["install", "s3credsfs"]);
    assert!(!refused.status.success(), "{}", said(&refused));
    assert!(
        said(&refused).contains("Signature verification failed"),
        "{}",
        said(&refused)
    );
    assert_eq!(node.installed("s3credsfs"), None);

    node.import_key(&repo.key_file());
    let installed = node.zypper(&["install", "s3credsfs"]);
    assert!(installed.status.success(), "{}", said(&installed));
    assert_eq!(
        node.installed("s3credsfs").as_deref(),
        Some(format!("s3credsfs-{VERSION}-1.x86_64").as_str())
    );
    assert_eq!(
        node.installed("fuse3").as_deref(),
        Some("fuse3-0-standin.noarch")
    );
    // rpm's own check of every installed file's digest, mode and owner.
    let verify = node.rpm(&["-V", "s3credsfs"]);
    assert!(verify.status.success(), "{}", said(&verify));
    assert_eq!(said(&verify), "");
    let installed_binary = node.root().join("usr/bin/s3credsfs");
    let version = succeed(Command::new(&installed_binary).arg("--version"));
    assert!(
        version.starts_with(&format!("s3credsfs {VERSION} (production build")),
        "{version}"
    );

    // The docs add the repository as this test does.
    let install_md =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/install.md"))
            .unwrap();
    let addrepo = format!("zypper addrepo {} ", ADDREPO_FLAGS.join(" "));
    assert!(
        install_md.contains(&addrepo),
        "docs/install.md lacks {addrepo:?}"
    );
}

#[test]
fn zypper_refuses_an_rpm_changed_by_one_byte_after_signing() {
    let work = tempfile::tempdir().unwrap();
    let repo = SignedRepository::new(work.path());
    let rpm = repo.s3credsfs_rpm();
    let mut bytes = std::fs::read(&rpm).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&rpm, bytes).unwrap();

    let node = Node::new();
    node.import_key(&repo.key_file());
    node.add_repository(ADDREPO_FLAGS, &repo.dir);
    let refused = node.zypper(&["install", "s3credsfs"]);
    assert!(!refused.status.success(), "{}", said(&refused));
    let why = said(&refused);
    assert!(
        why.contains("Signature verification failed") || why.contains("checksum"),
        "{why}"
    );
    assert_eq!(node.installed("s3credsfs"), None);
}

#[test]
fn zypper_refuses_a_repository_signed_with_another_key() {
    let work = tempfile::tempdir().unwrap();
    let repo = SignedRepository::new(work.path());
    // Someone else's repository of the same packages, signed (packages and metadata) with
    // their own key, which they publish beside it: the node trusts only the site's key.
    let other_key = repo.keyring.generate("someone else");
    let forged = work.path().join("forged");
    let rpms = packages(&work.path().join("forged-packages"));
    make_repository(&repo.keyring, Some(&other_key), &forged, &rpms);

    let node = Node::new();
    node.import_key(&repo.key_file());
    node.add_repository(ADDREPO_FLAGS, &forged);
    let refused = node.zypper(&["install", "s3credsfs"]);
    assert!(!refused.status.success(), "{}", said(&refused));
    assert!(
        said(&refused).contains("Signature verification failed for repomd.xml"),
        "{}",
        said(&refused)
    );
    assert_eq!(node.installed("s3credsfs"), None);
}

#[test]
fn with_gpgcheck_strict_zypper_refuses_a_package_signed_with_another_key() {
    let work = tempfile::tempdir().unwrap();
    let repo = SignedRepository::new(work.path());
    // The packages signed with another key, in metadata signed with the site's key (by
    // whoever holds that key but not the packages' key, or a package slipped in before
    // the metadata was signed).
    let other_key = repo.keyring.generate("someone else");
    let resigned = packages(&work.path().join("resigned-packages"));
    make_repository(
        &repo.keyring,
        Some(&other_key),
        &work.path().join("scratch"),
        &resigned,
    );
    let mixed = work.path().join("mixed");
    make_repository(&repo.keyring, None, &mixed, &resigned);
    let repomd = mixed.join("repodata/repomd.xml");
    succeed(repo.keyring.command("gpg").args([
        "--batch",
        "--armor",
        "--local-user",
        &repo.key,
        "--detach-sign",
        repomd.to_str().unwrap(),
    ]));
    std::fs::copy(repo.key_file(), mixed.join("repodata/repomd.xml.key")).unwrap();

    // zypper's default takes the metadata's signature for the packages': that is why the
    // docs add the repository with --gpgcheck-strict.
    let lenient = Node::new();
    lenient.import_key(&repo.key_file());
    lenient.add_repository(&[], &mixed);
    let taken = lenient.zypper(&["install", "s3credsfs"]);
    assert!(taken.status.success(), "{}", said(&taken));

    let strict = Node::new();
    strict.import_key(&repo.key_file());
    strict.add_repository(ADDREPO_FLAGS, &mixed);
    let refused = strict.zypper(&["install", "s3credsfs"]);
    assert!(!refused.status.success(), "{}", said(&refused));
    assert!(
        said(&refused).contains("Signature verification failed"),
        "{}",
        said(&refused)
    );
    assert_eq!(strict.installed("s3credsfs"), None);
}

#[test]
fn scripts_package_builds_the_repository_which_zypper_refuses_unsigned() {
    let dir = package_dir().join("repo");
    let rpm = dir.join("x86_64").join(rpm_file().file_name().unwrap());
    assert!(
        std::fs::read(&rpm).unwrap() == std::fs::read(rpm_file()).unwrap(),
        "the repository's RPM is not the one SHA256SUMS covers"
    );
    assert_eq!(walk(&dir, ".rpm"), vec![rpm.clone()]);
    let signature = dir.join("repodata/repomd.xml.asc");
    if signature.exists() {
        // Built with --sign: the RPM is signed too, by the key published beside it (read
        // in a keyring of the test's own, not the user's ~/.gnupg).
        let keyring = Keyring::new();
        let published = succeed(keyring.command("gpg").args([
            "--batch",
            "--with-colons",
            "--show-keys",
            dir.join("repodata/repomd.xml.key").to_str().unwrap(),
        ]));
        let key = &fingerprints(&published)[0];
        assert!(rpm_signer(&rpm).ends_with(&key[key.len() - 16..].to_lowercase()));
        return;
    }
    // As CI builds it: nothing signed, and no key.
    assert_eq!(rpm_signer(&rpm), "(none)");
    assert!(!dir.join("repodata/repomd.xml.key").exists());
    let node = Node::new();
    node.add_repository(ADDREPO_FLAGS, &dir);
    let refused = node.zypper(&["refresh"]);
    assert!(!refused.status.success(), "{}", said(&refused));
    assert!(said(&refused).contains("is unsigned"), "{}", said(&refused));
    // It is a valid repository all the same, holding this version.
    let taken = node.zypper(&["--no-gpg-checks", "refresh"]);
    assert!(taken.status.success(), "{}", said(&taken));
    let info = node.zypper(&["--no-gpg-checks", "info", "s3credsfs"]);
    assert!(
        said(&info).contains(&format!("{VERSION}-1")),
        "{}",
        said(&info)
    );
}

#[test]
fn a_wrong_key_or_a_missing_tool_is_one_sentence_before_anything_is_built() {
    let keyring = Keyring::new();
    let one_line = |cmd: &mut Command, status: i32, words: &str| {
        let out = output(cmd);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(status), "{cmd:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{cmd:?}: {stderr}");
        assert!(stderr.contains(words), "{cmd:?}: {stderr}");
    };
    let repo_script = script("zypper-repo");
    let repo_script = repo_script.to_str().unwrap();
    one_line(
        keyring
            .command(repo_script)
            .args(["--sign", "NOSUCHKEY", "--check"]),
        1,
        "gpg has no secret key 'NOSUCHKEY'",
    );
    keyring.generate("first signer");
    keyring.generate("second signer");
    one_line(
        keyring
            .command(repo_script)
            .args(["--sign", "signer", "--check"]),
        1,
        "'signer' names 2 secret keys: give the fingerprint",
    );

    // scripts/package checks the key before building: its target directory stays empty.
    let target = tempfile::tempdir().unwrap();
    let package = script("package");
    let package = package.to_str().unwrap();
    one_line(
        keyring
            .command(package)
            .env("CARGO_TARGET_DIR", target.path())
            .args(["--quick", "--sign", "NOSUCHKEY"]),
        1,
        "gpg has no secret key 'NOSUCHKEY'",
    );
    assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0);
    one_line(
        keyring.command(package).arg("--sign"),
        2,
        "--sign needs a KEYID",
    );

    // Without createrepo_c, rpmsign and gpg (and no apt-get to install them with): the
    // Debian packages to install. A PATH with only what runs the script.
    let bin = tempfile::tempdir().unwrap();
    for tool in ["bash", "dirname", "id"] {
        let found = succeed(Command::new("bash").args(["-c", &format!("command -v {tool}")]));
        std::os::unix::fs::symlink(found.trim(), bin.path().join(tool)).unwrap();
    }
    one_line(
        keyring
            .command(repo_script)
            .env("PATH", bin.path())
            .args(["--sign", "ANYKEY", "--check"]),
        1,
        "needs the Debian package(s) createrepo-c rpm gnupg: run 'sudo apt-get install",
    );

    // The keyring's gpg-agent ends with the guard.
    let home = keyring.home().to_string_lossy().into_owned();
    drop(keyring);
    assert_eq!(processes_naming(&home), Vec::<String>::new());
}

/// The files under `dir` whose names end in `suffix`, sorted.
fn walk(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            found.push(path);
        }
    }
    found.sort();
    found
}
