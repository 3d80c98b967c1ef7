//! `completions` and `man`: shell completion scripts and manual pages generated from the
//! clap definitions at run time, so what a package ships can never drift from the flags of
//! the binary beside it (scripts/package runs the built binary to make them).

use super::args::Shell;
use super::command::Cli;
use crate::app_error::AppError;
use clap::CommandFactory;
use std::io::Write;
use std::path::Path;

/// The generator clap_complete has for `shell`.
fn generator(shell: Shell) -> clap_complete::Shell {
    match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    }
}

/// Writes the completion script for `shell` covering every subcommand and flag.
pub fn write_completions(shell: Shell, out: &mut dyn Write) {
    let mut cmd = Cli::command();
    clap_complete::generate(generator(shell), &mut cmd, "s3credsfs", out);
}

/// Writes the top-level manual page (s3credsfs.1): clap's sections, then EXIT STATUS,
/// ENVIRONMENT, FILES and SEE ALSO (before VERSION).
pub fn write_man_page(out: &mut dyn Write) -> std::io::Result<()> {
    // `help` gets no page of its own (generate_to skips it), so the list names none.
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command().disable_help_subcommand(true)).render(&mut page)?;
    let page = String::from_utf8_lossy(&page);
    let extra = super::manual::top_page_sections();
    let page = match page.find("\n.SH VERSION\n") {
        Some(at) => format!("{}\n{}{}", &page[..at], extra, &page[at + 1..]),
        None => format!("{page}{extra}"),
    };
    out.write_all(page.as_bytes())
}

