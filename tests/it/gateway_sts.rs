//! The built-in gateway's STS, its JWT checks and its fault injection over real HTTP(S).

use crate::common;

use common::gw::*;
use common::{status_fault, wait_for_async};

fn assert_expiration_format(s: &str) {
    // Exactly like cray-sts (Python's isoformat()): 2019-10-14T15:15:43.480741+00:00, or
    // 2019-10-14T15:15:43+00:00 when the microseconds are 0.
    assert!(s.len() == 32 || s.len() == 25, "{s}");
    assert!(s.ends_with("+00:00"), "{s}");
    let format = if s.len() == 32 {
        "%Y-%m-%dT%H:%M:%S%.6f+00:00"
    } else {
        "%Y-%m-%dT%H:%M:%S+00:00"
    };
    chrono::NaiveDateTime::parse_from_str(s, format).unwrap();
}

#[tokio::test]
async fn sts_issues_fresh_credentials() {
    let gw = start(GatewayConfig {
        lifetime: Duration::from_secs(900),
        endpoint_url: Some("http://rgw.local:8080".into()),
        ..GatewayConfig::default()
    })
    .await;
    let c = client();
    let token = access_token(&gw, &c).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let r = sts_bearer(&gw, &c, &token).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(content_type(&r), "application/json");
        let body: Value = r.json().await.unwrap();
        let creds = &body["Credentials"];
        assert_eq!(creds.as_object().unwrap().len(), 5, "{body}");
        assert_eq!(creds["EndpointURL"], "http://rgw.local:8080");
        let key = creds["AccessKeyId"].as_str().unwrap();
        assert!((19..=20).contains(&key.len()), "{key}");
        assert!(key.bytes().all(|b| b.is_ascii_alphanumeric()), "{key}");
        let secret = creds["SecretAccessKey"].as_str().unwrap();
        assert!((39..=40).contains(&secret.len()));
        let session = creds["SessionToken"].as_str().unwrap();
        assert!(session.len() > 100);
        STANDARD.decode(session).unwrap();
        let exp = creds["Expiration"].as_str().unwrap();
        assert_expiration_format(exp);
        let exp = chrono::DateTime::parse_from_rfc3339(exp).unwrap();
        let ahead = (exp.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
        assert!((895..=900).contains(&ahead), "{ahead}");
        seen.push((
            key.to_owned(),
            creds["SecretAccessKey"].clone(),
            session.to_owned(),
        ));
    }
    assert_ne!(seen[0].0, seen[1].0);
    assert_ne!(seen[0].1, seen[1].1);
    assert_ne!(seen[0].2, seen[1].2);
    let stats = gw.stats();
    assert_eq!(
        (stats.sts_requests, stats.sts_issued, stats.sts_rejected),
        (2, 2, 0)
    );
}

#[tokio::test]
async fn sts_rejects_bad_callers() {
    let gw = start(GatewayConfig {
        users: vec![
            Account::new(DEFAULT_USER, DEFAULT_PASSWORD, true),
            Account::new("viewer", "viewer-pw", false),
        ],
        ..GatewayConfig::default()
    })
    .await;
    let c = client();
    assert_text(sts(&gw, &c, None).await, 403, "Unauthorized Request").await;
    let basic = format!("Basic {}", STANDARD.encode("dev:dev-password"));
    assert_text(
        sts(&gw, &c, Some(&basic)).await,
        403,
        "Unauthorized Request",
    )
    .await;
    let r = sts_bearer(&gw, &c, "not-a-jwt").await;
    assert!(r.headers().contains_key("www-authenticate"));
    assert_text(r, 401, "Jwt verification fails").await;

    // Forged: a valid token with its signature tampered with.
    let good = access_token(&gw, &c).await;
    let (head, sig) = good.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let forged = format!("{head}.{flipped}{}", &sig[1..]);
    assert_text(
        sts_bearer(&gw, &c, &forged).await,
        401,
        "Jwt verification fails",
    )
    .await;
    // A token from another gateway instance (another issuer and key).
    let other = start_default().await;
    let foreign = access_token(&other, &c).await;
    let r = sts_bearer(&gw, &c, &foreign).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Valid tokens without the admin role or for another audience.
    let r = login(&gw, &c, "viewer", "viewer-pw").await;
    let viewer: Value = r.json().await.unwrap();
    let viewer_token = viewer["access_token"].as_str().unwrap();
    assert_text(
        sts_bearer(&gw, &c, viewer_token).await,
        403,
        "Unauthorized Request",
    )
    .await;
    let refresh_token = viewer["refresh_token"].as_str().unwrap();
    assert_text(
        sts_bearer(&gw, &c, refresh_token).await,
        403,
        "Unauthorized Request",
    )
    .await;
    let r = c.get(gw.sts_url()).bearer_auth(&good).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        sts_bearer(&gw, &c, &good).await.status(),
        StatusCode::CREATED
    );

    let stats = gw.stats();
    assert_eq!(
        (stats.sts_requests, stats.sts_rejected, stats.sts_issued),
        (8, 7, 1)
    );
}

