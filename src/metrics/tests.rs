use super::*;

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn sample(profiles: Vec<ProfileSample>) -> Sample {
    Sample {
        now: at(1_800_000_000),
        build: Build {
            version: "1.2.3".into(),
            build: "production".into(),
        },
        up: true,
        mountpoint: "/home/u/.s3creds".into(),
        profiles,
    }
}

/// The whole file for a mount of two profiles, one with a history and one never
/// fetched, byte for byte.
#[test]
fn renders_every_family_once_byte_for_byte() {
    let metrics = ProfileMetrics::default();
    metrics.record_refresh(Trigger::Read, Ok(()));
    metrics.record_refresh(Trigger::Ahead, Ok(()));
    metrics.record_refresh(Trigger::Ahead, Ok(()));
    let refused = Error::AuthRejected {
        url: "u".into(),
        who: "w".into(),
        description: "d".into(),
        fix: "f".into(),
    };
    metrics.record_refresh(Trigger::Forced, Err(&refused));
    metrics.record_request(Duration::from_millis(40));
    metrics.record_request(Duration::from_millis(250));
    metrics.record_request(Duration::from_secs(31));
    let text = render(&sample(vec![
        ProfileSample {
            name: "default".into(),
            expiration: Some(at(1_800_000_000 + 3000)),
            last_refresh: Some(at(1_800_000_000 - 600)),
            counts: metrics.counts(),
        },
        ProfileSample {
            name: "tds".into(),
            expiration: Some(at(1_800_000_000 - 5)),
            last_refresh: None,
            counts: Counts::default(),
        },
    ]));
    let failures = |profile: &str, refused: u64| {
        CAUSES
            .iter()
            .map(|c| {
                let n = if *c == "login_refused" { refused } else { 0 };
                format!(
                    "s3credsfs_refresh_failures_total{{profile=\"{profile}\",cause=\"{c}\"}} {n}\n"
                )
            })
            .collect::<String>()
    };
    let expected = [
        "# HELP s3credsfs_build_info The running s3credsfs: its version and build (production, or dev-gateway with the built-in gateway).\n",
        "# TYPE s3credsfs_build_info gauge\n",
        "s3credsfs_build_info{version=\"1.2.3\",build=\"production\"} 1\n",
        "# HELP s3credsfs_up 1 while the mount serves credentials, 0 once it has unmounted.\n",
        "# TYPE s3credsfs_up gauge\n",
        "s3credsfs_up{mountpoint=\"/home/u/.s3creds\"} 1\n",
        "# HELP s3credsfs_credentials_expiry_seconds Seconds until the profile's current credentials expire; negative once expired, absent before the first fetch.\n",
        "# TYPE s3credsfs_credentials_expiry_seconds gauge\n",
        "s3credsfs_credentials_expiry_seconds{profile=\"default\"} 3000\n",
        "s3credsfs_credentials_expiry_seconds{profile=\"tds\"} -5\n",
        "# HELP s3credsfs_last_refresh_timestamp_seconds When the profile's credentials were last fetched, in Unix seconds; absent before the first fetch.\n",
        "# TYPE s3credsfs_last_refresh_timestamp_seconds gauge\n",
        "s3credsfs_last_refresh_timestamp_seconds{profile=\"default\"} 1799999400\n",
        "# HELP s3credsfs_refreshes_total Successful credential refreshes, by cause: read (a read needed them), ahead (refreshed before they were due), forced (s3credsfs refresh).\n",
        "# TYPE s3credsfs_refreshes_total counter\n",
        "s3credsfs_refreshes_total{profile=\"default\",cause=\"ahead\"} 2\n",
        "s3credsfs_refreshes_total{profile=\"default\",cause=\"forced\"} 0\n",
        "s3credsfs_refreshes_total{profile=\"default\",cause=\"read\"} 1\n",
        "s3credsfs_refreshes_total{profile=\"tds\",cause=\"ahead\"} 0\n",
        "s3credsfs_refreshes_total{profile=\"tds\",cause=\"forced\"} 0\n",
        "s3credsfs_refreshes_total{profile=\"tds\",cause=\"read\"} 0\n",
        "# HELP s3credsfs_refresh_failures_total Failed credential refreshes, by cause (login_refused, unreachable, tls, timeout, ...).\n",
        "# TYPE s3credsfs_refresh_failures_total counter\n",
        &failures("default", 1),
        &failures("tds", 0),
        "# HELP s3credsfs_gateway_request_duration_seconds Time of one gateway request (Keycloak or STS), from sending it to the end of the reply.\n",
        "# TYPE s3credsfs_gateway_request_duration_seconds histogram\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"default\",le=\"0.01\"} 0\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"default\",le=\"0.05\"} 1\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"default\",le=\"0.1\"} 1\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"default\",le=\"0.25\"} 2\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"default\",le=\"0.5\"} 2\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"default\",le=\"1\"} 2\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"default\",le=\"2.5\"} 2\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"default\",le=\"5\"} 2\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"default\",le=\"10\"} 2\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"default\",le=\"30\"} 2\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"default\",le=\"+Inf\"} 3\n",
        "s3credsfs_gateway_request_duration_seconds_sum{profile=\"default\"} 31.29\n",
        "s3credsfs_gateway_request_duration_seconds_count{profile=\"default\"} 3\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"tds\",le=\"0.01\"} 0\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"tds\",le=\"0.05\"} 0\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"tds\",le=\"0.1\"} 0\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"tds\",le=\"0.25\"} 0\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"tds\",le=\"0.5\"} 0\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"tds\",le=\"1\"} 0\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"tds\",le=\"2.5\"} 0\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"tds\",le=\"5\"} 0\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"tds\",le=\"10\"} 0\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"tds\",le=\"30\"} 0\n",
        "s3credsfs_gateway_request_duration_seconds_bucket{profile=\"tds\",le=\"+Inf\"} 0\n",
        "s3credsfs_gateway_request_duration_seconds_sum{profile=\"tds\"} 0\n",
        "s3credsfs_gateway_request_duration_seconds_count{profile=\"tds\"} 0\n",
    ]
    .concat();
    assert_eq!(text, expected);
}

