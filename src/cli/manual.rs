//! The parts of the manual clap cannot generate: the FILES, ENVIRONMENT and SEE ALSO
//! sections of s3credsfs(1), and all of s3credsfs.toml(5). Both are built from the same
//! constants the code uses (the settings in `config::keys`, the mount's file names, the
//! config and CA paths), so the pages cannot drift from the program.

use crate::config::{top_level_only, Fallback, Kind, Scope, Setting, PLATFORM_CA, SITE_CONFIG};
use crate::exit_status::{ExitStatus, Health};
use std::fmt::Write as _;

/// Text made safe for roff: backslashes and hyphens escaped, and a line that would start
/// with a control character (`.` or `'`) protected.
pub fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    escaped
        .lines()
        .map(|line| match line.starts_with(['.', '\'']) {
            true => format!("\\&{line}"),
            false => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn bold(text: &str) -> String {
    format!("\\fB{}\\fR", roff(text))
}

fn italic(text: &str) -> String {
    format!("\\fI{}\\fR", roff(text))
}

/// One `.TP` item: a tag line and its text.
fn item(out: &mut String, tag: &str, text: &str) {
    let _ = writeln!(out, ".TP\n{tag}\n{text}");
}

/// The sections s3credsfs(1) adds after the subcommands, in man-pages(7) order.
pub fn top_page_sections() -> String {
    let mut out = String::new();
    // man-pages(7) order: EXIT STATUS, ENVIRONMENT, FILES, SEE ALSO.
    exit_status_section(&mut out);
    environment_section(&mut out);
    files_section(&mut out);
    out.push_str(".SH \"SEE ALSO\"\n");
    out.push_str(
        "\\fBs3credsfs.toml\\fR(5), \\fBs3credsfs\\-mount\\fR(1), \\fBs3credsfs\\-fetch\\fR(1), \
         \\fBs3credsfs\\-status\\fR(1), \\fBs3credsfs\\-config\\-check\\fR(1), \\fBfusermount3\\fR(1), \
         \\fBsystemd.exec\\fR(5)\n",
    );
    out
}

/// The EXIT STATUS section, written from the code's own lists ([`ExitStatus::ALL`] and
/// [`Health::ALL`]) so the page cannot drift from what the binary does.
fn exit_status_section(out: &mut String) {
    out.push_str(".SH \"EXIT STATUS\"\n");
    let _ = writeln!(
        out,
        "{}",
        roff("Every command but status exits 0 on success, and otherwise with one of these (the numbers of sysexits.h):")
    );
    for status in ExitStatus::ALL {
        item(
            out,
            &bold(&status.code().to_string()),
            &roff(status.meaning()),
        );
    }
    let _ = writeln!(
        out,
        ".PP\n{}",
        roff(&format!(
            "A restart cannot fix {}: the systemd unit lists them in RestartPreventExitStatus=, so a refused password is not retried until Keycloak locks the account.",
            ExitStatus::restart_prevent_list()
        ))
    );
    let _ = writeln!(
        out,
        ".PP\n{}",
        roff("status (with or without --check or --json) exits with the monitoring plugin convention:")
    );
    for health in Health::ALL {
        let tag = bold(&format!("{} {}", health.code(), health.word()));
        item(out, &tag, &roff(health.meaning()));
    }
}

fn environment_section(out: &mut String) {
    out.push_str(".SH ENVIRONMENT\n");
    out.push_str(&roff(
        "Every setting is also a variable: it beats the config files and loses to the flag.",
    ));
    out.push('\n');
    for &key in Setting::ALL {
        item(
            out,
            &bold(&key.env_var()),
            &format!(
                "As {} (config key {}).",
                bold(&key.flag()),
                bold(key.name())
            ),
        );
    }
    let others = [
        ("S3CREDSFS_CONFIG", "As --config: the user's config file (/dev/null for none)."),
        ("S3CREDSFS_LOG", "The log level (error, warn, info, debug, trace) or tracing directives; info by default."),
        ("HOME", "Finds the default mountpoint (~/.s3creds), config file, log directory and the cray CLI's saved logins."),
        ("XDG_CONFIG_HOME", "Where the user's config file is looked for first ($XDG_CONFIG_HOME/s3credsfs/config.toml)."),
        ("XDG_STATE_HOME", "Where a background mount logs by default ($XDG_STATE_HOME/s3credsfs/)."),
        ("CRAY_CREDENTIALS", "The cray CLI's token file to log in with when no login is configured."),
        ("https_proxy, http_proxy, all_proxy, no_proxy", "Proxies for the gateway, as curl reads them; loopback addresses never go through a proxy."),
        ("NOTIFY_SOCKET", "Set by systemd: a foreground mount reports READY=1 once it serves credentials."),
    ];
    for (name, text) in others {
        item(out, &bold(name), &roff(text));
    }
}

fn files_section(out: &mut String) {
    out.push_str(".SH FILES\n");
    let names: Vec<&str> = crate::fs::FILES.iter().map(|(name, _)| *name).collect();
    let mount = format!(
        "The default mountpoint (mode 0700). It holds {}, and {} with --container-endpoint; \
         {}/NAME/ holds the same for each profile.",
        names.join(", "),
        crate::fs::CONTAINER_ENV,
        crate::fs::PROFILES_DIR
    );
    let entries = [
        ("~/.s3creds/".to_string(), mount),
        (
            "$XDG_CONFIG_HOME/s3credsfs/config.toml, ~/.config/s3credsfs/config.toml".into(),
            "The user's config file (see s3credsfs.toml(5)); --config names another.".into(),
        ),
        (
            SITE_CONFIG.into(),
            "The site-wide config file, read under the user's; it and every directory above it must be owned by root and not writable by group or others.".into(),
        ),
        (
            "$XDG_STATE_HOME/s3credsfs/NAME.log, ~/.local/state/s3credsfs/NAME.log".into(),
            "The log of a background mount, one per mountpoint, unless --log-file names another; s3credsfs status names it.".into(),
        ),
        (
            "the --metrics-file FILE".into(),
            "Prometheus metrics for node_exporter's textfile collector, replaced whole on every change and every 15 seconds.".into(),
        ),
        (
            PLATFORM_CA.into(),
            "The CSM platform CA bundle, trusted by default when present.".into(),
        ),
        (
            "~/.config/cray/tokens/".into(),
            "The cray CLI's saved logins (HOST.TOKEN-ID, with . and - in the host written as _), used when no login is configured.".into(),
        ),
        (
            "/usr/lib/systemd/user/s3credsfs.service".into(),
            "The systemd user unit: systemctl --user enable --now s3credsfs.".into(),
        ),
    ];
    for (path, text) in entries {
        item(out, &italic(&path), &roff(&text));
    }
}

/// Examples for s3credsfs.toml(5): a title and a whole config file. Tests parse and
/// resolve each one.
pub const EXAMPLES: [(&str, &str); 3] = [
    (
        "One system, with a password file (mode 0600):",
        "api-gateway = \"https://api-gw-service-nmn.local\"\n\
         username = \"vers\"\n\
         password-file = \"/home/vers/.config/s3credsfs/password\"\n",
    ),
    (
        "Two systems; the mount serves both, prod at its root:",
        "username = \"vers\"\n\
         password-command = \"pass show csm/vers\"\n\
         default-profile = \"prod\"\n\
         log-file = \"/home/vers/s3credsfs.log\"\n\
         \n\
         [profiles.prod]\n\
         api-gateway = \"https://api-gw-service-nmn.local\"\n\
         \n\
         [profiles.tds]\n\
         api-gateway = \"https://api.tds.example.com\"\n\
         ca-file = \"/etc/pki/trust/anchors/tds-ca.crt\"\n\
         min-validity = \"30m\"\n",
    ),
    (
        "A site file (/etc/s3credsfs/config.toml) that sets the gateway for every user of the node; each user adds only a login:",
        "api-gateway = \"https://api-gw-service-nmn.local\"\n\
         ca-file = \"/etc/pki/trust/anchors/platform-ca-certs.crt\"\n\
         timeout = \"20s\"\n",
    ),
];

/// The `= VALUE` part of a key's heading.
fn value_of(key: Setting) -> String {
    match key.spec().kind {
        Kind::Value(name) => format!("= \"{}\"", italic(name)),
        Kind::Switch => "= true | false".into(),
    }
}

/// The whole s3credsfs.toml(5) page.
pub fn config_page() -> String {
    let version = env!("CARGO_PKG_VERSION");
    let mut out = String::new();
    let _ = writeln!(
        out,
        ".TH s3credsfs.toml 5 \"\" \"s3credsfs {version}\" \"s3credsfs\""
    );
    out.push_str(".SH NAME\ns3credsfs.toml \\- the s3credsfs configuration files\n");
    out.push_str(".SH SYNOPSIS\n");
    let _ = writeln!(
        out,
        "{}\n.br\n{}\n.br\n{}",
        italic("$XDG_CONFIG_HOME/s3credsfs/config.toml"),
        italic("~/.config/s3credsfs/config.toml"),
        italic(SITE_CONFIG)
    );
    out.push_str(".SH DESCRIPTION\n");
    out.push_str(&roff(
        "s3credsfs reads its settings from flags, S3CREDSFS_* environment variables and TOML \
         config files. Every key is the long flag's name without the dashes; a value is a \
         quoted string (durations too: \"30s\", \"15m\"), and a switch is true or false. An \
         unknown key, a wrong type or invalid TOML is an error naming the file. The user's file is the one --config names, else the first of \
         $XDG_CONFIG_HOME/s3credsfs/config.toml and ~/.config/s3credsfs/config.toml; it must \
         not be writable by group or others. `s3credsfs config check` validates the \
         configuration and shows where each value comes from.",
    ));
    out.push_str("\n.SH PRECEDENCE\n");
    out.push_str(&roff(
        "Highest first: command-line flags; S3CREDSFS_* variables; the user's file (a \
         profile's [profiles.NAME] table, then the file's top level); the site-wide file \
         (its table, then its top level); the defaults. Everything the user's file says \
         beats everything the site file says.",
    ));
    out.push('\n');
    keys_section(&mut out);
    out.push_str(".SH PROFILES\n");
    out.push_str(&roff(
        "A file may define several systems as [profiles.NAME] tables (a name of letters, \
         digits, _, . and -; quote one with a dot: [profiles.\"a.b\"]). Each profile \
         inherits the top level of the files and overrides it in its table. One mount \
         serves every profile of both files: the default one at its root and each in \
         profiles/NAME/; fetch and exec use the default one, or the one --profile names. \
         The default is the one --profile names, else default-profile, else a profile named \
         default, else the only one.",
    ));
    out.push_str("\n.TP\n");
    let _ = writeln!(
        out,
        "{} = \"{}\"\n{}",
        bold("default-profile"),
        italic("NAME"),
        roff("Top level only: the profile the mount's root, fetch and exec use.")
    );
    out.push_str(".SH \"SITE-WIDE FILE\"\n");
    let _ = writeln!(
        out,
        "{}",
        roff(&format!(
            "{SITE_CONFIG} is read on every run, under the user's file: an administrator \
             sets the gateway, CA bundle and profiles once per node. It, and every \
             directory above it, must be owned by root and not writable by group or others, \
             or every command refuses to run and says why. It is read with --config too: --config /dev/null skips only \
             the user's file. The RPM installs it with every line commented out."
        ))
    );
    out.push_str(".SH EXAMPLES\n");
    for (title, text) in EXAMPLES {
        let _ = writeln!(
            out,
            ".PP\n{}\n.PP\n.nf\n.RS 4\n{}\n.RE\n.fi",
            roff(title),
            roff(text.trim_end())
        );
    }
    out.push_str(".SH \"SEE ALSO\"\n\\fBs3credsfs\\fR(1), \\fBs3credsfs\\-mount\\fR(1), \\fBs3credsfs\\-config\\-check\\fR(1)\n");
    out
}

/// KEYS: every setting, grouped as `--help` groups them.
fn keys_section(out: &mut String) {
    out.push_str(".SH KEYS\n");
    let mut headings: Vec<&str> = Vec::new();
    for key in Setting::ALL {
        if !headings.contains(&key.heading()) {
            headings.push(key.heading());
        }
    }
    for heading in headings {
        let _ = writeln!(out, ".SS \"{}\"", roff(heading));
        for &key in Setting::ALL.iter().filter(|k| k.heading() == heading) {
            key_item(out, key);
        }
    }
}

/// One key: its text, default, flag and variable, and where it may stand.
fn key_item(out: &mut String, key: Setting) {
    {
        let spec = key.spec();
        let mut text = roff(&format!("{}.", spec.about));
        let default = match spec.fallback {
            Fallback::Unset => None,
            Fallback::Nothing => Some("none".to_string()),
            Fallback::Value(v) => Some(format!("\"{v}\"")),
            Fallback::Derived(v) => Some(format!("\"{v}\"")),
            Fallback::IfPresent(path) => Some(format!("{path} if it exists")),
        };
        if let Some(default) = default {
            let _ = write!(text, "\n.br\nDefault: {}.", roff(&default));
        }
        let _ = write!(
            text,
            "\n.br\nFlag: {}; variable: {}.",
            bold(&key.flag()),
            bold(&key.env_var())
        );
        if spec.scope == Scope::Mount {
            text.push_str("\n.br\nUsed by mount only.");
        }
        if top_level_only(key).is_some() {
            text.push_str("\n.br\nTop level only (not in a [profiles.NAME] table).");
        }
        item(
            out,
            &format!("{} {}", bold(key.name()), value_of(key)),
            &text,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_config_file, Context, Profiles};
    use std::path::Path;

    #[test]
    fn roff_escapes_what_would_be_read_as_commands() {
        assert_eq!(roff("a-b \\x"), "a\\-b \\ex");
        assert_eq!(roff("x\n.SH EVIL\n'br"), "x\n\\&.SH EVIL\n\\&'br");
    }

    /// Every key, variable and flag appears in the page, with its own text.
    #[test]
    fn the_config_page_lists_every_key() {
        let page = config_page();
        assert!(page.starts_with(".TH s3credsfs.toml 5 "), "{page}");
        for &key in Setting::ALL {
            let name = roff(key.name());
            assert!(
                page.contains(&format!(".TP\n\\fB{name}\\fR = ")),
                "{key} in {page}"
            );
            assert!(page.contains(&roff(&key.env_var())), "{key}");
            assert!(page.contains(&roff(key.spec().about)), "{key}");
        }
        for section in [
            "PRECEDENCE",
            "KEYS",
            "PROFILES",
            "\"SITE-WIDE FILE\"",
            "EXAMPLES",
            "\"SEE ALSO\"",
        ] {
            assert!(page.contains(&format!("\n.SH {section}\n")), "{section}");
        }
        assert!(page.contains("Top level only"));
    }

    /// KEYS groups the keys as `--help` does, and marks the ones only `mount` reads.
    #[test]
    fn each_key_stands_under_its_heading_and_says_whether_only_mount_uses_it() {
        let page = config_page();
        for &key in Setting::ALL {
            let start = page
                .find(&format!(".TP\n\\fB{}\\fR = ", roff(key.name())))
                .unwrap_or_else(|| panic!("{key} in {page}"));
            let heading = page[..start]
                .rfind("\n.SS \"")
                .map(|at| &page[at + 6..])
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_else(|| panic!("no heading before {key}"));
            assert_eq!(heading, roff(key.heading()), "{key}");
            let item = &page[start + 4..];
            let end = ["\n.TP\n", "\n.SS ", "\n.SH "]
                .iter()
                .filter_map(|next| item.find(next))
                .min()
                .unwrap_or(item.len());
            let mount_only = item[..end].contains("Used by mount only.");
            assert_eq!(mount_only, key.spec().scope == Scope::Mount, "{key}");
        }
    }

    /// The examples are valid configurations, as shipped in the page.
    #[test]
    fn every_example_resolves() {
        for (title, text) in EXAMPLES {
            let file = parse_config_file(text, Path::new("/example.toml"))
                .unwrap_or_else(|e| panic!("{title}: {e}"));
            let profiles = Profiles::from_parts(Default::default(), file).unwrap();
            let ctx = Context::default();
            match text.contains("username") {
                true => {
                    profiles
                        .resolve_all(&ctx)
                        .unwrap_or_else(|e| panic!("{title}: {e}"));
                }
                // A site file holds no login: a user's file adds it.
                false => assert!(profiles.resolve_all(&ctx).is_err()),
            }
        }
    }

    #[test]
    fn the_top_page_adds_environment_files_and_see_also() {
        let sections = top_page_sections();
        for &key in Setting::ALL {
            assert!(sections.contains(&roff(&key.env_var())), "{key}");
        }
        for name in ["credentials", "rclone.conf", "status"] {
            assert!(sections.contains(&roff(name)), "{name}");
        }
        for path in [
            SITE_CONFIG,
            PLATFORM_CA,
            "~/.local/state/s3credsfs/NAME.log",
        ] {
            assert!(sections.contains(&roff(path)), "{path}");
        }
        assert!(sections.contains("metrics"));
        let order: Vec<usize> = [".SH ENVIRONMENT", ".SH FILES", ".SH \"SEE ALSO\""]
            .iter()
            .map(|s| sections.find(s).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    }
}
