//! The docs cannot drift: every `s3credsfs` command line that the README or any
//! `docs/*.md` shows parses with today's flags, every config example resolves, the tables
//! are the code's, every relative link leads somewhere, and (with real mounts) the
//! README's tour and the administrator's walkthrough run as written against the built-in
//! gateway. Each check finds its text in whichever file holds it now.

use s3credsfs::cli::Cli;
use s3credsfs::config::{parse_config_file, Context, Layer, Profiles};
use std::path::Path;

mod aliases;
mod markdown;
mod shell;

use markdown::{blocks, section, Block};
use shell::{invocations, words};

#[test]
fn the_cargo_aliases_run_the_emulator_build_and_the_demo_mounts() {
    let aliases = aliases::cargo_aliases();
    let alias = |name: &str| {
        aliases
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.as_str())
    };
    assert_eq!(alias("demo"), Some("mount --dev"));
    assert_eq!(alias("dev"), Some(""));
    let readme = &markdown::docs()[0];
    assert_eq!(readme.path, "README.md");
    assert!(readme
        .text
        .contains("\ncargo demo && cat ~/.s3creds/json\n"));
    assert_eq!(
        aliases::expand_aliases("cargo demo && cargo dev status\ncargo devx\n"),
        "s3credsfs mount --dev && s3credsfs status\ncargo devx\n"
    );
}

