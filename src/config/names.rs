//! The one profile-name rule, a leaf of `config`: the config file's parser (`layers`),
//! the profile set (`profiles`), the `profile` setting and `exec`'s look into a mount
//! all judge names by it.

/// A profile name is a directory name in the mount and a section name in INI files:
/// letters, digits, `_`, `.` and `-`, starting with a letter or digit (so never `.` or
/// `..`, and never a path), at most 64 characters.
pub fn check_name(name: &str) -> std::result::Result<(), &'static str> {
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !first_ok || !rest_ok || name.len() > 64 {
        return Err(
            "use at most 64 letters, digits, `_`, `.` and `-`, starting with a letter or digit",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_are_plain_file_names_of_at_most_64_characters() {
        for good in [
            "prod",
            "9",
            "a.b",
            "tds-2",
            "cmn_nmn",
            "A_.-z",
            &"x".repeat(64),
        ] {
            assert_eq!(check_name(good), Ok(()), "{good:?}");
        }
        let long = "x".repeat(65);
        for bad in [
            "", ".", "..", "-a", "_a", ".a", "a/b", "../x", "x\n", "é", &long,
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
