//! The packaging tier (`package-tests`): what `scripts/package` built in target/package/,
//! checked as a SLES 15 node would meet it: the portable binary's newest glibc symbol
//! version and that it is the production build, the RPM's metadata, changelog, files,
//! modes and owners, an install into a scratch root (`rpm -i --nodeps --root`) where the
//! systemd unit finds the binary, and the tarball with its SHA256SUMS.

use clap::CommandFactory;
use s3credsfs::cli::Cli;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The oldest glibc the portable binary may need: SLES 12 and RHEL/CentOS 7 have it, so
/// every SLES 15 image does.
const GLIBC_FLOOR: (u32, u32) = (2, 17);

/// target/package/, beside target/debug/ where the test binary's own build lives.
pub(crate) fn package_dir() -> PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_s3credsfs"));
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the binary lives in target/PROFILE/")
        .join("package");
    assert!(
        dir.join("SHA256SUMS").is_file(),
        "no packages in {}: run scripts/package first (or the tests with \
         S3CREDSFS_PACKAGE=1 scripts/test, which does)",
        dir.display()
    );
    dir
}

pub(crate) fn rpm_file() -> PathBuf {
    package_dir().join(format!("s3credsfs-{VERSION}-1.x86_64.rpm"))
}

fn tarball_name() -> String {
    format!("s3credsfs-{VERSION}-x86_64-linux")
}

/// Runs `program` and returns its standard output, panicking with everything it said
/// (or with the way to install it) unless it succeeded.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {program} ({e}): the packaging tests need rpm and binutils; \
             run scripts/venv as root, or apt-get install rpm binutils"
            )
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the output is text")
}

/// The newest `GLIBC_x.y[.z]` version among the symbols `binary` needs (`objdump -T`).
fn newest_glibc(binary: &Path) -> (u32, u32) {
    let table = run("objdump", &["-T", binary.to_str().unwrap()]);
    table
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .max()
        .unwrap_or_else(|| panic!("{} needs no versioned glibc symbol", binary.display()))
}

#[test]
fn the_portable_binary_needs_glibc_2_17_at_most() {
    let newest = newest_glibc(&package_dir().join("s3credsfs"));
    assert!(
        newest <= GLIBC_FLOOR,
        "the packaged binary needs GLIBC_{}.{}, newer than {GLIBC_FLOOR:?}: it would not start on \
         an older SLES; build it with scripts/package (cargo zigbuild --target \
         x86_64-unknown-linux-gnu.2.17)",
        newest.0,
        newest.1
    );
}

#[test]
fn the_glibc_check_catches_a_binary_linked_against_this_hosts_glibc() {
    // The check above could not fail if it read no versions: the debug build beside the
    // tests is linked against this host's glibc (2.34 or newer: __libc_start_main).
    let host = newest_glibc(Path::new(env!("CARGO_BIN_EXE_s3credsfs")));
    assert!(host > GLIBC_FLOOR, "{host:?}");
}

#[test]
fn the_portable_binary_runs_and_is_the_production_build() {
    let binary = package_dir().join("s3credsfs");
    let bin = binary.to_str().unwrap();
    let version = run(bin, &["--version"]);
    assert!(
        version.starts_with(&format!("s3credsfs {VERSION} (production build, commit ")),
        "{version}"
    );
    assert!(
        version.ends_with(", x86_64-unknown-linux-gnu)\n"),
        "{version}"
    );
    assert!(run(bin, &["mount", "--help"]).contains("--foreground"));
    // No gateway emulator in what is shipped (a plain build).
    let help = run(bin, &["--help"]);
    assert!(help.contains("mount"), "{help}");
    assert!(!help.contains("dev-gateway"), "{help}");
    assert!(!run(bin, &["mount", "--help"]).contains("--dev"));
    // Asked for the emulator anyway, it says where to get it.
    let dir = tempfile::tempdir().unwrap();
    let mountpoint = dir.path().to_str().unwrap();
    for args in [
        &["mount", "--config", "/dev/null", "--dev", mountpoint][..],
        &["dev-gateway", "--listen", "127.0.0.1:0"],
    ] {
        let out = Command::new(bin).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains(s3credsfs::cli::DEV_ONLY),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    assert!(!run(bin, &["completions", "bash"]).contains("dev-gateway"));
}

#[test]
fn the_rpm_is_named_versioned_and_requires_fuse3() {
    let rpm = rpm_file();
    let rpm = rpm.to_str().unwrap();
    let query = "%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{LICENSE}";
    assert_eq!(
        run("rpm", &["-qp", "--qf", query, rpm]),
        format!("s3credsfs {VERSION} 1 x86_64 MIT")
    );
    let requires = run("rpm", &["-qp", "--requires", rpm]);
    assert!(requires.lines().any(|l| l.trim() == "fuse3"), "{requires}");
}

/// The `- ` items under `## [VERSION]` in CHANGELOG.md.
fn changelog_items() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/CHANGELOG.md"))
        .expect("CHANGELOG.md");
    let heading = format!("## [{VERSION}] - ");
    let section = text
        .split("\n## ")
        .find(|s| format!("## {s}").starts_with(&heading))
        .unwrap_or_else(|| panic!("CHANGELOG.md has no {heading}"));
    section
        .lines()
        .filter_map(|l| l.strip_prefix("- "))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_rpm_changelog_comes_from_changelog_md() {
    let log = run("rpm", &["-qp", "--changelog", rpm_file().to_str().unwrap()]);
    let first = log.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("* ") && first.ends_with(&format!(" - {VERSION}-1")),
        "{log}"
    );
    let items = changelog_items();
    assert!(items.len() >= 5, "{items:?}");
    for item in items {
        assert!(
            log.contains(&format!("- {item}")),
            "the RPM changelog lacks {item:?}: {log}"
        );
    }
}

