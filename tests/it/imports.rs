//! `scripts/imports`, the import map CI runs: on small trees with a known shape it finds
//! the cycle, the upward import and nothing in a clean tree, resolves paths the way its
//! header says, and on the real tree reads every file of src/.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The script's exit status and standard output.
struct Run {
    code: i32,
    stdout: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/imports")
}

fn run(root: &Path, args: &[&str]) -> Run {
    let output = Command::new("python3")
        .arg(script())
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("python3 is not on PATH, and scripts/imports needs it: install python3");
    let code = output.status.code();
    Run {
        code: code.expect("scripts/imports was killed by a signal"),
        stdout: String::from_utf8(output.stdout).unwrap(),
    }
}

/// A crate named `demo` holding the given files (paths relative to the crate's root).
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"demo\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// Layers as today's table has them: auth over config over logging over the leaves. Test
/// code imports upward (allowed), and comments, strings and raw strings name modules
/// (not imports).
const CLEAN: &[(&str, &str)] = &[
    (
        "src/lib.rs",
        r#"pub mod auth;
pub mod config;
pub mod logging;
#[path = "sec/impl.rs"]
pub mod secret;
"#,
    ),
    ("src/main.rs", "fn main() {\n    demo::auth::login();\n}\n"),
    (
        "src/auth.rs",
        r#"use crate::config::{self, Settings};
pub fn login() {
    let _ = config::check_name("a");
}
#[cfg(test)]
mod tests {
    use super::*;
}
"#,
    ),
    (
        "src/config/mod.rs",
        r#"mod keys;
mod layers;
pub use keys::Setting;
pub use layers::check_name;
pub struct Settings;
// crate::auth::login() in a comment is not an import
const NOTE: &str = "crate::auth::login()";
#[cfg(test)]
mod tests;
"#,
    ),
    (
        "src/config/tests.rs",
        "// Test code may import anything, upward too.\nuse crate::auth::login;\n",
    ),
    (
        "src/config/keys.rs",
        "use crate::logging::LOG_ENV;\npub enum Setting { Profile }\n",
    ),
    (
        "src/config/layers.rs",
        r#"use super::keys::Setting;
#[cfg(test)]
use crate::auth::login;
#[cfg(test)]
pub(crate) fn helper() {
    crate::auth::login();
}
pub fn check_name(_: &str) -> bool {
    matches!(crate::secret::Secret::EMPTY, _)
}
"#,
    ),
    ("src/logging.rs", "pub const LOG_ENV: &str = \"LOG\";\n"),
    (
        "src/sec/impl.rs",
        r##"pub struct Secret;
impl Secret {
    pub const EMPTY: Secret = Secret;
}
const RAW: &str = r#"crate::auth::login() "quoted""#;
const QUOTE: char = '"';
/* outer /* crate::auth::login() */ crate::auth::login() */
fn same<'a>(text: &'a str) -> &'a str {
    text
}
"##,
    ),
];

/// The clean tree with one file replaced (or added).
fn clean_with(path: &str, text: &str) -> tempfile::TempDir {
    let mut files: Vec<(&str, &str)> = CLEAN.iter().filter(|(p, _)| *p != path).copied().collect();
    files.push((path, text));
    tree(&files)
}

#[test]
fn a_clean_tree_passes_and_its_map_points_at_the_defining_files() {
    let dir = tree(CLEAN);
    let check = run(dir.path(), &[]);
    assert_eq!((check.code, check.stdout.as_str()), (0, ""));

    let map = run(dir.path(), &["--map"]).stdout;
    for edge in [
        // From outside a module, a re-exported item is its front door's (config/mod.rs);
        // from inside, the file that defines it.
        concat!(
            "src/auth.rs [auth]\n",
            "  -> src/config/mod.rs  :1,3  config::check_name, crate::config::Settings\n",
        ),
        concat!(
            "src/config/layers.rs [config]\n",
            "  -> src/config/keys.rs  :1  super::keys::Setting\n",
            "  -> src/sec/impl.rs  :9  crate::secret::Secret::EMPTY\n",
            "  [test] -> src/auth.rs  :3,6  crate::auth::login\n",
        ),
        // The binary names the library by its crate name.
        "src/main.rs [main]\n  -> src/auth.rs  :2  demo::auth::login\n",
        concat!(
            "src/config/mod.rs [config]\n",
            "  -> src/config/keys.rs  :3  keys::Setting\n",
            "  -> src/config/layers.rs  :4  layers::check_name\n",
            "src/config/tests.rs [test]\n",
            "  [test] -> src/auth.rs  :2  crate::auth::login\n",
        ),
    ] {
        assert!(map.contains(edge), "no {edge:?} in the map:\n{map}");
    }
}

