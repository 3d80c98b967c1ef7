//! A string that must never be printed or logged: passwords, JWTs, secret keys, session tokens.

use std::fmt;
use zeroize::Zeroizing;

/// Holds a secret so it cannot leak through `Debug`/`Display` and is zeroed when dropped.
///
/// The only way to see the value is [`Secret::expose`], which makes every use greppable.
/// Equality is [`Secret::ct_eq`]'s, so that no comparison of two secrets leaks timing.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value; the caller's copy should be dropped right after.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// Gives the value to code that must send or render it (HTTP headers, credential files).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the value is empty, so validators can reject it without exposing it.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares what a client presented (a token, a password) with this secret in time
    /// that does not depend on where they differ, so a caller cannot guess it byte by
    /// byte; only whether the lengths differ shows.
    pub fn ct_eq(&self, presented: &[u8]) -> bool {
        subtle::ConstantTimeEq::ct_eq(self.0.as_bytes(), presented).into()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.ct_eq(other.0.as_bytes())
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

/// The bytes of a rendered credentials file: zeroed when the last reader lets go, and
/// never shown by `Debug`.
pub struct SecretBytes(Box<[u8]>);

impl SecretBytes {
    /// Takes over a rendering; the string's buffer becomes ours, so no copy is left behind.
    pub fn new(text: String) -> Self {
        SecretBytes(text.into_bytes().into_boxed_slice())
    }
}

impl std::ops::Deref for SecretBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut *self.0);
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} redacted bytes>", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(secret.expose(), "hunter2");
        let wrapped = Some(secret);
        assert!(!format!("{wrapped:?}").contains("hunter2"));
    }

    /// `SecretBytes` (a rendered credentials file) shows its length only, and reads back
    /// whole; emptiness is told without exposing the value.
    #[test]
    fn rendered_bytes_never_show_and_emptiness_is_told() {
        let bytes = SecretBytes::new("aws_secret_access_key = SECRET\n".to_string());
        assert_eq!(format!("{bytes:?}"), "<31 redacted bytes>");
        assert_eq!(&*bytes, b"aws_secret_access_key = SECRET\n");
        assert!(Secret::new("").is_empty());
        assert!(!Secret::new("x").is_empty());
    }

    #[test]
    fn comparison_takes_the_whole_value() {
        let secret = Secret::new("dev-password");
        assert!(secret.ct_eq(b"dev-password"));
        assert!(!secret.ct_eq(b"dev-passwore"));
        assert!(!secret.ct_eq(b"Dev-password"));
        assert!(!secret.ct_eq(b""));
        assert!(!secret.ct_eq(b"dev-passwor"));
        assert!(!secret.ct_eq(b"dev-password-longer"));
        assert!(Secret::new("").ct_eq(b""));
        assert_eq!(secret, Secret::new("dev-password"));
        assert_ne!(secret, Secret::new("dev-password "));
    }
}