/// Every file the packages hold, with its mode, under `/`.
fn expected_files() -> Vec<(String, &'static str)> {
    let mut files = vec![
        ("/usr/bin/s3credsfs".to_string(), "-rwxr-xr-x"),
        ("/etc/s3credsfs/config.toml".into(), "-rw-r--r--"),
        (
            "/usr/lib/systemd/user/s3credsfs.service".into(),
            "-rw-r--r--",
        ),
        ("/usr/share/man/man1/s3credsfs.1.gz".into(), "-rw-r--r--"),
        (
            "/usr/share/man/man5/s3credsfs.toml.5.gz".into(),
            "-rw-r--r--",
        ),
        (
            "/usr/share/bash-completion/completions/s3credsfs".into(),
            "-rw-r--r--",
        ),
        (
            "/usr/share/zsh/site-functions/_s3credsfs".into(),
            "-rw-r--r--",
        ),
        (
            "/usr/share/fish/vendor_completions.d/s3credsfs.fish".into(),
            "-rw-r--r--",
        ),
        (
            "/usr/share/doc/packages/s3credsfs/README.md".into(),
            "-rw-r--r--",
        ),
        (
            "/usr/share/doc/packages/s3credsfs/CHANGELOG.md".into(),
            "-rw-r--r--",
        ),
        ("/usr/share/licenses/s3credsfs/LICENSE".into(), "-rw-r--r--"),
    ];
    // The docs the README links to, beside it.
    for doc in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/docs")).unwrap() {
        let name = doc.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") {
            files.push((
                format!("/usr/share/doc/packages/s3credsfs/docs/{name}"),
                "-rw-r--r--",
            ));
        }
    }
    // A page per subcommand of the production build: this test binary also has the
    // emulator's `dev-gateway`, which the shipped binary has not.
    // Nested subcommands get theirs too: `config check` is s3credsfs-config-check.1.
    fn pages(cmd: &clap::Command, prefix: &str, out: &mut Vec<(String, &'static str)>) {
        for sub in cmd.get_subcommands() {
            if sub.get_name() != "dev-gateway" && !sub.is_hide_set() {
                let name = format!("{prefix}-{}", sub.get_name());
                out.push((format!("/usr/share/man/man1/{name}.1.gz"), "-rw-r--r--"));
                pages(sub, &name, out);
            }
        }
    }
    pages(&Cli::command(), "s3credsfs", &mut files);
    files.sort();
    files
}

#[test]
fn the_rpm_holds_exactly_the_expected_files_owned_by_root_with_their_modes() {
    let query = "[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]";
    let listing = run("rpm", &["-qp", "--qf", query, rpm_file().to_str().unwrap()]);
    let mut found: Vec<String> = listing.lines().map(str::to_string).collect();
    found.sort();
    let mut expected: Vec<String> = expected_files()
        .into_iter()
        .map(|(path, mode)| format!("{mode} root root {path}"))
        .collect();
    // The package owns the site config's directory too.
    expected.push("drwxr-xr-x root root /etc/s3credsfs".into());
    expected.sort();
    assert_eq!(found, expected);
    assert_eq!(
        run("rpm", &["-qlp", rpm_file().to_str().unwrap()])
            .lines()
            .count(),
        expected.len()
    );
}

/// The site-wide config file is configuration that survives upgrades (`noreplace`), and
/// the only one.
#[test]
fn the_rpm_marks_the_site_config_as_config_noreplace() {
    let query = "[%{FILEFLAGS:fflags} %{FILENAMES}\n]";
    let listing = run("rpm", &["-qp", "--qf", query, rpm_file().to_str().unwrap()]);
    let configs: Vec<&str> = listing
        .lines()
        .filter(|l| l.split(' ').next().is_some_and(|flags| flags.contains('c')))
        .collect();
    assert_eq!(configs, ["cn /etc/s3credsfs/config.toml"], "{listing}");
}