#[tokio::test]
async fn expired_access_token_is_rejected_by_the_gateway() {
    let gw = start(GatewayConfig {
        token_lifetime: Duration::from_secs(1),
        ..GatewayConfig::default()
    })
    .await;
    let c = client();
    let body = login_ok(&gw, &c).await;
    assert_eq!(body["expires_in"], 1);
    let token = body["access_token"].as_str().unwrap();
    let r = wait_for_async("the access token to expire", WAIT, async || {
        let r = sts_bearer(&gw, &c, token).await;
        if r.status() == StatusCode::UNAUTHORIZED {
            return Ok(r);
        }
        assert_eq!(r.status(), StatusCode::CREATED);
        Err(format!("HTTP {}", r.status()))
    })
    .await;
    assert_text(r, 401, "Jwt is expired").await;
    // The refresh token still gets a working access token. It lives one whole second
    // (`exp` is whole seconds), so it may lapse before it reaches the STS: then the 401
    // must be a true expiry, and the next refresh is tried.
    let mut refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    wait_for_async("a refreshed token to reach the STS", WAIT, async || {
        let r = refresh(&gw, &c, &refresh_token).await;
        assert_eq!(r.status(), StatusCode::OK);
        let fresh: Value = r.json().await.unwrap();
        let access = fresh["access_token"].as_str().unwrap();
        assert!(claims(access)["exp"].as_f64().unwrap() > claims(token)["exp"].as_f64().unwrap());
        let r = sts_bearer(&gw, &c, access).await;
        if r.status() == StatusCode::CREATED {
            return Ok(());
        }
        assert!(
            now_secs() >= claims(access)["exp"].as_f64().unwrap(),
            "a refreshed, unexpired token was refused"
        );
        assert_text(r, 401, "Jwt is expired").await;
        refresh_token = fresh["refresh_token"].as_str().unwrap().to_owned();
        Err("the refreshed access token lapsed before it reached the STS")
    })
    .await;
}