#[test]
fn a_stopped_mount_says_down() {
    let mut s = sample(Vec::new());
    s.up = false;
    assert!(render(&s).contains("\ns3credsfs_up{mountpoint=\"/home/u/.s3creds\"} 0\n"));
}

/// A label value with a quote, backslash or newline cannot end the label early or start a
/// line of its own (a forged sample).
#[test]
fn label_values_are_escaped() {
    assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    let mut s = sample(vec![ProfileSample {
        name: "x\"} 1\nforged_metric{a=\"".into(),
        expiration: Some(at(1_800_000_100)),
        last_refresh: None,
        counts: Counts::default(),
    }]);
    s.mountpoint = "/m\"} 0\ns3credsfs_up 1\\".into();
    let text = render(&s);
    assert!(
        !text.lines().any(|l| l.starts_with("forged_metric")),
        "{text}"
    );
    assert!(
        text.contains("s3credsfs_up{mountpoint=\"/m\\\"} 0\\ns3credsfs_up 1\\\\\"} 1\n"),
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("s3credsfs_up"))
            .count(),
        1,
        "{text}"
    );
    assert!(text.contains(
        "s3credsfs_credentials_expiry_seconds{profile=\"x\\\"} 1\\nforged_metric{a=\\\"\"} 100\n"
    ));
}

#[test]
fn every_cause_is_listed() {
    let errors = [
        Error::Config("c".into()),
        Error::RefreshTooSlow {
            url: "u".into(),
            budget: "b".into(),
        },
        Error::RefreshInactive {
            url: "u".into(),
            description: "d".into(),
        },
        Error::Token("t".into()),
        Error::StsForbidden {
            url: "u".into(),
            status: 403,
        },
        Error::HttpStatus {
            url: "u".into(),
            status: 500,
            detail: String::new(),
            fix: String::new(),
        },
        Error::Redirected {
            url: "u".into(),
            status: 302,
            location: "l".into(),
        },
        Error::TooLarge {
            url: "u".into(),
            limit: 1,
        },
        Error::BadReply {
            url: "u".into(),
            status: 200,
            problem: "p".into(),
        },
        Error::Unrenderable {
            key: "k",
            format: "f",
        },
        Error::Internal("i".into()),
        Error::PlainHttp {
            url: "u".into(),
            plain: "p".into(),
        },
        Error::Expired {
            url: "u".into(),
            expiration: "e".into(),
        },
    ];
    for error in &errors {
        assert!(CAUSES.contains(&cause_of(error)), "{error:?}");
    }
    let mut sorted = CAUSES.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, CAUSES, "sorted and unique, as the file lists them");
}

#[test]
fn buckets_hold_what_is_at_or_below_their_bound() {
    let mut h = Histogram::default();
    h.observe(Duration::from_millis(10));
    h.observe(Duration::from_millis(11));
    h.observe(Duration::from_secs(60));
    assert_eq!(h.buckets[0], 1);
    assert_eq!(h.buckets[1], 1);
    assert_eq!(h.buckets.iter().sum::<u64>(), 2);
    assert_eq!(h.count, 3);
}

/// Requests are timed into the profile whose refresh runs them, and nowhere outside one.
#[tokio::test]
async fn requests_are_timed_inside_a_refresh_only() {
    let metrics = Arc::new(ProfileMetrics::default());
    observe_request(Duration::from_millis(5));
    timing_requests(metrics.clone(), async {
        observe_request(Duration::from_millis(5));
        observe_request(Duration::from_millis(70));
    })
    .await;
    let h = metrics.counts().requests;
    assert_eq!((h.count, h.buckets[0], h.buckets[2]), (2, 1, 1));
}

/// Every record wakes the writer.
#[tokio::test]
async fn records_wake_the_writer() {
    let changed = Arc::new(tokio::sync::Notify::new());
    let metrics = ProfileMetrics::new(changed.clone());
    metrics.record_refresh(Trigger::Read, Err(&Error::Internal("i".into())));
    tokio::time::timeout(Duration::from_secs(5), changed.notified())
        .await
        .expect("a stored wake-up");
    assert_eq!(metrics.counts().failures["internal"], 1);
}
