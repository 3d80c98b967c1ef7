//! Random values for the emulator: UUIDs as Keycloak makes them and strings shaped like
//! the keys RGW hands out. A leaf, so every part of the gateway may use it.

use base64::Engine;

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) {
    crate::random::fill(buf).expect("the system random number generator failed");
}

/// A random version-4 UUID string, as Keycloak uses for `jti` and `session_state`.
pub(crate) fn random_uuid() -> String {
    let mut b = [0u8; 16];
    fill_random(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format_uuid(&b)
}

/// A stable UUID-shaped id for an account name (Keycloak's `sub` is a user's UUID).
pub(crate) fn stable_uuid(kind: &str, name: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{kind}:{name}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest.as_ref()[..16]);
    format_uuid(&b)
}

fn format_uuid(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `len` random characters from `alphabet`, without modulo bias.
pub(crate) fn random_string(alphabet: &[u8], len: usize) -> String {
    assert!(!alphabet.is_empty() && alphabet.len() <= 256);
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill_random(&mut buf);
        for &byte in &buf {
            if (byte as usize) < limit && out.len() < len {
                out.push(alphabet[byte as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

/// Standard base64 of `n` random bytes, the shape of an RGW session token.
pub(crate) fn random_base64(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    fill_random(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_look_like_uuids() {
        let u = random_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(u.matches('-').count(), 4);
        assert_eq!(&u[14..15], "4");
        assert_eq!(stable_uuid("user", "dev"), stable_uuid("user", "dev"));
        assert_ne!(stable_uuid("user", "dev"), stable_uuid("client", "dev"));
    }

    #[test]
    fn random_strings_use_the_alphabet() {
        let s = random_string(b"AB", 100);
        assert_eq!(s.len(), 100);
        assert!(s.chars().all(|c| c == 'A' || c == 'B'));
    }
}
