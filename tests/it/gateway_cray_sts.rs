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
        "set s3-endpoint (--s3-endpoint",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
    }
    assert!(!stderr.contains("not a string"), "{stderr}");
    assert!(!stderr.contains("check --api-gateway"), "{stderr}");
}

/// A gateway with an admin and a `viewer` without the `admin` role.
async fn gateway_with_viewer() -> Gateway {
    start(GatewayConfig {
        users: vec![
            Account::new(DEFAULT_USER, DEFAULT_PASSWORD, true),
            Account::new("viewer", "viewer-pw", false),
        ],
        ..GatewayConfig::default()
    })
    .await
}

async fn assert_opa_refusal(r: Response) {
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.headers()["x-ext-auth-allow"], "no");
    assert_eq!(content_type(&r), "text/plain");
    assert_eq!(r.text().await.unwrap(), "Unauthorized Request");
}

#[tokio::test]
async fn opa_refuses_a_valid_token_without_admin_and_any_other_authorization_form() {
    let gw = gateway_with_viewer().await;
    let c = client();
    let r = login(&gw, &c, "viewer", "viewer-pw").await;
    let viewer: Value = r.json().await.unwrap();
    let viewer = viewer["access_token"].as_str().unwrap();
    assert_opa_refusal(sts_bearer(&gw, &c, viewer).await).await;
    assert_opa_refusal(sts(&gw, &c, None).await).await;

    // OPA wants exactly `Bearer <jwt>`: one space, that capitalisation.
    let admin = access_token(&gw, &c).await;
    for form in ["bearer {}", "BEARER {}", "Bearer  {}"] {
        let header = form.replace("{}", &admin);
        assert_opa_refusal(sts(&gw, &c, Some(&header)).await).await;
    }
    let exact = format!("Bearer {admin}");
    assert_eq!(
        sts(&gw, &c, Some(&exact)).await.status(),
        StatusCode::CREATED
    );

    // Istio's JWT check comes first: a token it cannot verify is 401, whatever the role.
    let r = sts_bearer(&gw, &c, "not-a-jwt").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(!r.headers().contains_key("x-ext-auth-allow"));
    let stats = gw.stats();
    assert_eq!((stats.sts_issued, stats.sts_rejected), (1, 6));
}

#[tokio::test]
async fn healthz_needs_an_admin_token_too() {
    let gw = gateway_with_viewer().await;
    let c = client();
    let url = format!("{}/apis/sts/healthz", gw.base_url());
    assert_opa_refusal(c.get(&url).send().await.unwrap()).await;
    let r = login(&gw, &c, "viewer", "viewer-pw").await;
    let viewer: Value = r.json().await.unwrap();
    let viewer = viewer["access_token"].as_str().unwrap();
    assert_opa_refusal(c.get(&url).bearer_auth(viewer).send().await.unwrap()).await;
    let r = c.get(&url).bearer_auth("not-a-jwt").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let admin = access_token(&gw, &c).await;
    let r = c.get(&url).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["Status"], "ok");
    assert_eq!(gw.stats().healthz_requests, 4);
}

