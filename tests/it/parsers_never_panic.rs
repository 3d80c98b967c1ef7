//! Property tests over every parser of outside data: whatever bytes arrive, the parser
//! returns a value or a plain error and never panics, and what it accepts is safe to
//! render. `PROPTEST_CASES=100000 cargo test --test it parsers_never_panic` runs a longer
//! search than the default 256 cases per property.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use s3credsfs::auth::jwt_claims;
use s3credsfs::auth::keycloak::parse_reply;
use s3credsfs::config::{parse_file_layer, resolve, Context, Layer, RawValue, Setting, Source};
use s3credsfs::creds::{parse_expiration, parse_sts_reply};
use s3credsfs::render::{render, Format, Profile};
use std::path::Path;

/// Text that mixes what real replies hold with what an attacker would send.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9]{1,40}",
        "[A-Za-z0-9+/=]{1,300}",
        "https?://[a-z0-9.-]{1,20}(:[0-9]{1,5})?(/[a-z]{0,5})?",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})?",
        any::<String>(),
        "[ -~\\n\\r\\t\\x1b\\u{85}\\u{2028}]{0,60}",
    ]
}

fn number() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        Just(serde_json::json!(1e300)),
        Just(serde_json::json!(-1e300)),
        hostile_text().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ]
}

fn sts_body() -> impl Strategy<Value = Vec<u8>> {
    let names = [
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "EndpointURL",
        "Expiration",
    ];
    let fields = proptest::collection::vec(
        (
            prop_oneof![
                proptest::sample::select(names.to_vec()).prop_map(String::from),
                any::<String>()
            ],
            prop_oneof![hostile_text().prop_map(serde_json::Value::from), number()],
        ),
        0..7,
    );
    let field = |valid: &'static str| {
        prop_oneof![
            3 => proptest::string::string_regex(valid).unwrap().prop_map(serde_json::Value::from),
            1 => hostile_text().prop_map(serde_json::Value::from),
            1 => number(),
        ]
    };
    let complete = (
        field("[A-Za-z0-9]{1,30}"),
        field("[!-~]{1,60}"),
        field("[A-Za-z0-9+/=]{1,400}"),
        field("https?://[a-z0-9.-]{1,20}(:[0-9]{1,5})?(/[a-z]{0,5})?"),
        field("20[3-9][0-9]-0[1-9]-1[0-9]T[01][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|\\+00:00)"),
    )
        .prop_map(|(a, s, t, e, x)| {
            serde_json::json!({"Credentials": {
                "AccessKeyId": a, "SecretAccessKey": s, "SessionToken": t,
                "EndpointURL": e, "Expiration": x,
            }})
            .to_string()
            .into_bytes()
        });
    prop_oneof![
        4 => complete,
        3 => fields.prop_map(|pairs| {
            let object: serde_json::Map<String, serde_json::Value> = pairs.into_iter().collect();
            serde_json::json!({ "Credentials": object }).to_string().into_bytes()
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..200),
    ]
}

/// How many generated STS replies were accepted, so the render property is not vacuous.
static ACCEPTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[test]
fn the_sts_property_sees_accepted_replies() {
    sts_replies_never_panic_and_accepted_ones_render_safely();
    let accepted = ACCEPTED.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        accepted >= 10,
        "only {accepted} generated replies were accepted"
    );
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

proptest! {
    /// Accepted credentials hold no character that could break a line, so every INI
    /// format renders with exactly its usual number of lines.
    #[test]
    fn sts_replies_never_panic_and_accepted_ones_render_safely(body in sts_body()) {
        let parsed = parse_sts_reply(&body);
        ACCEPTED.fetch_add(parsed.is_ok() as usize, std::sync::atomic::Ordering::Relaxed);
        if let Ok(creds) = parsed {
            for format in Format::ALL {
                let text = render(format, &creds, &Profile::named("default", "us-east-1"))
                    .expect("validated credentials always render");
                let expected_lines = match format {
                    Format::Json => 8,
                    Format::Credentials => 5,
                    Format::Config => 5,
                    Format::Env => 9,
                    Format::S3cfg => 12,
                    Format::Rclone => 9,
                };
                prop_assert_eq!(text.lines().count(), expected_lines, "{:?}: {}", format, text);
            }
        }
    }

    #[test]
    fn keycloak_replies_never_panic(
        status in prop_oneof![Just(200u16), Just(400), Just(401), Just(500), any::<u16>()],
        access in hostile_text(),
        expires in number(),
        refresh_expires in number(),
        description in hostile_text(),
        clock in prop_oneof![Just(now()), Just(DateTime::<Utc>::MAX_UTC), Just(DateTime::<Utc>::MIN_UTC)],
    ) {
        let body = serde_json::json!({
            "access_token": access,
            "expires_in": expires,
            "refresh_expires_in": refresh_expires,
            "refresh_token": "r",
            "error": "invalid_grant",
            "error_description": description,
        });
        let _ = parse_reply("https://gw/t", status, body.to_string().as_bytes(), clock);
    }

    #[test]
    fn keycloak_errors_are_clean(description in any::<String>()) {
        let body = serde_json::json!({"error": "invalid_grant", "error_description": description});
        if let Err(s3credsfs::auth::keycloak::GrantError::Refused { description, .. }) =
            parse_reply("u", 401, body.to_string().as_bytes(), now())
        {
            prop_assert!(!description.chars().any(char::is_control));
            prop_assert!(description.chars().count() <= 201);
        }
    }

    #[test]
    fn expirations_and_jwts_never_panic(text in hostile_text()) {
        let _ = parse_expiration(&text);
        let _ = jwt_claims(&text);
        let _ = jwt_claims(&format!("a.{text}.c"));
    }

    #[test]
    fn config_files_never_panic(text in prop_oneof![
        any::<String>(),
        "([a-z-]{1,15} = (\"[ -~]{0,20}\"|true|false|[0-9]{1,5})\n){0,5}",
    ]) {
        let _ = parse_file_layer(&text, Path::new("/x.toml"));
    }

    /// Any value of any setting resolves or gives one plain sentence.
    #[test]
    fn settings_values_never_panic(
        key in proptest::sample::select(vec![
            Setting::ApiGateway, Setting::TokenUrl, Setting::StsUrl, Setting::Timeout,
            Setting::MinValidity, Setting::Profile, Setting::Realm, Setting::ClientId,
        ]),
        value in prop_oneof![
            hostile_text(),
            "[0-9]{1,25}(ns|ms|s|m|h|d|w|y)",
        ],
    ) {
        let mut layer = Layer::new();
        for (k, v) in [(Setting::TokenEnv, "T"), (key, value.as_str())] {
            layer.insert(k, RawValue { value: v.to_string(), source: Source::Flag(k.flag()) });
        }
        if let Err(e) = resolve(&layer, &Context::default()) {
            prop_assert!(!e.to_string().contains('\n'));
        }
    }
}