#[test]
fn a_cycle_between_two_files_of_one_module_fails_with_its_edges() {
    let dir = clean_with(
        "src/config/keys.rs",
        "use crate::logging::LOG_ENV;\npub enum Setting { Profile }\n\
         fn named() -> bool {\n    super::layers::check_name(\"x\")\n}\n",
    );
    let check = run(dir.path(), &[]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert_eq!(
        check.stdout,
        concat!(
            "cycle: 2 files src/config/keys.rs src/config/layers.rs: ",
            "src/config/keys.rs:4 -> src/config/layers.rs; ",
            "src/config/layers.rs:1 -> src/config/keys.rs\n",
        )
    );

    let map = run(dir.path(), &["--map"]).stdout;
    assert!(
        map.contains("  src/config/keys.rs -> src/config/layers.rs -> src/config/keys.rs\n"),
        "{map}"
    );
}

#[test]
fn an_import_from_a_lower_layer_fails_with_both_layers_named() {
    // secret is a leaf, below logging: it may not name the log's variable.
    let dir = clean_with(
        "src/sec/impl.rs",
        "pub struct Secret;\nimpl Secret {\n    pub const EMPTY: Secret = Secret;\n}\n\
         fn quiet() -> &'static str {\n    crate::logging::LOG_ENV\n}\n",
    );
    let check = run(dir.path(), &[]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert_eq!(
        check.stdout,
        "upward: src/sec/impl.rs:6 -> src/logging.rs (crate::logging::LOG_ENV): \
         leaves is below logging\n"
    );
}

#[test]
fn an_upward_import_that_closes_a_loop_is_both_problems() {
    // logging sits below config, and config/keys.rs imports logging.
    let dir = clean_with(
        "src/logging.rs",
        "pub const LOG_ENV: &str = \"LOG\";\n\
         pub fn level() {\n    let _ = crate::config::Setting::Profile;\n}\n",
    );
    let check = run(dir.path(), &[]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    assert_eq!(
        check.stdout,
        "upward: src/logging.rs:3 -> src/config/mod.rs (crate::config::Setting::Profile): \
         logging is below config\n\
         cycle: 4 files src/config/keys.rs src/config/layers.rs src/config/mod.rs src/logging.rs: \
         src/config/keys.rs:1 -> src/logging.rs; src/config/layers.rs:1 -> src/config/keys.rs; \
         src/config/mod.rs:3 -> src/config/keys.rs; src/config/mod.rs:4 -> src/config/layers.rs; \
         src/logging.rs:3 -> src/config/mod.rs\n"
    );
}

#[test]
fn nested_groups_aliases_and_globs_resolve_to_their_files() {
    let dir = clean_with(
        "src/auth.rs",
        "use crate::{config::{self as conf, Settings as S}, secret::*};\n\
         pub fn login() {\n    let _ = conf::Setting::Profile;\n    let _ = Secret::EMPTY;\n}\n",
    );
    let map = run(dir.path(), &["--map"]).stdout;
    assert!(
        map.contains(concat!(
            "src/auth.rs [auth]\n",
            "  -> src/config/mod.rs  :1,3  conf::Setting::Profile, crate::config::Settings\n",
            "  -> src/sec/impl.rs  :1,4  Secret::EMPTY, crate::secret::*\n",
        )),
        "{map}"
    );
}

#[test]
fn a_module_without_a_layer_or_a_file_is_named() {
    let dir = clean_with(
        "src/lib.rs",
        "pub mod auth;\npub mod config;\npub mod logging;\n#[path = \"sec/impl.rs\"]\n\
         pub mod secret;\npub mod shiny;\npub mod missing;\n",
    );
    std::fs::write(dir.path().join("src/shiny.rs"), "").unwrap();
    std::fs::write(dir.path().join("src/stray.rs"), "").unwrap();
    let check = run(dir.path(), &[]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    for line in [
        concat!(
            "module: src/lib.rs:7: `mod missing;` has no file ",
            "(src/missing.rs or src/missing/mod.rs); keep exactly one\n",
        ),
        "module: src/stray.rs is in no crate (no `mod` declares it); declare it or remove it\n",
        "layer: src/shiny.rs (module shiny) has no layer; add it to LAYERS in scripts/imports\n",
    ] {
        assert!(
            check.stdout.contains(line),
            "no {line:?} in:\n{}",
            check.stdout
        );
    }
}

#[test]
fn a_tree_without_a_crate_root_is_an_error_not_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run(dir.path(), &[]).code, 2);
}

/// The real tree: every file of src/ is read and placed (its exit status is CI's business).
#[test]
fn every_file_of_src_is_in_the_map() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let map = run(root, &["--map"]);
    assert!(matches!(map.code, 0 | 1), "{}", map.stdout);
    let mut missing = Vec::new();
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                let heading = format!("{name} [");
                if !map.stdout.lines().any(|l| l.starts_with(&heading)) {
                    missing.push(name);
                }
            }
        }
    }
    assert!(missing.is_empty(), "not in the map: {missing:?}");
    assert!(!map.stdout.contains("no layer"), "{}", map.stdout);
}

