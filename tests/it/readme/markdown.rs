//! Reading the docs as Markdown: the files, their fenced blocks, sections, headings'
//! anchors and links.

use std::path::{Component, Path, PathBuf};

/// The pages the README sends each reader to: a missing one fails the tests.
pub const PAGES: [&str; 9] = [
    "docs/install.md",
    "docs/configuration.md",
    "docs/usage.md",
    "docs/clients.md",
    "docs/troubleshooting.md",
    "docs/security.md",
    "docs/contributing.md",
    "docs/mutants.md",
    "docs/soak.md",
];

/// One Markdown file: its path from the repository root, and its text.
pub struct Doc {
    pub path: String,
    pub text: String,
}

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The README, then every `docs/*.md` by name, read when the test runs (so a doc that is
/// added is read without a change here).
pub fn docs() -> Vec<Doc> {
    let read = |path: String| {
        let text = std::fs::read_to_string(root().join(&path))
            .unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        Doc { path, text }
    };
    let mut names: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("a docs/ directory")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .collect();
    names.sort();
    std::iter::once("README.md".to_string())
        .chain(names.into_iter().map(|name| format!("docs/{name}")))
        .map(read)
        .collect()
}

/// A fenced block: the doc it is in, its info string, the `<!-- readme-test: NAME -->`
/// marker before it, and its text.
pub struct Block {
    pub doc: String,
    pub info: String,
    pub marker: Option<String>,
    pub text: String,
}

pub fn blocks() -> Vec<Block> {
    docs().iter().flat_map(blocks_of).collect()
}

fn blocks_of(doc: &Doc) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = doc.text.lines().peekable();
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
            doc: doc.path.clone(),
            info: info.trim().to_string(),
            marker: marker.take(),
            text: super::aliases::expand_aliases(&text),
        });
    }
    out
}

/// The lines of a doc outside its fenced blocks, where headings and links are.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|line| {
            if line.starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// A heading's title, if `line` is one.
fn heading(line: &str) -> Option<&str> {
    let title = line.trim_start_matches('#');
    (title.len() < line.len() && title.starts_with(' ')).then(|| title.trim())
}

/// The text under the heading `title` up to the next heading, and the doc it is in;
/// exactly one doc may hold it.
pub fn section(title: &str) -> (String, String) {
    let mut found = Vec::new();
    for doc in docs() {
        let lines = prose(&doc.text);
        if let Some(start) = lines.iter().position(|l| heading(l) == Some(title)) {
            let body: Vec<&str> = lines[start + 1..]
                .iter()
                .take_while(|l| heading(l).is_none())
                .copied()
                .collect();
            found.push((doc.path.clone(), body.join("\n")));
        }
    }
    let docs: Vec<&String> = found.iter().map(|(path, _)| path).collect();
    assert_eq!(found.len(), 1, "one doc with a section `{title}`: {docs:?}");
    found.remove(0)
}

/// GitHub's anchor for a heading: lower case, spaces as `-`, other punctuation dropped.
pub fn anchor(title: &str) -> String {
    title
        .chars()
        .filter(|c| c.is_alphanumeric() || ['-', '_', ' '].contains(c))
        .map(|c| if c == ' ' { '-' } else { c })
        .flat_map(char::to_lowercase)
        .collect()
}

/// Every anchor of a doc's headings (a repeated one gets `-1`, `-2`, as on GitHub).
pub fn anchors(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for title in prose(text).into_iter().filter_map(heading) {
        let base = anchor(title);
        let mut name = base.clone();
        let mut n = 0;
        while out.contains(&name) {
            n += 1;
            name = format!("{base}-{n}");
        }
        out.push(name);
    }
    out
}

/// The targets of a doc's Markdown links (`[text](target)`), outside fenced blocks.
pub fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(text) {
        for (i, _) in line.match_indices("](") {
            let rest = &line[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].to_string());
            }
        }
    }
    out
}

/// `path` relative to the doc at `from`, as a path from the repository root; `None` if
/// it leaves the repository.
fn resolve(from: &str, path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    let base = Path::new(from).parent().unwrap_or(Path::new(""));
    for part in base.join(path).components() {
        match part {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Each relative link of `docs` that leads nowhere: a file that does not exist, or a
/// `#heading` that its doc does not have; as `doc: target`.
pub fn broken_links(docs: &[Doc]) -> Vec<String> {
    let mut broken = Vec::new();
    for doc in docs {
        for target in links(&doc.text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() {
                Some(PathBuf::from(&doc.path))
            } else {
                resolve(&doc.path, path)
            };
            let Some(file) = file.filter(|f| root().join(f).exists()) else {
                broken.push(format!("{}: {target} (no such file)", doc.path));
                continue;
            };
            if fragment.is_empty() {
                continue;
            }
            let text = docs
                .iter()
                .find(|d| Path::new(&d.path) == file)
                .map(|d| d.text.clone())
                .or_else(|| std::fs::read_to_string(root().join(&file)).ok())
                .unwrap_or_default();
            if !anchors(&text).iter().any(|a| a == fragment) {
                broken.push(format!("{}: {target} (no such heading)", doc.path));
            }
        }
    }
    broken
}

/// The repository's top-level folders whose paths the docs name.
const FOLDERS: [&str; 7] = [
    "tests/",
    "scripts/",
    "src/",
    "contrib/",
    "docs/",
    "examples/",
    ".ci/",
];

/// The paths of the repository a doc names as a whole code span (`` `scripts/venv` ``),
/// outside fenced blocks.
pub fn named_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(text) {
        for (i, span) in line.split('`').enumerate() {
            let is_path = span
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-./*".contains(c));
            if i % 2 == 1 && is_path && FOLDERS.iter().any(|f| span.starts_with(f)) {
                out.push(span.to_string());
            }
        }
    }
    out
}

/// Whether `path` (from the repository root) exists; a `*` in its last part matches any
/// run of characters, and then at least one file must match.
pub fn path_exists(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    if !name.contains('*') {
        return root().join(path).exists();
    }
    let Ok(entries) = std::fs::read_dir(root().join(dir)) else {
        return false;
    };
    entries
        .filter_map(|entry| entry.ok())
        .any(|entry| matches(name, &entry.file_name().to_string_lossy()))
}

/// `name` against a pattern where `*` matches any run of characters.
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            let Some(rest) = name.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|&i| rest.is_char_boundary(i))
                .any(|i| matches(tail, &rest[i..]))
        }
    }
}
