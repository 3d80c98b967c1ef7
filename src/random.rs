//! Randomness from the operating system's CSPRNG: the container endpoint's token, jitter,
//! and the built-in gateway's tokens and keys.

/// Fills `buf`, or says the generator failed: a token must never be made of zeros.
pub(crate) fn fill(buf: &mut [u8]) -> std::io::Result<()> {
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), buf)
        .map_err(|_| std::io::Error::other("the system random number generator failed"))
}

/// A number in [0, 1) for jitter; 0.5 if the generator fails (jitter only spreads load).
pub fn unit() -> f64 {
    let mut bytes = [0u8; 8];
    match fill(&mut bytes) {
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}
