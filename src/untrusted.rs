//! Checks for text that comes from outside (gateway replies, JWT claims, headers) before it
//! reaches a credentials file, a terminal, a log line or `status`.
//!
//! Our files are read by SDKs that *execute* what they find (`credential_process`), and
//! our messages are shown on terminals that obey escape sequences, so outside text is
//! either refused (credential fields) or cleaned and shortened (descriptions).

/// Longest piece of outside text quoted in a message; enough for any real Keycloak or
/// STS reason, too short to flood a terminal or a log.
pub const MAX_QUOTED: usize = 200;

/// Outside text made safe to show: control characters (newlines, escapes, bells), Unicode
/// line separators and invisible formatting characters (bidirectional overrides) become
/// spaces, runs of them one space, and the result is cut
/// to `max` characters with an ellipsis.
pub fn clean(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut last_space = false;
    for c in text.trim().chars() {
        let c = if is_line_breaking(c) || is_invisible_format(c) {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        if count == max {
            out.push('…');
            return out;
        }
        out.push(c);
        count += 1;
    }
    out.truncate(out.trim_end().len());
    out
}

/// True for characters that break a line or steer a terminal in some reader: every
/// Unicode control character (C0, DEL, C1 such as NEL) and the line and paragraph
/// separators.
pub fn is_line_breaking(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// True for invisible characters that change how the text around them is shown: the
/// bidirectional overrides and isolates (which can make a line read backwards) and the
/// zero-width characters.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}'
        | '\u{feff}' | '\u{061c}' | '\u{180e}')
}

/// Whether every character is visible ASCII (`!` to `~`): no space, no control, no
/// non-ASCII. What a secret key or session token may hold.
pub fn is_visible_ascii(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_removes_what_steers_a_terminal() {
        assert_eq!(
            clean("bad\r\n[default]\x1b[2J\x07 credential_process = x", 200),
            "bad [default] [2J credential_process = x"
        );
        assert_eq!(clean("a\u{2028}b\u{85}c\u{9b}d", 200), "a b c d");
        assert_eq!(
            clean("u\u{202e}gnp.exe\u{200b}x\u{2066}y\u{feff}", 200),
            "u gnp.exe x y"
        );
        assert_eq!(clean("  plain reason  ", 200), "plain reason");
        assert_eq!(clean("abcdef", 3), "abc…");
        assert_eq!(clean("abc", 3), "abc");
        assert_eq!(clean(&"x".repeat(100_000), MAX_QUOTED).chars().count(), 201);
    }

    #[test]
    fn visible_ascii_is_strict() {
        assert!(is_visible_ascii("AKIA/x+y=="));
        for bad in ["a b", "a\nb", "a\tb", "é", "a\u{7f}"] {
            assert!(!is_visible_ascii(bad), "{bad:?}");
        }
    }
}
