//! The README cannot drift: every `s3credsfs` command line it shows parses with today's
//! flags, every config example resolves, and (with real mounts) its tour and its
//! administrator's walkthrough run as written against the built-in gateway.

use s3credsfs::cli::Cli;
use s3credsfs::config::{parse_config_file, Context, Layer, Profiles};
use std::path::Path;

const README: &str = include_str!("../../README.md");
const CARGO_CONFIG: &str = include_str!("../../.cargo/config.toml");

/// The `cargo` aliases of a checkout (`.cargo/config.toml`), each with the `s3credsfs`
/// arguments it runs. Every one must run the binary with the emulator, so that the
/// README's `cargo demo` and `cargo dev ...` lines are that one binary's command lines.
fn cargo_aliases() -> Vec<(String, String)> {
    let config: toml::Table = CARGO_CONFIG.parse().expect(".cargo/config.toml parses");
    let aliases = config["alias"].as_table().expect("an [alias] table");
    aliases
        .iter()
        .map(|(name, value)| {
            let line = value.as_str().expect("an alias as one string");
            let args = line
                .strip_prefix("run -q --features dev-gateway --")
                .unwrap_or_else(|| panic!("`cargo {name}` runs {line:?}, not the emulator build"));
            (name.clone(), args.trim().to_string())
        })
        .collect()
}

/// `script` with every `cargo ALIAS` written as the `s3credsfs` command line it runs.
fn expand_aliases(script: &str) -> String {
    let mut out = script.to_string();
    for (name, args) in cargo_aliases() {
        let call = format!("cargo {name}");
        let mut expanded = String::new();
        let mut rest = out.as_str();
        while let Some(at) = rest.find(&call) {
            let after = &rest[at + call.len()..];
            expanded.push_str(&rest[..at]);
            if after.starts_with(|c: char| !c.is_whitespace()) {
                expanded.push_str(&call);
            } else {
                expanded.push_str(format!("s3credsfs {args}").trim_end());
            }
            rest = after;
        }
        expanded.push_str(rest);
        out = expanded;
    }
    out
}

/// A fenced block: its info string, the `<!-- readme-test: NAME -->` marker before it,
/// and its text.
struct Block {
    info: String,
    marker: Option<String>,
    text: String,
}

fn blocks() -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = README.lines().peekable();
    let mut marker = None;
    while let Some(line) = lines.next() {
        if let Some(name) = line
            .strip_prefix("<!-- readme-test: ")
            .and_then(|l| l.strip_suffix(" -->"))
        {
            marker = Some(name.to_string());
            continue;
        }
        let Some(info) = line.strip_prefix("```") else {
            if !line.trim().is_empty() {
                marker = None;
            }
            continue;
        };
        let mut text = String::new();
        for inner in lines.by_ref() {
            if inner.starts_with("```") {
                break;
            }
            text.push_str(inner);
            text.push('\n');
        }
        out.push(Block {
            info: info.trim().to_string(),
            marker: marker.take(),
            text: expand_aliases(&text),
        });
    }
    out
}

/// Shell words of one line, up to a comment; operators (`&&`, `|`, `;`, `&`) are words
/// of their own. Quotes are removed; `$VAR` and `~` stay as written.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut started = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                started = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                started = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        q => word.push(q),
                    }
                }
            }
            '#' if !started => break,
            '<' | '>' => {
                // A redirection: its fd number is not a word, its target stays one.
                if started && !word.chars().all(|d| d.is_ascii_digit()) {
                    out.push(std::mem::take(&mut word));
                }
                word.clear();
                started = false;
                let mut op = c.to_string();
                while chars.peek().is_some_and(|n| "<>&".contains(*n)) {
                    op.extend(chars.next());
                }
                if op.ends_with('&') {
                    while chars
                        .peek()
                        .is_some_and(|n| n.is_ascii_digit() || *n == '-')
                    {
                        op.extend(chars.next());
                    }
                }
                out.push(op);
            }
            c if c.is_whitespace() || "&|;".contains(c) => {
                if started {
                    out.push(std::mem::take(&mut word));
                    started = false;
                }
                if !c.is_whitespace() {
                    let mut op = c.to_string();
                    while chars.peek().is_some_and(|n| "&|".contains(*n)) {
                        op.extend(chars.next());
                    }
                    out.push(op);
                }
            }
            c => {
                started = true;
                word.push(c);
            }
        }
    }
    if started {
        out.push(word);
    }
    out
}

