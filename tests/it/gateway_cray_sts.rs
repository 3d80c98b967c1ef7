//! The built-in gateway answers like the real cray-sts behind Istio and OPA (issue 18,
//! section 2), and the product reads those answers.

use crate::common;

use common::gw::*;
use s3credsfs::creds::parse_sts_reply;

/// One `PUT /apis/sts/token` with a fresh admin token: the raw body.
async fn sts_body(gw: &Gateway, c: &Client) -> String {
    let token = access_token(gw, c).await;
    let r = sts_bearer(gw, c, &token).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.text().await.unwrap()
}

fn field(body: &str, name: &str) -> Value {
    let json: Value = serde_json::from_str(body).unwrap();
    json["Credentials"][name].clone()
}

#[tokio::test]
async fn expiration_is_pythons_isoformat_and_the_product_reads_both_forms() {
    let gw = start_default().await;
    let c = client();
    let body = sts_body(&gw, &c).await;
    let written = field(&body, "Expiration").as_str().unwrap().to_owned();
    // 2019-10-14T15:15:43.480741+00:00; a whole second has no fraction (unit-tested in
    // the gateway, since a random instant almost never has 0 microseconds).
    let format = if written.len() == 25 {
        "%Y-%m-%dT%H:%M:%S+00:00"
    } else {
        "%Y-%m-%dT%H:%M:%S%.6f+00:00"
    };
    let instant = chrono::NaiveDateTime::parse_from_str(&written, format)
        .unwrap_or_else(|e| panic!("{written}: {e}"))
        .and_utc();
    let parsed = parse_sts_reply(body.as_bytes()).unwrap();
    assert_eq!(parsed.expiration, instant);

    // The same reply with the whole-second form isoformat() writes for 0 microseconds.
    let whole = format!("{}+00:00", &written[..19]);
    assert_eq!(whole.len(), 25);
    let body = body.replace(&written, &whole);
    let parsed = parse_sts_reply(body.as_bytes()).unwrap();
    assert_eq!(parsed.expiration.timestamp(), instant.timestamp());
    assert_eq!(parsed.expiration.timestamp_subsec_nanos(), 0);
}

#[tokio::test]
async fn random_credentials_are_shaped_like_rgws_and_the_product_accepts_them() {
    let gw = start_default().await;
    let c = client();
    let mut keys = String::new();
    let mut tokens = String::new();
    for _ in 0..12 {
        let body = sts_body(&gw, &c).await;
        let key = field(&body, "AccessKeyId").as_str().unwrap().to_owned();
        assert!((19..=20).contains(&key.len()), "{key}");
        assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()), "{key}");
        let secret = field(&body, "SecretAccessKey").as_str().unwrap().to_owned();
        assert!((39..=40).contains(&secret.len()));
        let token = field(&body, "SessionToken").as_str().unwrap().to_owned();
        assert!((300..=400).contains(&token.len()), "{}", token.len());
        assert!(token.ends_with('='));
        STANDARD.decode(&token).unwrap();
        let parsed = parse_sts_reply(body.as_bytes()).expect("the product accepts RGW shapes");
        assert_eq!(parsed.access_key_id, key);
        assert_eq!(parsed.secret_access_key.expose(), secret);
        assert_eq!(parsed.session_token.expose(), token);
        keys.push_str(&key);
        tokens.push_str(&token);
    }
    assert!(keys.bytes().any(|b| b.is_ascii_lowercase()), "{keys}");
    assert!(keys.bytes().any(|b| b.is_ascii_uppercase()), "{keys}");
    assert!(tokens.contains('+') && tokens.contains('/'));
}

#[tokio::test]
async fn endpoint_url_is_null_when_none_is_configured_and_the_product_says_so() {
    let gw = start(GatewayConfig {
        endpoint_url: Some("http://rgw-vip.nmn".into()),
        ..GatewayConfig::default()
    })
    .await;
    let c = client();
    assert_eq!(
        field(&sts_body(&gw, &c).await, "EndpointURL"),
        "http://rgw-vip.nmn"
    );

    let gw = start(GatewayConfig {
        endpoint_url: None,
        ..GatewayConfig::default()
    })
    .await;
    let body = sts_body(&gw, &c).await;
    let json: Value = serde_json::from_str(&body).unwrap();
    assert!(json["Credentials"]["EndpointURL"].is_null(), "{body}");
    assert_eq!(json["Credentials"].as_object().unwrap().len(), 5, "{body}");

    // `s3credsfs fetch` answers with one sentence naming the cause and who can fix it.
    let out = crate::fetch_cli::fetch(&gw, &[]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(69), "the gateway's exit status");
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    for expected in [
        "without an S3 endpoint",
        "\"EndpointURL\" is null or missing",
        "ext_endpoint_url",
        "this version of s3credsfs needs one",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
    }
    assert!(!stderr.contains("not a string"), "{stderr}");
    assert!(!stderr.contains("check --api-gateway"), "{stderr}");
}
