//! Reading a JWT without verifying it: the one decoder that the client (`auth`, which only
//! reads times and names; the gateway verifies) and the built-in gateway emulator (`dev`,
//! which checks its own signatures on top) share, so neither imports the other.

use base64::Engine;
use serde_json::{Map, Value};

/// The claims of a JWT, unverified.
pub fn claims(token: &str) -> Option<Map<String, Value>> {
    part(token.split('.').nth(1)?)
}

/// One dot-separated part of a JWT (the header or the claims) as the JSON object it
/// must be, unverified. Padding is tolerated, since some tools write it into token files.
pub fn part(part: &str) -> Option<Map<String, Value>> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(object) => Some(object),
        _ => None,
    }
}
