//! The token cache's times and the token file's forms, pure; `login` drives an
//! `Authenticator` against the built-in gateway.

mod login;
mod password;

use super::*;
use base64::Engine;
use proptest::prelude::*;

fn issued(jwt_exp: i64, expires_at: DateTime<Utc>) -> Issued {
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::json!({"exp": jwt_exp}).to_string());
    Issued {
        access_token: Secret::new(format!("h.{payload}.s")),
        expires_at,
        refresh_token: None,
        refresh_expires_at: None,
    }
}

#[test]
fn a_token_is_stale_before_the_earlier_of_exp_and_expires_in() {
    let now =
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + chrono::Duration::milliseconds(900);
    // Issued at .9 s for 2 s: `expires_in` says 2.9 s from the second, `exp` 2.0.
    let token = CachedToken::from_issued(
        &issued(1_800_000_002, now + chrono::Duration::seconds(2)),
        now,
    );
    let exp = DateTime::from_timestamp(1_800_000_002, 0).unwrap();
    assert!(token.usable(exp - chrono::Duration::milliseconds(400)));
    assert!(
        !token.usable(exp - chrono::Duration::milliseconds(250)),
        "a quarter of its real life early"
    );
    // An `exp` later than `expires_in` changes nothing.
    let token = CachedToken::from_issued(
        &issued(1_900_000_000, now + chrono::Duration::seconds(300)),
        now,
    );
    assert!(token.usable(now + chrono::Duration::seconds(269)));
    assert!(!token.usable(now + chrono::Duration::seconds(270)));
}

proptest! {
    /// Keycloak's `exp` is outside data: any value gives a token that is usable no
    /// later than `expires_in` says, and never a panic.
    #[test]
    fn any_exp_claim_is_believed_only_when_earlier(
        exp in prop_oneof![any::<i64>(), -100_000_000_000i64..100_000_000_000],
    ) {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let token = CachedToken::from_issued(&issued(exp, now + chrono::Duration::seconds(300)), now);
        prop_assert!(!token.usable(now + chrono::Duration::seconds(300)));
        // An `exp` outside any representable time is ignored; one already past is not.
        if exp <= 1_800_000_000 && DateTime::from_timestamp(exp, 0).is_some() {
            prop_assert!(!token.usable(now));
        }
    }

    /// A token file holds whatever its writer put there: never a panic, and an
    /// absurd `expires_at` or `exp` is no expiry rather than an overflow.
    #[test]
    fn token_files_never_panic(
        text in prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_-]{0,20}\\.[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,20}",
        ],
        expires in prop_oneof![any::<f64>(), Just(1e300), Just(-1e300), Just(f64::MIN_POSITIVE)],
        exp in any::<i64>(),
    ) {
        let path = Path::new("/t");
        let _ = parse_token_file(Secret::new(text.clone()), path);
        let json = serde_json::json!({
            "access_token": text, "refresh_token": "r", "client_id": "shasta",
            "expires_at": if expires.is_finite() { serde_json::json!(expires) } else { serde_json::json!(null) },
        });
        let _ = parse_token_file(Secret::new(json.to_string()), path);
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::json!({"exp": exp, "preferred_username": "u\u{1b}[2J"}).to_string());
        let jwt = format!("h.{payload}.s");
        if let Ok(token) = parse_token_file(Secret::new(jwt.clone()), path) {
            let _ = token.expires_at.map(|t| t.checked_sub_signed(TOKEN_MARGIN));
        }
        prop_assert_eq!(jwt_user(&jwt), Some("u [2J".to_string()));
    }
}

/// An unsigned JWT with these claims (nothing here verifies signatures).
fn jwt(claims: serde_json::Value) -> String {
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("h.{payload}.s")
}

#[test]
fn times_in_sentences_are_utc_to_the_second() {
    let t = DateTime::from_timestamp(1_800_000_000, 999_000_000).unwrap();
    assert_eq!(format_time(t), "2027-01-15T08:00:00Z");
}

#[test]
fn a_cray_login_file_gives_its_tokens_client_and_expiry() {
    let path = Path::new("/t");
    let access = jwt(serde_json::json!({"exp": 1_800_000_300}));
    let login = serde_json::json!({
        "access_token": access, "refresh_token": "r", "client_id": "shasta",
        "expires_at": 1_800_000_100,
    });
    let file = parse_token_file(Secret::new(login.to_string()), path).unwrap();
    assert_eq!(file.access.expose(), access);
    assert_eq!(file.refresh.as_ref().map(Secret::expose), Some("r"));
    assert_eq!(file.client_id.as_deref(), Some("shasta"));
    assert_eq!(file.expires_at, DateTime::from_timestamp(1_800_000_100, 0));
    // Without `expires_at` the JWT's own `exp` counts; empty fields count as absent.
    let login = serde_json::json!({"access_token": access, "refresh_token": "", "client_id": ""});
    let file = parse_token_file(Secret::new(login.to_string()), path).unwrap();
    assert_eq!(file.expires_at, DateTime::from_timestamp(1_800_000_300, 0));
    assert!(file.refresh.is_none() && file.client_id.is_none());
    let empty = serde_json::json!({"access_token": "", "refresh_token": "r"});
    assert!(parse_token_file(Secret::new(empty.to_string()), path).is_err());
}

#[test]
fn a_raw_token_file_must_have_three_parts() {
    let path = Path::new("/t");
    let raw = jwt(serde_json::json!({"exp": 1_800_000_300}));
    let file = parse_token_file(Secret::new(raw.clone()), path).unwrap();
    assert_eq!(file.access.expose(), raw);
    assert_eq!(file.expires_at, DateTime::from_timestamp(1_800_000_300, 0));
    assert!(file.refresh.is_none() && file.client_id.is_none());
    for text in ["not-a-token", "a.b", "a.b.c.d"] {
        let err = parse_token_file(Secret::new(text), path).err().unwrap();
        assert_eq!(
            err.to_string(),
            "the token file /t holds neither a JWT nor a `cray` CLI login with an access_token; \
             run `cray auth login` or fix --token-file",
            "{text}"
        );
    }
}