#[test]
fn the_rpm_installs_where_the_systemd_unit_expects_the_binary() {
    let root = tempfile::tempdir().unwrap();
    let root_str = root.path().to_str().unwrap();
    run(
        "rpm",
        &[
            "-i",
            "--nodeps",
            "--root",
            root_str,
            rpm_file().to_str().unwrap(),
        ],
    );
    let installed = run("rpm", &["--root", root_str, "-q", "s3credsfs"]);
    assert_eq!(installed.trim(), format!("s3credsfs-{VERSION}-1.x86_64"));
    // rpm's own check of every file's digest, mode and owner against the package (fuse3
    // is not in the scratch root).
    run("rpm", &["--root", root_str, "-V", "--nodeps", "s3credsfs"]);

    let unit = root.path().join("usr/lib/systemd/user/s3credsfs.service");
    let unit = std::fs::read_to_string(&unit).expect("the unit is installed");
    let exec_start = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("ExecStart="))
        .expect("the unit has ExecStart=");
    let program = exec_start.split_whitespace().next().unwrap();
    assert_eq!(program, "/usr/bin/s3credsfs", "{exec_start}");
    let binary = root.path().join(program.trim_start_matches('/'));
    let meta = std::fs::metadata(&binary).expect("ExecStart names an installed file");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    assert!(run(binary.to_str().unwrap(), &["--version"])
        .starts_with(&format!("s3credsfs {VERSION} (production build, ")));
    // The unit's arguments are ones the installed binary accepts.
    let args: Vec<&str> = exec_start.split_whitespace().skip(1).collect();
    let mut help_args = args.clone();
    help_args.push("--help");
    run(binary.to_str().unwrap(), &help_args);

    // The site config as shipped: s3credsfs accepts it (root's, 0644) and it sets nothing.
    let site = root.path().join("etc/s3credsfs/config.toml");
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/etc/config.toml"
    ))
    .unwrap();
    assert_eq!(std::fs::read_to_string(&site).unwrap(), shipped);
    let parsed = s3credsfs::config::read_site_file(&site).unwrap();
    assert!(parsed.top.is_empty() && parsed.profiles.is_empty());

    // The pages clap cannot write are there: the config file's, as the code makes it,
    // and the top page's FILES, ENVIRONMENT and SEE ALSO.
    let man = |page: &str| run("gzip", &["-dc", root.path().join(page).to_str().unwrap()]);
    assert_eq!(
        man("usr/share/man/man5/s3credsfs.toml.5.gz"),
        s3credsfs::cli::manual::config_page()
    );
    let top = man("usr/share/man/man1/s3credsfs.1.gz");
    for section in [".SH ENVIRONMENT\n", ".SH FILES\n", ".SH \"SEE ALSO\"\n"] {
        assert!(top.contains(section), "{section} in\n{top}");
    }

    for (path, mode) in expected_files() {
        let file = root.path().join(path.trim_start_matches('/'));
        let meta = std::fs::metadata(&file).unwrap_or_else(|e| panic!("{path}: {e}"));
        let want = if mode == "-rwxr-xr-x" { 0o755 } else { 0o644 };
        assert_eq!(meta.permissions().mode() & 0o7777, want, "{path}");
    }
}

#[test]
fn the_tarball_holds_the_same_files_owned_by_root_and_sha256sums_match() {
    let dir = package_dir();
    let name = tarball_name();
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let mut listed: Vec<&str> = sums.lines().filter_map(|l| l.split("  ").nth(1)).collect();
    listed.sort();
    let rpm = format!("s3credsfs-{VERSION}-1.x86_64.rpm");
    let tarball = format!("{name}.tar.gz");
    let mut want = vec!["s3credsfs", rpm.as_str(), tarball.as_str()];
    want.sort();
    assert_eq!(listed, want, "{sums}");
    let checked = Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(checked.status.success(), "{checked:?}");

    let tar = dir.join(&tarball);
    let listing = run("tar", &["--numeric-owner", "-tvzf", tar.to_str().unwrap()]);
    let mut files: Vec<String> = listing
        .lines()
        .filter(|l| l.starts_with('-'))
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let path = fields[5].strip_prefix(&name).expect("one top directory");
            format!("{} {} {path}", fields[0], fields[1])
        })
        .collect();
    files.sort();
    let mut expected: Vec<String> = expected_files()
        .into_iter()
        .map(|(path, mode)| format!("{mode} 0/0 {path}"))
        .collect();
    expected.sort();
    assert_eq!(files, expected);
    assert!(
        listing
            .lines()
            .all(|l| l.split_whitespace().nth(1) == Some("0/0")),
        "{listing}"
    );

    let out = tempfile::tempdir().unwrap();
    run(
        "tar",
        &[
            "-xzf",
            tar.to_str().unwrap(),
            "-C",
            out.path().to_str().unwrap(),
        ],
    );
    let unpacked = std::fs::read(out.path().join(&name).join("usr/bin/s3credsfs")).unwrap();
    assert!(unpacked == std::fs::read(dir.join("s3credsfs")).unwrap());
}