#[tokio::test]
async fn healthz_and_unknown_paths() {
    let gw = start_default().await;
    let c = client();
    let token = access_token(&gw, &c).await;
    let r = c
        .get(format!("{}/apis/sts/healthz", gw.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"Status": "ok"}));
    let r = c
        .get(format!("{}/apis/other", gw.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(gw.stats().healthz_requests, 1);
}

#[tokio::test]
async fn status_faults_times_and_order() {
    let gw = start_default().await;
    let c = client();
    let token = access_token(&gw, &c).await;
    // FIFO, N, Always, clear.
    gw.inject(
        Endpoint::Sts,
        status_fault(500, "application/json", "\"Error\""),
        Times::Once,
    );
    gw.inject(
        Endpoint::Sts,
        status_fault(502, "text/html", "<h1>bad gateway</h1>"),
        Times::N(2),
    );
    let r = sts_bearer(&gw, &c, &token).await;
    assert_eq!(r.status().as_u16(), 500);
    assert_eq!(content_type(&r), "application/json");
    assert_eq!(r.text().await.unwrap(), "\"Error\"");
    for _ in 0..2 {
        let r = sts_bearer(&gw, &c, &token).await;
        assert_eq!(r.status().as_u16(), 502);
        assert_eq!(content_type(&r), "text/html");
        assert_eq!(r.text().await.unwrap(), "<h1>bad gateway</h1>");
    }
    assert_eq!(sts_bearer(&gw, &c, &token).await.status().as_u16(), 201);
    gw.inject(
        Endpoint::Sts,
        status_fault(503, "text/plain", "no healthy upstream"),
        Times::Always,
    );
    gw.inject(
        Endpoint::Sts,
        status_fault(504, "text/plain", "never reached"),
        Times::Once,
    );
    for _ in 0..3 {
        assert_eq!(sts_bearer(&gw, &c, &token).await.status().as_u16(), 503);
    }
    gw.clear_faults();
    assert_eq!(sts_bearer(&gw, &c, &token).await.status().as_u16(), 201);
    // Token endpoint faults are separate; a faulted STS request still counts.
    gw.inject(
        Endpoint::Token,
        status_fault(503, "text/html", "down"),
        Times::Once,
    );
    let r = login(&gw, &c, DEFAULT_USER, DEFAULT_PASSWORD).await;
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.text().await.unwrap(), "down");
    login_ok(&gw, &c).await;
    let stats = gw.stats();
    assert_eq!(stats.sts_requests, 8);
    assert_eq!(stats.sts_issued, 2);
    assert_eq!(stats.faults_applied, 1 + 2 + 3 + 1);
    assert_eq!((stats.token_requests, stats.password_grants), (3, 2));
}

#[tokio::test]
async fn malformed_incomplete_and_expired_faults() {
    let gw = start_default().await;
    let c = client();
    let token = access_token(&gw, &c).await;

    gw.inject(Endpoint::Sts, Fault::Malformed, Times::Once);
    let r = sts_bearer(&gw, &c, &token).await;
    assert_eq!(r.status().as_u16(), 201);
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());

    gw.inject(Endpoint::Sts, Fault::Incomplete, Times::Once);
    let r = sts_bearer(&gw, &c, &token).await;
    assert_eq!(r.status().as_u16(), 201);
    let body: Value = r.json().await.unwrap();
    assert!(body["Credentials"].get("SessionToken").is_none(), "{body}");
    assert!(body["Credentials"].get("AccessKeyId").is_some(), "{body}");

    gw.inject(Endpoint::Sts, Fault::ExpiredCredentials, Times::Once);
    let r = sts_bearer(&gw, &c, &token).await;
    assert_eq!(r.status().as_u16(), 201);
    let body: Value = r.json().await.unwrap();
    let exp = body["Credentials"]["Expiration"].as_str().unwrap();
    assert_expiration_format(exp);
    let exp = chrono::DateTime::parse_from_rfc3339(exp).unwrap();
    let behind = (chrono::Utc::now() - exp.with_timezone(&chrono::Utc)).num_seconds();
    assert!((3595..=3605).contains(&behind), "{behind}");
    assert!(body["Credentials"]["SessionToken"].is_string());

    gw.inject(Endpoint::Token, Fault::Malformed, Times::Once);
    let r = login(&gw, &c, DEFAULT_USER, DEFAULT_PASSWORD).await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());

    gw.inject(Endpoint::Token, Fault::Incomplete, Times::Once);
    let r = login(&gw, &c, DEFAULT_USER, DEFAULT_PASSWORD).await;
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body.get("access_token").is_none(), "{body}");

    // Token endpoint: a normal-looking grant whose access token is already expired.
    gw.inject(Endpoint::Token, Fault::ExpiredCredentials, Times::Once);
    let body = login_ok(&gw, &c).await;
    assert_eq!(body["expires_in"], 300);
    let stale = body["access_token"].as_str().unwrap();
    assert_text(sts_bearer(&gw, &c, stale).await, 401, "Jwt is expired").await;

    let stats = gw.stats();
    assert_eq!(stats.sts_issued, 0);
    assert_eq!(stats.sts_requests, 4);
    assert_eq!(stats.password_grants, 2);
    assert_eq!(stats.faults_applied, 6);
}

