//! `scripts/untracked`, which CI runs after the tests so that none can leave a file in
//! the tree: it fails on a file git neither tracks nor ignores, naming it, and passes on
//! tracked and ignored ones. Run here in a scratch repository with a copy of the script.

use crate::common::clean_env;
use std::path::Path;
use std::process::{Command, Output};

fn git(repo: &Path, args: &[&str]) {
    let out = Command::new("git")
        .env_clear()
        .envs(clean_env())
        .args(["-c", "user.name=t", "-c", "user.email=t@localhost"])
        .args(args)
        .current_dir(repo)
        .output()
        .expect("git (the tests need it to check the tree)");
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

fn untracked(repo: &Path) -> Output {
    Command::new(repo.join("scripts/untracked"))
        .env_clear()
        .envs(clean_env())
        .output()
        .unwrap()
}

#[test]
fn untracked_fails_on_a_left_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    std::fs::create_dir(repo.join("scripts")).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/untracked"),
        repo.join("scripts/untracked"),
    )
    .unwrap();
    std::fs::write(repo.join(".gitignore"), "/target\n*.time\n").unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "start"]);

    // Ignored files and a changed tracked file are no leftovers.
    std::fs::create_dir(repo.join("target")).unwrap();
    std::fs::write(repo.join("target/out"), "").unwrap();
    std::fs::write(repo.join("cat.time"), "").unwrap();
    std::fs::write(repo.join(".gitignore"), "/target\n*.time\n# more\n").unwrap();
    let out = untracked(repo);
    assert!(out.status.success(), "{out:?}");

    // A file a test left, in a new directory too, is named.
    std::fs::create_dir_all(repo.join("tests/left")).unwrap();
    std::fs::write(repo.join("fake.log"), "").unwrap();
    std::fs::write(repo.join("tests/left/behind.txt"), "").unwrap();
    let out = untracked(repo);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("neither tracks nor ignores"), "{stderr}");
    assert!(stderr.contains("  fake.log\n"), "{stderr}");
    assert!(stderr.contains("  tests/left/behind.txt\n"), "{stderr}");
}