#[test]
fn every_command_line_in_the_docs_parses() {
    let mut checked = 0;
    for block in blocks() {
        let script = match block.info.as_str() {
            "sh" | "bash" | "console" => block.text.clone(),
            // `credential_process = /usr/local/bin/s3credsfs fetch ...`
            "ini" => block
                .text
                .lines()
                .filter_map(|l| l.strip_prefix("credential_process = "))
                .map(|l| format!("{l}\n"))
                .collect(),
            _ => continue,
        };
        for (line, args) in invocations(&script) {
            let argv = std::iter::once("s3credsfs".to_string()).chain(args);
            if let Err(e) = <Cli as clap::Parser>::try_parse_from(argv) {
                let kind = e.kind();
                // `--help` and `--version` "fail" by printing.
                if kind != clap::error::ErrorKind::DisplayHelp
                    && kind != clap::error::ErrorKind::DisplayVersion
                {
                    panic!("{} shows `{line}`, which does not parse:\n{e}", block.doc);
                }
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 30,
        "only {checked} command lines found: is the parser broken?"
    );
}

/// The first line a site-wide config file example starts with; the user's file that
/// completes it (with a login) is the next `toml` block.
const SITE_EXAMPLE: &str = "# /etc/s3credsfs/config.toml\n";

#[test]
fn every_config_example_in_the_docs_resolves() {
    let mut checked = 0;
    let examples: Vec<Block> = blocks().into_iter().filter(|b| b.info == "toml").collect();
    let parse = |block: &Block| {
        parse_config_file(&block.text, Path::new(&block.doc))
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", block.doc, block.text))
    };
    let mut sites = 0;
    for (i, block) in examples.iter().enumerate() {
        let mut files = vec![parse(block)];
        if block.text.starts_with(SITE_EXAMPLE) {
            // A site file, read under the user's file that follows it in the same doc.
            let user = examples
                .get(i + 1)
                .filter(|next| next.doc == block.doc)
                .unwrap_or_else(|| panic!("{}: a user's file after the site file", block.doc));
            files.insert(0, parse(user));
            sites += 1;
        }
        let profiles = Profiles::from_files(Layer::new(), files).unwrap();
        profiles
            .resolve_all(&Context::default())
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", block.doc, block.text));
        checked += 1;
    }
    assert!(
        checked >= 4 && sites >= 1,
        "only {checked} config examples found"
    );
}

#[test]
fn the_word_splitter_keeps_quotes_operators_and_comments_apart() {
    assert_eq!(
        words("a 'b c' \"d\\\"e\" f&&g | h # i"),
        ["a", "b c", "d\"e", "f", "&&", "g", "|", "h"]
    );
    assert_eq!(words("a >f 2>&1 <in"), ["a", ">", "f", ">&1", "<", "in"]);
    let found = invocations(
        "X=1 s3credsfs fetch -f env > out 2>&1 && cat x\ncat > f <<'EOF'\ns3credsfs nope\nEOF\ncargo run -q -- status\n",
    );
    let args: Vec<Vec<String>> = found.into_iter().map(|(_, a)| a).collect();
    assert_eq!(args, [vec!["fetch", "-f", "env"], vec!["status"]]);
}

/// The blocks the fuse tier runs as written (`runs::marked`): each marker names exactly
/// one block, and no block carries a marker that no test runs (a typo would leave a block
/// untested without a word).
const RUN_MARKERS: [&str; 2] = ["demo", "admin"];

#[test]
fn every_marked_block_is_one_the_tests_run() {
    let mut found: Vec<String> = blocks().into_iter().filter_map(|b| b.marker).collect();
    found.sort();
    let mut expected: Vec<String> = RUN_MARKERS.iter().map(|m| m.to_string()).collect();
    expected.sort();
    assert_eq!(found, expected);
}

/// The blocks that run for real, as the docs show them.
#[cfg(feature = "fuse-tests")]
mod runs {
    use super::*;
    use crate::common::mount::{bin, BackgroundMount};
    use crate::common::{wait_for, StopOnDrop};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    fn marked(name: &str) -> String {
        let found: Vec<Block> = blocks()
            .into_iter()
            .filter(|b| b.marker.as_deref() == Some(name))
            .collect();
        assert_eq!(found.len(), 1, "one block marked {name}");
        found[0].text.clone()
    }

    /// Runs `script` with bash in a temporary `HOME`, `s3credsfs` first on `PATH`.
    fn run(script: &str, home: &Path, mount: &BackgroundMount) -> String {
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_s3credsfs")).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("bash");
        cmd.env_clear()
            .envs(
                bin()
                    .get_envs()
                    .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
            )
            .envs(
                mount
                    .bin()
                    .get_envs()
                    .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
            )
            .env("PATH", path)
            .env("HOME", home)
            .env_remove("S3CREDSFS_LOG")
            .args(["-euo", "pipefail", "-c", script])
            .stdin(Stdio::null());
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "the block failed:\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        stdout
    }

    #[test]
    fn the_tour_runs_as_written() {
        let first = blocks()
            .into_iter()
            .find(|b| b.text.contains("mount --dev &&"))
            .expect("the first of the two commands")
            .text;
        let script = format!("{first}{}", marked(RUN_MARKERS[0]));
        let home = tempfile::tempdir().unwrap();
        let mount = BackgroundMount::new(&home.path().join(".s3creds"));
        let out = run(&script, home.path(), &mount);
        assert!(out.contains("\"AccessKeyId\""), "{out}");
        assert!(out.contains("profiles") && out.contains("default"), "{out}");
        assert!(out.contains(" valid until 20"), "{out}");
        assert!(out.contains("refreshed profile default"), "{out}");
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn the_administrators_walkthrough_runs_as_written() {
        // The gateways the walkthrough starts in the background, on free ports.
        let gateways = blocks()
            .into_iter()
            .find(|b| b.text.contains("dev-gateway --listen 127.0.0.1:9443 &"))
            .expect("the block starting two gateways")
            .text;
        // What the walkthrough starts in the background, it stops again.
        let pids: Vec<&str> = gateways
            .lines()
            .filter_map(|l| l.split("& ").nth(1)?.split("=$!").next())
            .collect();
        assert_eq!(pids, ["prod", "tds"], "{gateways}");
        assert!(
            blocks()
                .iter()
                .any(|b| b.text.trim() == "kill \"$prod\" \"$tds\""),
            "no block stops the gateways"
        );
        let mut script = marked(RUN_MARKERS[1]);
        let mut servers = Vec::new();
        for (line, args) in invocations(&gateways) {
            let written = args
                .iter()
                .find(|a| a.starts_with("127.0.0.1:"))
                .unwrap()
                .clone();
            let port = free_port();
            script = script.replace(&written, &format!("127.0.0.1:{port}"));
            let child = Command::new(env!("CARGO_BIN_EXE_s3credsfs"))
                .env_clear()
                .envs(crate::common::clean_env())
                .args(
                    args.iter()
                        .map(|a| a.replace(&written, &format!("127.0.0.1:{port}"))),
                )
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{line}: {e}"));
            servers.push(StopOnDrop::kill(child));
            wait_for(
                &format!("{line} to listen"),
                Duration::from_secs(20),
                || std::net::TcpStream::connect(("127.0.0.1", port)),
            );
        }
        assert_eq!(servers.len(), 2);
        let home = tempfile::tempdir().unwrap();
        let mount = BackgroundMount::new(&home.path().join(".s3creds"));
        let out = run(&script, home.path(), &mount);
        assert!(out.contains("profile prod (default): works: "), "{out}");
        assert!(out.contains("profile tds: works: "), "{out}");
        assert!(
            out.lines().any(|l| l.trim() == "3"),
            "three sections: {out}"
        );
        assert!(out.contains("refreshed profile tds"), "{out}");
        assert!(out.contains("tds-region http://"), "{out}");
        assert!(out.contains("unmounted"), "{out}");
    }
}

/// The examples at the end of every command's `--help` parse too, so they cannot drift.
#[test]
fn every_help_example_parses() {
    fn examples(cmd: &clap::Command, found: &mut Vec<String>) {
        if let Some(after) = cmd.get_after_help() {
            let text = after.to_string();
            if let Some((_, rest)) = text.split_once("Examples:\n") {
                for line in rest.lines().take_while(|l| l.starts_with("  ")) {
                    found.push(line.trim().to_string());
                }
            }
        }
        for sub in cmd.get_subcommands() {
            examples(sub, found);
        }
    }
    let mut lines = Vec::new();
    examples(&<Cli as clap::CommandFactory>::command(), &mut lines);
    let mut parsed = 0;
    for line in &lines {
        for (shown, args) in invocations(line) {
            let argv = std::iter::once("s3credsfs".to_string()).chain(args);
            if let Err(e) = <Cli as clap::Parser>::try_parse_from(argv) {
                panic!("`--help` shows `{shown}`, which does not parse:\n{e}");
            }
            parsed += 1;
        }
    }
    // Every command but `help` has examples.
    let commands = <Cli as clap::CommandFactory>::command()
        .get_subcommands()
        .count();
    assert!(
        parsed >= commands,
        "{parsed} examples for {commands} commands: {lines:?}"
    );
}

/// The exit-status tables are the code's lists: every status, whether the unit restarts
/// after it, and `status`'s verdicts.
#[test]
fn the_exit_status_tables_are_the_codes() {
    use s3credsfs::exit_status::{ExitStatus, Health};
    let (_, statuses) = section("Exit statuses");
    let rows: Vec<(u8, bool)> = statuses
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let code = cells.get(1)?.parse().ok()?;
            Some((code, *cells.get(3)? == "yes"))
        })
        .collect();
    let code: Vec<(u8, bool)> = ExitStatus::ALL
        .into_iter()
        .map(|s| (s.code(), s.restart_helps()))
        .collect();
    assert_eq!(rows, code);
    let (doc, monitoring) = section("Monitoring (`status --check` and `--json`)");
    for health in Health::ALL {
        let row = format!("| {} | {} |", health.code(), health.word());
        assert!(monitoring.contains(&row), "{doc}: no row {row}");
    }
}

/// Every field `status --json` prints is documented in the docs' table of them.
#[test]
fn every_status_field_is_documented() {
    let doc = serde_json::to_value(s3credsfs::status::StatusDoc {
        state: "fresh".into(),
        expiration: None,
        seconds_remaining: None,
        last_refresh: None,
        refresh_count: 0,
        last_error: None,
        gateway: String::new(),
        auth: String::new(),
        user: None,
        profile: String::new(),
        mountpoint: String::new(),
        pid: 1,
        min_validity_seconds: 1,
        container_endpoint: None,
        log_file: None,
        control_socket: None,
        secret_env: None,
        clock_warning: Some(String::new()),
        profiles: Some(vec![]),
    })
    .unwrap();
    let (path, monitoring) = section("Monitoring (`status --check` and `--json`)");
    for field in doc.as_object().unwrap().keys() {
        assert!(
            monitoring.contains(&format!("| `{field}` |")),
            "{path}: the status table misses `{field}`"
        );
    }
}

/// The README links every reader's page, and each of them is there.
#[test]
fn the_readme_links_every_page() {
    let docs = markdown::docs();
    let readme = &docs[0].text;
    for page in markdown::PAGES {
        assert!(
            docs.iter().any(|d| d.path == page),
            "{page} is missing: the README sends readers to it"
        );
        assert!(
            readme.contains(&format!("]({page})")),
            "the README does not link {page}"
        );
    }
}

/// Every relative link in the README and the docs leads to a file that exists, and a
/// `#heading` to a heading it has.
#[test]
fn every_link_in_the_docs_leads_somewhere() {
    let docs = markdown::docs();
    let links: usize = docs.iter().map(|d| markdown::links(&d.text).len()).sum();
    assert!(
        links >= 30,
        "only {links} links found: is the parser broken?"
    );
    let broken = markdown::broken_links(&docs);
    assert!(
        broken.is_empty(),
        "links that lead nowhere:\n{}",
        broken.join("\n")
    );
}

/// The link check finds a missing file, a missing heading, and a link out of the
/// repository, and takes GitHub's anchors.
#[test]
fn the_link_check_finds_broken_links() {
    let doc = |path: &str, text: &str| markdown::Doc {
        path: path.into(),
        text: text.into(),
    };
    let docs = [
        doc(
            "README.md",
            "# A\n[ok](docs/install.md) [ok](#a) [gone](docs/gone.md) [out](../x.md)\n\
             [web](https://example.com/x) [bad](#b)\n```sh\necho '[no](nowhere.md)'\n```\n",
        ),
        doc(
            "docs/install.md",
            "## Site-wide configuration (`/etc/x.toml`)\n## A\n## A\n[up](../README.md#a)\n",
        ),
    ];
    assert_eq!(
        markdown::broken_links(&docs),
        [
            "README.md: docs/gone.md (no such file)",
            "README.md: ../x.md (no such file)",
            "README.md: #b (no such heading)",
        ]
    );
    assert_eq!(
        markdown::anchors(&docs[1].text),
        ["site-wide-configuration-etcxtoml", "a", "a-1"]
    );
}

/// Every path of the repository a doc names in backquotes (`tests/it/...`, `scripts/...`)
/// exists; a `*` matches within one file name.
#[test]
fn every_path_the_docs_name_exists() {
    let mut checked = 0;
    for doc in markdown::docs() {
        for path in markdown::named_paths(&doc.text) {
            assert!(
                markdown::path_exists(&path),
                "{} names `{path}`, which does not exist",
                doc.path
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} paths found");
}

/// The path check takes `*`, and finds a path that is gone (as `tests/clients_*.rs` once
/// was, when the tests moved under `tests/it/`).
#[test]
fn the_path_check_finds_stale_paths() {
    let text = "`tests/it/rgw_*.rs`, `scripts/venv` and `tests/clients_*.rs`; \
                `a b` `tests/it/no_such.rs`\n```sh\n`docs/gone.md`\n```\n";
    let named = markdown::named_paths(text);
    assert_eq!(
        named,
        [
            "tests/it/rgw_*.rs",
            "scripts/venv",
            "tests/clients_*.rs",
            "tests/it/no_such.rs"
        ]
    );
    let exists: Vec<bool> = named.iter().map(|p| markdown::path_exists(p)).collect();
    assert_eq!(exists, [true, true, false, false]);
}

/// The "Tested against" table names the versions the repository pins, so a bump of a pin
/// without the table (or the reverse) fails here. Versions found on the machine (RGW,
/// rclone, curl, FUSE, Go, Node, Java, Maven) have no pin to hold them to; the Java
/// and Hadoop probes' pins are properties of their pom.xml.
#[test]
fn the_tested_against_table_matches_the_pins() {
    let read = |path: &str| std::fs::read_to_string(markdown::root().join(path)).unwrap();
    let (doc, table) = section("Tested against");
    let version_of = |server_or_client: &str| -> String {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| {server_or_client} |")))
            .unwrap_or_else(|| panic!("{doc}: no row for {server_or_client}"));
        row.split('|').nth(2).unwrap().trim().to_owned()
    };
    let keycloak = read("scripts/keycloak");
    let keycloak = keycloak
        .lines()
        .find_map(|l| l.strip_prefix("version="))
        .expect("scripts/keycloak sets version=");
    let venv = read("scripts/venv");
    let python_pin = |package: &str| -> String {
        let start = venv.find(&format!("{package}==")).expect(package) + package.len() + 2;
        venv[start..]
            .split([' ', '\'', ')'])
            .next()
            .unwrap()
            .to_owned()
    };
    let lock: serde_json::Value =
        serde_json::from_str(&read("tests/sdk/js/package-lock.json")).unwrap();
    let js = lock["packages"]["node_modules/@aws-sdk/client-s3"]["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let cargo_lock = read("tests/sdk/rust/Cargo.lock");
    let crate_pin = |name: &str| -> String {
        let at = cargo_lock
            .find(&format!("name = \"{name}\"\nversion = \""))
            .expect(name);
        cargo_lock[at..].split('"').nth(3).unwrap().to_owned()
    };
    let pom_property = |pom: &str, name: &str| -> String {
        let pom = read(pom);
        let open = format!("<{name}>");
        let start = pom.find(&open).expect(name) + open.len();
        pom[start..].split('<').next().unwrap().trim().to_owned()
    };
    let go_mod = read("tests/sdk/go/go.mod");
    let go_pin = |module: &str| -> String {
        let line = go_mod
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("github.com/aws/{module} v")))
            .expect(module);
        line.split_whitespace().next().unwrap().to_owned()
    };
    let expected = [
        ("Keycloak", vec![keycloak.to_owned()]),
        (
            "moto (S3 and STS emulator)",
            vec![python_pin("moto[server]")],
        ),
        (
            "AWS CLI",
            vec![python_pin("awscli"), python_pin("botocore")],
        ),
        ("boto3", vec![python_pin("boto3")]),
        ("s3cmd", vec![python_pin("s3cmd")]),
        ("JavaScript SDK v3 (`@aws-sdk/client-s3`)", vec![js]),
        (
            "Go SDK v2 (`config`, `service/s3`)",
            vec![
                go_pin("aws-sdk-go-v2/config"),
                go_pin("aws-sdk-go-v2/service/s3"),
            ],
        ),
        (
            "Rust SDK (`aws-config`, `aws-sdk-s3`)",
            vec![crate_pin("aws-config"), crate_pin("aws-sdk-s3")],
        ),
        (
            "Java SDK v2 (`software.amazon.awssdk:s3`)",
            vec![pom_property("tests/sdk/java/pom.xml", "aws.sdk.version")],
        ),
        (
            "Hadoop S3A (`hadoop-aws`)",
            vec![pom_property("tests/sdk/hadoop/pom.xml", "hadoop.version")],
        ),
    ];
    for (row, pins) in expected {
        let written = version_of(row);
        for pin in pins {
            assert!(
                written.contains(&pin),
                "{doc}: {row} says {written}, the pin is {pin}"
            );
        }
    }
}