#[tokio::test]
async fn the_product_names_who_refused_a_fresh_token() {
    use s3credsfs::error::Error;
    use s3credsfs::sts::Pipeline;
    let dir = tempfile::tempdir().unwrap();

    // 403 (OPA): the account lacks the role.
    let gw = gateway_with_viewer().await;
    let pw = common::private_file(dir.path(), "viewer", "viewer-pw");
    let s = common::settings(
        &gw,
        &[
            ("username", "viewer"),
            ("password-file", pw.to_str().unwrap()),
        ],
    );
    let err = Pipeline::new(&s).unwrap().fetch().await.unwrap_err();
    assert!(
        matches!(err, Error::StsForbidden { status: 403, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("needs the `admin` role of the `shasta` client"),
        "{text}"
    );

    // 401 (Istio): tokens from a Keycloak this gateway does not trust. No role fixes that.
    let other = start_default().await;
    let pw = common::private_file(dir.path(), "dev", DEFAULT_PASSWORD);
    let s = common::settings(
        &gw,
        &[
            ("username", DEFAULT_USER),
            ("password-file", pw.to_str().unwrap()),
            ("token-url", &other.token_url()),
        ],
    );
    let err = Pipeline::new(&s).unwrap().fetch().await.unwrap_err();
    assert!(
        matches!(err, Error::StsForbidden { status: 401, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("JWT check did not accept it"), "{text}");
    assert!(!text.contains("admin"), "{text}");
}

/// A backend STS URL on a port where nothing listens.
fn unreachable_backend() -> s3credsfs::dev::gateway::BackendSts {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    s3credsfs::dev::gateway::BackendSts::new(url, "AK", "backend-secret", "arn:aws:iam::1:role/r")
}

#[tokio::test]
async fn a_failing_backend_is_a_500_problem_document() {
    let gw = start(GatewayConfig {
        backend: Some(unreachable_backend()),
        ..GatewayConfig::default()
    })
    .await;
    let c = client();
    let token = access_token(&gw, &c).await;
    let r = sts_bearer(&gw, &c, &token).await;
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(content_type(&r), "application/problem+json");
    let problem: Value = r.json().await.unwrap();
    let fields: Vec<&String> = problem.as_object().unwrap().keys().collect();
    assert_eq!(fields, ["detail", "status", "title", "type"], "{problem}");
    assert_eq!(problem["status"], 500);
    assert_eq!(problem["title"], "Internal Server Error");
    assert!(!problem.to_string().contains("backend-secret"));
    assert_eq!(gw.stats().sts_issued, 0);
}

#[tokio::test]
async fn a_hung_backend_is_envoys_504_after_the_gateway_timeout() {
    // Accepts connections (the kernel does, from the backlog) and never answers.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = s3credsfs::dev::gateway::BackendSts::new(
        format!("http://{}", hung.local_addr().unwrap()),
        "AK",
        "backend-secret",
        "arn:aws:iam::1:role/r",
    );
    let timeout = Duration::from_millis(300);
    let gw = start(GatewayConfig {
        backend: Some(backend),
        upstream_timeout: timeout,
        ..GatewayConfig::default()
    })
    .await;
    let c = client();
    let token = access_token(&gw, &c).await;
    let asked = Instant::now();
    let r = sts_bearer(&gw, &c, &token).await;
    let waited = asked.elapsed();
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(content_type(&r), "text/plain");
    assert_eq!(r.text().await.unwrap(), "upstream request timeout");
    assert!(waited >= timeout, "answered after {waited:?}");
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");
    drop(hung);
}

#[tokio::test]
async fn gateway_failures_are_transient_and_never_cost_a_new_login() {
    use s3credsfs::error::Error;
    use s3credsfs::sts::Pipeline;
    let gw = start_default().await;
    let problem = r#"{"detail": "x", "status": 500, "title": "Internal Server Error", "type": "about:blank"}"#;
    let failures = [
        (500, "application/problem+json", problem),
        (
            502,
            "text/plain",
            "upstream connect error or disconnect/reset before headers",
        ),
        (503, "text/plain", "no healthy upstream"),
        (504, "text/plain", "upstream request timeout"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let pw = common::private_file(dir.path(), "pw", DEFAULT_PASSWORD);
    let s = common::settings(
        &gw,
        &[
            ("username", DEFAULT_USER),
            ("password-file", pw.to_str().unwrap()),
        ],
    );
    let pipeline = Pipeline::new(&s).unwrap();
    // Many more failures than a minute of the mount's backoff makes, with a valid JWT.
    let rounds = 15;
    for (status, content_type, body) in failures {
        gw.inject(
            Endpoint::Sts,
            common::status_fault(status, content_type, body),
            Times::N(rounds),
        );
        for _ in 0..rounds {
            let err = pipeline.fetch().await.unwrap_err();
            assert!(
                matches!(&err, Error::HttpStatus { status: s, .. } if *s == status),
                "{err:?}"
            );
            assert!(!err.is_login_refused(), "{err}");
            let text = err.to_string();
            assert!(
                text.contains("the STS or its Ceph backend is failing"),
                "{text}"
            );
        }
    }
    pipeline
        .fetch()
        .await
        .expect("credentials once the gateway recovers");
    let stats = gw.stats();
    assert_eq!(stats.sts_requests, 4 * rounds as u64 + 1);
    assert_eq!(stats.password_grants, 1, "one login for all of it");
    assert_eq!(stats.refresh_grants, 0);
}

/// A one-shot backend STS: answers the first request with an `AssumeRoleResponse` and
/// hands back the request's form body.
async fn one_shot_backend() -> (String, tokio::task::JoinHandle<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        let body = loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the request ended early");
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).into_owned();
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                continue;
            };
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                break body.to_owned();
            }
        };
        let expiration = (chrono::Utc::now() + chrono::Duration::hours(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let xml = format!(
            "<AssumeRoleResponse><AssumeRoleResult><Credentials>\
             <AccessKeyId>KtSRFzmAkoDfgCnBLYt</AccessKeyId>\
             <SecretAccessKey>secret-of-thirty-nine-characters-abcdef</SecretAccessKey>\
             <SessionToken>dG9rZW4=</SessionToken>\
             <Expiration>{expiration}</Expiration>\
             </Credentials></AssumeRoleResult></AssumeRoleResponse>"
        );
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{xml}",
            xml.len()
        );
        stream.write_all(reply.as_bytes()).await.unwrap();
        body
    });
    (url, task)
}

#[tokio::test]
async fn assume_role_asks_for_one_hour_whatever_the_lifetime() {
    let (url, backend) = one_shot_backend().await;
    let gw = start(GatewayConfig {
        backend: Some(s3credsfs::dev::gateway::BackendSts::new(
            url,
            "AK",
            "backend-secret",
            "arn:aws:iam::1:role/r",
        )),
        lifetime: Duration::from_secs(300),
        ..GatewayConfig::default()
    })
    .await;
    let c = client();
    let body = sts_body(&gw, &c).await;
    let form = tokio::time::timeout(WAIT, backend).await.unwrap().unwrap();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(form.as_bytes())
        .into_owned()
        .collect();
    assert!(
        pairs.contains(&("Action".into(), "AssumeRole".into())),
        "{form}"
    );
    assert!(
        pairs.contains(&("DurationSeconds".into(), "3600".into())),
        "{form}"
    );
    assert_eq!(field(&body, "AccessKeyId"), "KtSRFzmAkoDfgCnBLYt");
}

