//! The `cargo` aliases of a checkout (`.cargo/config.toml`): the README's `cargo demo`
//! and `cargo dev ...` lines are read as the `s3credsfs` command lines they run.

const CARGO_CONFIG: &str = include_str!("../../../.cargo/config.toml");

/// Each alias with the `s3credsfs` arguments it runs. Every one must run the binary with
/// the emulator, so that the README's `cargo demo` and `cargo dev ...` lines are that one
/// binary's command lines.
pub fn cargo_aliases() -> Vec<(String, String)> {
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
pub fn expand_aliases(script: &str) -> String {
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