/// The picture of the layers in docs/contributing.md is the script's table: each layer's
/// modules appear in the picture in the table's order, and every leaf is named.
#[test]
fn the_contributing_doc_draws_the_layers_the_script_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let layers = run(root, &["--layers"]);
    assert_eq!(layers.code, 0, "{}", layers.stdout);
    let doc = std::fs::read_to_string(root.join("docs/contributing.md")).unwrap();
    let start = doc
        .find("## The layers")
        .expect("docs/contributing.md: ## The layers");
    let picture = &doc[start..];
    let picture = &picture[..picture.find("\n```\n").expect("the picture's block ends")];
    let table: Vec<(String, Vec<String>)> = layers
        .stdout
        .lines()
        .map(|line| {
            let (name, modules) = line.split_once(": ").expect("NAME: MODULES");
            let modules = modules.split(", ").map(str::to_string).collect();
            (name.to_string(), modules)
        })
        .collect();
    let drawn = |module: &str| {
        [format!(" {module}/"), format!(" {module}.rs")]
            .iter()
            .filter_map(|form| picture.find(form.as_str()))
            .min()
    };
    let mut last = 0;
    for (layer, modules) in &table {
        if layer == "main" || layer == "leaves" {
            continue;
        }
        let at = modules
            .iter()
            .filter_map(|m| drawn(m))
            .min()
            .unwrap_or_else(|| panic!("layer {layer} ({modules:?}) is not in the picture"));
        assert!(
            at >= last,
            "layer {layer} is drawn above the layer before it"
        );
        last = at;
    }
    let leaves = &table.last().expect("a leaves layer").1;
    let drawn_leaves = &picture[picture.find(" leaves ").expect("the leaves line")..];
    for leaf in leaves.iter().filter(|l| !l.starts_with("test_")) {
        assert!(
            drawn_leaves.contains(&format!(" {leaf},"))
                || drawn_leaves.contains(&format!(" {leaf} ")),
            "leaf {leaf} is not named in the picture"
        );
    }
}

/// The real tree keeps the layering: no cycle between files, no import upwards. This is
/// the check CI runs (`scripts/imports` in `.ci/run`), here too so that plain `cargo test`
/// fails the moment a cycle comes back.
#[test]
fn the_real_tree_has_no_cycle_and_no_upward_import() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let check = run(root, &[]);
    assert_eq!(check.code, 0, "scripts/imports:\n{}", check.stdout);
}