#[tokio::test]
async fn delay_and_close_connection_faults() {
    let gw = start_default().await;
    let c = client();
    let token = access_token(&gw, &c).await;

    gw.inject(
        Endpoint::Sts,
        Fault::Delay(Duration::from_millis(300)),
        Times::Once,
    );
    let started = Instant::now();
    assert_eq!(sts_bearer(&gw, &c, &token).await.status().as_u16(), 201);
    assert!(started.elapsed() >= Duration::from_millis(300));
    // A client with a short timeout gives up.
    gw.inject(
        Endpoint::Token,
        Fault::Delay(Duration::from_millis(500)),
        Times::Once,
    );
    let impatient = Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let err = impatient
        .post(gw.token_url())
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");

    for endpoint in [Endpoint::Sts, Endpoint::Token] {
        gw.inject(endpoint, Fault::CloseConnection, Times::Once);
        let fresh = client();
        let req = match endpoint {
            Endpoint::Sts => fresh.put(gw.sts_url()).bearer_auth(&token),
            Endpoint::Token => fresh
                .post(gw.token_url())
                .form(&[("grant_type", "password")]),
        };
        let err = req.send().await.unwrap_err();
        assert!(!err.is_timeout(), "{err:?}");
    }
    assert_eq!(sts_bearer(&gw, &c, &token).await.status().as_u16(), 201);
    assert!(gw.wait_for(|s| s.faults_applied == 4, WAIT).await);
}

#[tokio::test]
async fn wait_for_and_shutdown() {
    // An address of its own on the loopback network: once shut down, its port cannot be
    // taken by another test's gateway (they listen on 127.0.0.1), so a refused connection
    // proves the listener closed.
    let gw = start(GatewayConfig {
        listen: "127.0.0.73:0".parse().unwrap(),
        ..GatewayConfig::default()
    })
    .await;
    let url = format!("{}/apis/sts/healthz", gw.base_url());
    let token = access_token(&gw, &client()).await;
    let background = tokio::spawn(async move {
        let request = client().get(url).bearer_auth(token);
        request.send().await.unwrap().status()
    });
    assert!(gw.wait_for(|s: &Stats| s.healthz_requests == 1, WAIT).await);
    assert_eq!(background.await.unwrap(), StatusCode::OK);
    let started = Instant::now();
    assert!(
        !gw.wait_for(|s| s.healthz_requests == 2, Duration::from_millis(50))
            .await
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "ended at its deadline"
    );

    let addr = gw.addr();
    // A connection accepted before the shutdown is closed by it, not left open.
    let mut open = tokio::net::TcpStream::connect(addr).await.unwrap();
    gw.shutdown().await;
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut open, &mut byte))
        .await
        .expect("the connection is closed, not left hanging");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn https_with_a_private_ca() {
    let (ca_pem, tls) = common::test_tls();
    let gw = start(GatewayConfig {
        tls: Some(tls),
        ..GatewayConfig::default()
    })
    .await;
    assert_eq!(
        gw.base_url(),
        format!("https://localhost:{}", gw.addr().port())
    );
    let trusting = Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let token = access_token(&gw, &trusting).await;
    let r = sts_bearer(&gw, &trusting, &token).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let claims = claims(&token);
    assert_eq!(
        claims["iss"],
        format!("{}/keycloak/realms/shasta", gw.base_url())
    );

    // Without the CA the handshake fails and nothing is served.
    let err = client().get(gw.sts_url()).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let stats = gw.stats();
    assert_eq!((stats.password_grants, stats.sts_issued), (1, 1));
}

/// The backend flags of `dev-gateway` (none of them reaches a backend here).
#[test]
fn backend_flags_are_all_or_nothing() {
    let out = common::mount::bin()
        .args(["dev-gateway", "--listen", "127.0.0.1:0"])
        .args(["--backend-sts", "http://127.0.0.1:9", "--role-arn", "arn"])
        .env("S3CREDSFS_BACKEND_SECRET_KEY", "top-secret-value")
        .env_remove("S3CREDSFS_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no banner: it never started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("needs --backend-access-key (or S3CREDSFS_BACKEND_ACCESS_KEY) as well"),
        "{stderr}"
    );
    assert!(!stderr.contains("top-secret-value"), "{stderr}");
}