#[tokio::test]
async fn a_lifetime_above_an_hour_with_a_backend_is_refused_at_start() {
    let backend = unreachable_backend();
    let err = Gateway::start(GatewayConfig {
        backend: Some(backend.clone()),
        lifetime: Duration::from_secs(7200),
        ..GatewayConfig::default()
    })
    .await
    .err()
    .expect("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(
        err.to_string()
            .contains("--lifetime 2h is longer than the one hour"),
        "{err}"
    );
    // One hour is what the backend grants: allowed. Without a backend: demos may go long.
    let mut config = GatewayConfig {
        backend: Some(backend.clone()),
        lifetime: Duration::from_secs(3600),
        ..GatewayConfig::default()
    };
    Gateway::start(config.clone())
        .await
        .expect("an hour is fine");
    config.backend = None;
    config.lifetime = Duration::from_secs(86_400);
    Gateway::start(config)
        .await
        .expect("no backend, any lifetime");

    // The dev-gateway command says so in one sentence, before it listens.
    let out = crate::fetch_cli::bin()
        .args(["dev-gateway", "--listen", "127.0.0.1:0", "--lifetime", "2h"])
        .args([
            "--backend-sts",
            &backend.url,
            "--role-arn",
            &backend.role_arn,
        ])
        .env("S3CREDSFS_BACKEND_ACCESS_KEY", "AK")
        .env("S3CREDSFS_BACKEND_SECRET_KEY", "backend-secret")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--lifetime 2h is longer than the one hour a backend STS grants"),
        "{stderr}"
    );
    assert!(
        stderr.contains("use --lifetime 1h or less with --backend-sts"),
        "{stderr}"
    );
    assert!(!stderr.contains("backend-secret"), "{stderr}");
}

/// The CMN endpoint a user on the customer network sets with `s3-endpoint`.
const CMN: &str = "https://rgw-vip.cmn.example.com";

#[tokio::test]
async fn s3_endpoint_wins_over_the_node_networks_endpoint_in_every_format() {
    let gw = start(GatewayConfig {
        endpoint_url: Some("http://rgw-vip.nmn".into()),
        ..GatewayConfig::default()
    })
    .await;
    for format in s3credsfs::render::Format::ALL {
        let name = format.name();
        let out = crate::fetch_cli::fetch(&gw, &["-f", name, "--s3-endpoint", CMN])
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        let written = String::from_utf8_lossy(&out.stdout);
        assert!(!written.contains("nmn"), "{name}: {written}");
        // The credentials file holds keys only; every other format names the endpoint.
        if name != "credentials" {
            assert!(
                written.contains("rgw-vip.cmn.example.com"),
                "{name}: {written}"
            );
        }
    }
    // The full URL where a format takes one, from the variable as from the flag.
    let out = crate::fetch_cli::fetch(&gw, &["-f", "env"])
        .env("S3CREDSFS_S3_ENDPOINT", CMN)
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("AWS_ENDPOINT_URL='{CMN}'")));
    let out = crate::fetch_cli::fetch(&gw, &["-f", "json", "--s3-endpoint", CMN])
        .output()
        .await
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["EndpointURL"], CMN);
    // Without the setting the STS's endpoint stays.
    let out = crate::fetch_cli::fetch(&gw, &["-f", "json"])
        .output()
        .await
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["EndpointURL"], "http://rgw-vip.nmn");
}

#[tokio::test]
async fn a_null_endpoint_url_is_served_with_s3_endpoint() {
    let gw = start(GatewayConfig {
        endpoint_url: None,
        ..GatewayConfig::default()
    })
    .await;
    let out = crate::fetch_cli::fetch(&gw, &["-f", "config", "--s3-endpoint", CMN])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = String::from_utf8_lossy(&out.stdout);
    assert!(
        written.contains(&format!("endpoint_url = {CMN}\n")),
        "{written}"
    );
}

#[tokio::test]
async fn a_bad_s3_endpoint_is_refused_with_one_sentence() {
    let gw = start_default().await;
    for bad in [
        "ftp://x",
        "https://u:p@x",
        "https://x/?q",
        "https://x/#f",
        "x",
    ] {
        let out = crate::fetch_cli::fetch(&gw, &["--s3-endpoint", bad])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(78), "{bad}: the config exit status");
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("--s3-endpoint"), "{bad}: {stderr}");
        assert!(
            stderr.contains("with a host and nothing after the path"),
            "{bad}: {stderr}"
        );
        assert!(!stderr.contains("u:p"), "the password is hidden: {stderr}");
    }
}