/// The `s3credsfs` invocations of a shell block, each as its arguments (without the
/// program), with the line it came from; heredoc bodies are skipped.
fn invocations(script: &str) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    let mut heredoc: Option<String> = None;
    let mut pending = String::new();
    for raw in script.lines() {
        if let Some(end) = &heredoc {
            if raw.trim() == end {
                heredoc = None;
            }
            continue;
        }
        if let Some(start) = raw.find("<<") {
            let end = raw[start + 2..].trim().trim_matches(['\'', '"', '-']);
            heredoc = Some(
                end.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        let line = raw.trim_start_matches("$ ");
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        let line = std::mem::take(&mut pending) + line;
        for command in words(&line).split(|w| ["&&", "||", "|", ";", "&"].contains(&w.as_str())) {
            // `VAR=value` prefixes are environment, not the command.
            let start = command
                .iter()
                .position(|w| !w.contains('=') || w.starts_with('-'))
                .unwrap_or(command.len());
            let mut plain = Vec::new();
            let mut rest = command[start..].iter();
            while let Some(w) = rest.next() {
                if w.starts_with('<') || w.starts_with('>') {
                    // `>&2` names its target itself; `> FILE` takes the next word.
                    if !w.ends_with(|c: char| c.is_ascii_digit() || c == '-') {
                        rest.next();
                    }
                    continue;
                }
                plain.push(w.clone());
            }
            let command = plain.as_slice();
            let args = match command {
                [program, rest @ ..]
                    if program == "s3credsfs" || program.ends_with("/s3credsfs") =>
                {
                    rest
                }
                [cargo, run, quiet, dashes, rest @ ..]
                    if [cargo, run, quiet, dashes] == [&"cargo", &"run", &"-q", &"--"] =>
                {
                    rest
                }
                _ => continue,
            };
            found.push((line.clone(), args.to_vec()));
        }
    }
    found
}

#[test]
fn the_cargo_aliases_run_the_emulator_build_and_the_demo_mounts() {
    let aliases = cargo_aliases();
    let alias = |name: &str| {
        aliases
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.as_str())
    };
    assert_eq!(alias("demo"), Some("mount --dev"));
    assert_eq!(alias("dev"), Some(""));
    assert!(README.contains("\ncargo demo && cat ~/.s3creds/json\n"));
    assert_eq!(
        expand_aliases("cargo demo && cargo dev status\ncargo devx\n"),
        "s3credsfs mount --dev && s3credsfs status\ncargo devx\n"
    );
}

#[test]
fn every_command_line_in_the_readme_parses() {
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
                    panic!("the README shows `{line}`, which does not parse:\n{e}");
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
fn every_config_example_in_the_readme_resolves() {
    let mut checked = 0;
    let examples: Vec<Block> = blocks().into_iter().filter(|b| b.info == "toml").collect();
    let parse = |block: &Block| {
        parse_config_file(&block.text, Path::new("README.md"))
            .unwrap_or_else(|e| panic!("{e}\n{}", block.text))
    };
    let mut sites = 0;
    for (i, block) in examples.iter().enumerate() {
        let mut files = vec![parse(block)];
        if block.text.starts_with(SITE_EXAMPLE) {
            // A site file, read under the user's file that follows it.
            let user = examples
                .get(i + 1)
                .expect("a user's file after the site file");
            files.insert(0, parse(user));
            sites += 1;
        }
        let profiles = Profiles::from_files(Layer::new(), files).unwrap();
        profiles
            .resolve_all(&Context::default())
            .unwrap_or_else(|e| panic!("{e}\n{}", block.text));
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

/// The blocks that run for real, as the README shows them.
#[cfg(feature = "fuse-tests")]
mod runs {
    use super::*;
    use crate::common::mount::{bin, BackgroundMount};
    use crate::common::KillOnDrop;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

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
            "the README block failed:\n{script}\nstdout:\n{stdout}\nstderr:\n{stderr}"
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
        let script = format!("{first}{}", marked("demo")).replace("cargo run -q --", "s3credsfs");
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
        // The gateways the README starts in the background, on free ports.
        let gateways = blocks()
            .into_iter()
            .find(|b| b.text.contains("dev-gateway --listen 127.0.0.1:9443 &"))
            .expect("the block starting two gateways")
            .text;
        // What the README starts in the background, it stops again.
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
        let mut script = marked("admin");
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
            servers.push(KillOnDrop(child));
            let start = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "{line} never listened"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
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

/// The README's exit-status tables are the code's lists: every status, whether the unit
/// restarts after it, and `status`'s verdicts.
#[test]
fn the_exit_status_tables_are_the_codes() {
    use s3credsfs::exit_status::{ExitStatus, Health};
    let section = README
        .split_once("### Exit statuses\n")
        .expect("an Exit statuses section")
        .1;
    let rows: Vec<(u8, bool)> = section
        .lines()
        .take_while(|l| !l.starts_with('#'))
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
    let monitoring = README
        .split_once("### Monitoring (`status --check` and `--json`)\n")
        .expect("a Monitoring section")
        .1;
    for health in Health::ALL {
        let row = format!("| {} | {} |", health.code(), health.word());
        assert!(monitoring.contains(&row), "no row {row}");
    }
}

/// Every field `status --json` prints is documented in the README's table.
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
    for field in doc.as_object().unwrap().keys() {
        assert!(
            README.contains(&format!("| `{field}` |")),
            "the README's status table misses `{field}`"
        );
    }
}