/// Writes s3credsfs.1, s3credsfs-SUBCOMMAND.1 for every visible subcommand and
/// s3credsfs.toml.5 into `dir`.
pub fn write_man_pages(dir: &Path) -> Result<(), AppError> {
    let failed = |source| AppError::ManPages {
        dir: dir.to_path_buf(),
        source,
    };
    clap_mangen::generate_to(Cli::command(), dir).map_err(failed)?;
    let mut top = Vec::new();
    write_man_page(&mut top).map_err(failed)?;
    std::fs::write(dir.join("s3credsfs.1"), top).map_err(failed)?;
    std::fs::write(dir.join("s3credsfs.toml.5"), super::manual::config_page()).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit_status::{ExitStatus, Health};
    use std::process::{Command, Stdio};

    /// Every subcommand a user can type, as the parser knows them (so a subcommand added
    /// later is checked without touching these tests).
    fn subcommands() -> Vec<String> {
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| s.get_name().to_string())
            .collect();
        assert!(
            names.len() >= 4,
            "the parser lists too few subcommands: {names:?}"
        );
        names
    }

    fn completions(shell: Shell) -> String {
        let mut out = Vec::new();
        write_completions(shell, &mut out);
        String::from_utf8(out).expect("a completion script is text")
    }

    fn bash_syntax_check(script: &str) -> std::process::Output {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s3credsfs.bash");
        std::fs::write(&path, script).unwrap();
        Command::new("bash")
            .arg("-n")
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .expect("bash runs")
    }

    #[test]
    fn bash_completions_parse_and_offer_every_subcommand() {
        let script = completions(Shell::Bash);
        let checked = bash_syntax_check(&script);
        assert!(
            checked.status.success(),
            "bash -n rejects the completion script: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
        assert!(script.contains("complete -F _s3credsfs"), "{script}");
        for name in subcommands() {
            assert!(script.contains(&name), "bash completions miss {name}");
        }
    }

    #[test]
    fn the_bash_syntax_check_rejects_a_broken_script() {
        // The check above could not fail if `bash -n` accepted anything.
        let broken = completions(Shell::Bash).replacen("esac", "", 1);
        assert!(!bash_syntax_check(&broken).status.success());
    }

    #[test]
    fn zsh_and_fish_completions_offer_every_subcommand() {
        let zsh = completions(Shell::Zsh);
        assert!(zsh.starts_with("#compdef s3credsfs"), "{zsh}");
        let fish = completions(Shell::Fish);
        assert!(fish.contains("complete -c s3credsfs"), "{fish}");
        for name in subcommands() {
            assert!(
                zsh.contains(&format!("'{name}:")),
                "zsh completions miss {name}"
            );
            assert!(
                fish.contains(&format!("-a \"{name}\"")),
                "fish completions miss {name}"
            );
        }
    }

    #[test]
    fn completions_offer_the_mount_flags() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = completions(shell);
            assert!(
                script.contains("foreground"),
                "{shell:?} misses --foreground"
            );
        }
    }

    #[test]
    fn man_page_has_a_title_and_lists_every_subcommand() {
        let mut out = Vec::new();
        write_man_page(&mut out).unwrap();
        let page = String::from_utf8(out).unwrap();
        assert!(page.starts_with(".ie \\n(.g .ds Aq"), "{page}");
        assert!(page.contains("\n.TH s3credsfs 1 "), "no .TH header: {page}");
        assert!(
            page.contains(env!("CARGO_PKG_VERSION")),
            "no version: {page}"
        );
        assert!(
            !page.contains("s3credsfs\\-help(1)"),
            "the page lists a page that is never written: {page}"
        );
        for name in subcommands() {
            assert!(
                page.contains(&format!("s3credsfs\\-{}(1)", name.replace('-', "\\-"))),
                "the page does not list {name}: {page}"
            );
        }
    }

    #[test]
    fn the_man_page_lists_every_exit_status_of_the_code() {
        let mut out = Vec::new();
        write_man_page(&mut out).unwrap();
        let page = String::from_utf8(out).unwrap();
        let section = page
            .split_once(".SH \"EXIT STATUS\"\n")
            .expect("an EXIT STATUS section")
            .1;
        let section = section.split("\n.SH ").next().unwrap();
        for status in ExitStatus::ALL {
            let item = format!(".TP\n\\fB{}\\fR\n", status.code());
            assert!(section.contains(&item), "{status:?} missing: {section}");
        }
        for health in Health::ALL {
            let item = format!(".TP\n\\fB{} {}\\fR\n", health.code(), health.word());
            assert!(section.contains(&item), "{health:?} missing: {section}");
        }
        assert!(
            section.contains("RestartPreventExitStatus=, so"),
            "{section}"
        );
        assert!(section.contains("2 77 78"), "{section}");
        // Before VERSION, as man-pages(7) orders them.
        assert!(
            page.find("EXIT STATUS") < page.find(".SH VERSION"),
            "{page}"
        );
        // And in the page --out writes.
        let dir = tempfile::tempdir().unwrap();
        write_man_pages(dir.path()).unwrap();
        let written = std::fs::read_to_string(dir.path().join("s3credsfs.1")).unwrap();
        assert_eq!(written, page);
    }

    #[test]
    fn man_out_writes_one_page_per_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        write_man_pages(dir.path()).unwrap();
        // One page per subcommand at every level: `config check` is s3credsfs-config-check.1.
        fn pages(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                let name = format!("{prefix}-{}", sub.get_name());
                out.push(format!("{name}.1"));
                pages(sub, &name, out);
            }
        }
        let mut expected = vec!["s3credsfs.1".to_string(), "s3credsfs.toml.5".to_string()];
        pages(&Cli::command(), "s3credsfs", &mut expected);
        assert!(expected.contains(&"s3credsfs-config-check.1".to_string()));
        expected.sort();
        let mut written: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        written.sort();
        assert_eq!(written, expected);
        let mount = std::fs::read_to_string(dir.path().join("s3credsfs-mount.1")).unwrap();
        assert!(mount.contains("\n.TH s3credsfs-mount 1 "), "{mount}");
        assert!(mount.contains("foreground"), "{mount}");
        let top = std::fs::read_to_string(dir.path().join("s3credsfs.1")).unwrap();
        assert!(top.contains("\n.SH FILES\n"), "{top}");
        let config = std::fs::read_to_string(dir.path().join("s3credsfs.toml.5")).unwrap();
        assert_eq!(config, super::super::manual::config_page());
    }

    #[test]
    fn man_out_into_a_missing_directory_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir");
        let err = write_man_pages(&missing).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "cannot write the manual pages into {} (",
                missing.display()
            )),
            "{err}"
        );
        assert!(
            err.ends_with("; give --out an existing directory you can write to"),
            "{err}"
        );
    }
}
