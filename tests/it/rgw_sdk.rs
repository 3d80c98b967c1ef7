//! The JavaScript v3, Go v2, Rust and Java v2 AWS SDKs, each as a small program a user
//! would write (tests/sdk/, built by scripts/sdk-probes), with nothing but what the mount
//! serves: no region, keys or endpoint from the test (the endpoint from the config's
//! `endpoint_url` or the sourced `AWS_ENDPOINT_URL`; the Go probe also reports where each
//! call went; only Java's checksum setting, which RGW 16.2 needs, comes from the test).
//! Against the real Ceph RGW of the `rgw-tests` tier,
//! with credentials `dev-gateway --backend-sts` mints there by `AssumeRole`, as cray-sts
//! does. Every way is also shown to fail once the secret the SDK receives is altered by
//! one character, and a long-running program of each SDK renews its keys by itself
//! through `credential_process` and the container endpoint. Each round trip reads back
//! from RGW what it wrote there, so the calls went to the mount's endpoint (the Python
//! clients' loopback guard does not apply to these programs).

use crate::common;

use common::clients::*;
use common::rgw::OnRgw;
use common::sdk::{report, Sdk};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `bash -c SCRIPT ENV_FILE PROBE...` in `t`'s client environment (the mode is appended
/// by the caller), with the settings a run of `sdk` needs: `bucket`, no AWS file of the
/// host or `HOME` (and no region or endpoint: the mount's files give them).
fn probe_in(t: &OnRgw, sdk: Sdk, bucket: &str, script: &str, env_file: &Path) -> Command {
    let nowhere = t.env.home().join("no-such-file");
    let mut cmd = t.env.bash(script, env_file);
    cmd.args(sdk.probe())
        .env("S3_BUCKET", bucket)
        .env("AWS_SHARED_CREDENTIALS_FILE", &nowhere)
        .env("AWS_CONFIG_FILE", &nowhere);
    cmd
}

/// Runs the probe as is (`$0` unused).
const PLAIN: &str = r#"exec "$@""#;
/// Sources `$0` first: the keys, or the container endpoint, come from it.
const SOURCED: &str = r#"source "$0" && exec "$@""#;
/// As [`SOURCED`], with the secret altered after sourcing.
const SOURCED_TAMPERED: &str = r#"source "$0" &&
s=$AWS_SECRET_ACCESS_KEY && case $s in *A) t=B ;; *) t=A ;; esac &&
export AWS_SECRET_ACCESS_KEY="${s%?}$t" && exec "$@""#;
/// As [`SOURCED`], then the container endpoint replaced by `$TAMPERED_URI`.
const SOURCED_OTHER_ENDPOINT: &str = r#"source "$0" &&
export AWS_CONTAINER_CREDENTIALS_FULL_URI="$TAMPERED_URI" && exec "$@""#;

/// One round trip (put, list, get, after creating the bucket when `cmd` is told to) that
/// must succeed with `calls` calls, every one signed with the access key the mount serves
/// and (where the probe reports it) sent to the endpoint it serves; for Java, through the
/// credentials provider `java_provider` (the SDK's names for what its default chain
/// settled on: the way under test, not another).
fn round_trip(t: &OnRgw, sdk: Sdk, way: (&str, &str), calls: u64, cmd: &mut Command) {
    let (key, java_provider) = way;
    let ran = t.env.run(
        cmd.env("S3_KEY", key)
            .env("S3_BODY", unique_content(key))
            .arg("round-trip"),
    );
    let ran = ran.ok();
    let served = t.mount.access_key();
    let report = report(&ran);
    assert_eq!(report.calls, calls, "{sdk:?}: {}", ran.stdout);
    if sdk == Sdk::Java {
        assert_eq!(
            report.provider.as_deref(),
            Some(java_provider),
            "{key}: {}",
            ran.stdout
        );
    }
    assert!(
        report.keys.len() >= 3 && report.keys.iter().all(|k| *k == served),
        "{sdk:?} ({key}) signed with {:?}, the mount serves {served}",
        report.keys
    );
    let json: serde_json::Value = serde_json::from_str(&t.read("json")).expect("json");
    report.assert_sent_to(sdk, json["EndpointURL"].as_str().expect("EndpointURL"));
}

/// A round trip that S3 must refuse for a bad signature.
fn refused(t: &OnRgw, key: &str, cmd: &mut Command) {
    let ran = t.env.run(
        cmd.env("S3_KEY", key)
            .env("S3_BODY", unique_content(key))
            .arg("round-trip"),
    );
    assert_eq!(
        ran.status.code(),
        Some(3),
        "{key} should have been refused:\n{}\n{}",
        ran.stdout,
        ran.stderr
    );
    ran.refused("SignatureDoesNotMatch");
}

/// Serves `body` as JSON to every request on a loopback port of its own, until the test
/// ends; returns its URL. A tampered stand-in for the container endpoint.
fn serve_json(body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let url = format!("http://{}/credentials", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = write!(
                reader.get_mut(),
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// What the Java SDK names its `ProfileCredentialsProvider` running a profile's
/// `credential_process`, which it prefers to the profile's keys.
const PROFILE_PROCESS: &str = "CREDENTIALS_PROFILE_PROCESS,CREDENTIALS_PROCESS";

/// The four ways for `sdk`, each refused once the secret it receives is altered.
fn every_way(sdk: Sdk) {
    let t = OnRgw::start_with(&[], &["--container-endpoint"]);
    let bucket = format!("{}-ways", sdk.name());
    let env = &t.env;
    let (credentials, config) = (t.file("credentials"), t.file("config"));
    let nowhere = env.home().join("no-such-file");
    let files = |credentials: &Path, config: &Path| {
        let mut cmd = probe_in(&t, sdk, &bucket, PLAIN, &nowhere);
        cmd.env("AWS_SHARED_CREDENTIALS_FILE", credentials)
            .env("AWS_CONFIG_FILE", config);
        cmd
    };

    // 1. AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE into the mount; the SDK creates
    //    the bucket first.
    round_trip(
        &t,
        sdk,
        ("sdk-files/object", PROFILE_PROCESS),
        4,
        files(&credentials, &config).env("S3_CREATE_BUCKET", "1"),
    );
    let bad_credentials = env.write(
        "credentials-tampered",
        &tamper_ini(&t.read("credentials"), "aws_secret_access_key"),
    );
    if sdk.prefers_credential_process() {
        // The config's credential_process signs, not the credentials file's keys.
        round_trip(
            &t,
            sdk,
            ("sdk-files-process/object", PROFILE_PROCESS),
            3,
            &mut files(&bad_credentials, &config),
        );
    } else {
        refused(
            &t,
            "sdk-files/tampered",
            &mut files(&bad_credentials, &config),
        );
    }

    // 2. AWS_CONFIG_FILE alone: credential_process = cat MNT/json.
    round_trip(
        &t,
        sdk,
        ("sdk-process/object", PROFILE_PROCESS),
        3,
        &mut files(&nowhere, &config),
    );
    let bad_config = t.config_with_tampered_process();
    refused(
        &t,
        "sdk-process/tampered",
        &mut files(&nowhere, &bad_config),
    );
    if sdk.prefers_credential_process() {
        // With both tampered, the credential_process one is what fails.
        refused(
            &t,
            "sdk-files-process/tampered",
            &mut files(&credentials, &bad_config),
        );
    }

    // 3. The container endpoint: source MNT/container-env. A stand-in endpoint serving
    //    the same reply with the secret altered (the mount's token still sent): refused.
    let container_env = t.file("container-env");
    round_trip(
        &t,
        sdk,
        ("sdk-container/object", "CREDENTIALS_HTTP"),
        3,
        &mut probe_in(&t, sdk, &bucket, SOURCED, &container_env),
    );
    let json: serde_json::Value = serde_json::from_str(&t.read("json")).expect("json");
    let reply = serde_json::json!({
        "AccessKeyId": json["AccessKeyId"],
        "SecretAccessKey": tamper(json["SecretAccessKey"].as_str().expect("secret")),
        "Token": json["SessionToken"],
        "Expiration": json["Expiration"],
    });
    let mut tampered = probe_in(&t, sdk, &bucket, SOURCED_OTHER_ENDPOINT, &container_env);
    tampered.env("TAMPERED_URI", serve_json(reply.to_string()));
    refused(&t, "sdk-container/tampered", &mut tampered);

    // 4. source MNT/env: the keys (and the endpoint) from the environment only.
    let env_file = t.file("env");
    round_trip(
        &t,
        sdk,
        ("sdk-env/object", "CREDENTIALS_ENV_VARS"),
        3,
        &mut probe_in(&t, sdk, &bucket, SOURCED, &env_file),
    );
    refused(
        &t,
        "sdk-env/tampered",
        &mut probe_in(&t, sdk, &bucket, SOURCED_TAMPERED, &env_file),
    );
}

#[test]
fn javascript_v3_sdk_every_way_on_rgw() {
    every_way(Sdk::Js);
}

#[test]
fn go_v2_sdk_every_way_on_rgw() {
    every_way(Sdk::Go);
}

#[test]
fn rust_sdk_every_way_on_rgw() {
    every_way(Sdk::Rust);
}

#[test]
fn java_v2_sdk_every_way_on_rgw() {
    every_way(Sdk::Java);
}

/// The Java SDK v2 (2.30 and later) sends an upload's checksum in an aws-chunked trailer
/// by default, which RGW 16.2 refuses (XAmzContentSHA256Mismatch) with the mount's right
/// keys. The mount's `config` (like its `env` and `container-env`) says
/// `request_checksum_calculation = when_required`, which is all the ways above need; this
/// shows that line is what makes them work: without it RGW refuses the same keys. When
/// this starts failing the SDK or RGW changed, and the setting can go.
#[test]
fn java_v2_sdk_on_rgw_needs_the_mounts_checksum_setting() {
    let t = OnRgw::start();
    let bucket = t.bucket("java-checksums");
    let served = t.read("config");
    assert!(
        served.contains("\nrequest_checksum_calculation = when_required\n"),
        "{served}"
    );
    let without: String = served
        .lines()
        .filter(|line| !line.starts_with("request_checksum_calculation"))
        .map(|line| format!("{line}\n"))
        .collect();
    let config = t.env.home().join("config-without-checksum-setting");
    std::fs::write(&config, without).expect("write the config copy");
    let mut cmd = probe_in(&t, Sdk::Java, &bucket, PLAIN, &config);
    let ran = t.env.run(
        cmd.env("AWS_CONFIG_FILE", &config)
            .env("S3_KEY", "object")
            .env("S3_BODY", unique_content("java-checksums"))
            .arg("round-trip"),
    );
    assert_eq!(ran.status.code(), Some(3), "{}\n{}", ran.stdout, ran.stderr);
    ran.refused("XAmzContentSHA256Mismatch");
}

/// What the mount advertises (RGW's keys live the hour cray-sts asks for); the mount
/// renews them when under half remains.
const LIFETIME: Duration = Duration::from_secs(6);

/// A long-running probe stops once its calls were signed with [`LONG_RUNNING_KEYS`]
/// different access keys (three renewals) and three lifetimes have passed...
const LIFETIMES: u32 = 3;

/// ...or after this long, far more than the `LONG_RUNNING_KEYS` lifetimes it needs.
const GIVE_UP: Duration = Duration::from_secs(90);

/// Panics unless the long-running probe `ran` ran for `LIFETIMES` lifetimes and moved on to
/// [`LONG_RUNNING_KEYS`] keys, each used for a stretch and never again once replaced
/// (`ok()` already showed that no call failed).
fn renewed_by_itself(sdk: Sdk, way: &str, ran: &Ran) {
    let report = report(ran);
    let what = format!(
        "{sdk:?} through {way} ({:.1} s, {} calls)",
        report.seconds, report.calls
    );
    let distinct = renewed(&what, &report.keys);
    assert!(
        report.seconds >= (LIFETIME * LIFETIMES).as_secs_f64(),
        "{what} stopped before {LIFETIMES} lifetimes"
    );
    // Every key between the first (picked up at whatever point of its life the program
    // started) and the newest signed several calls: renewed near its end. A cold JVM
    // (three start at once here) is slow for its first seconds (class loading, first
    // connections): on a loaded machine that can also use up most of the second key's
    // ~3 s, which then signs a call or two, so for Java it is asked from the third key on.
    let first_steady = if sdk == Sdk::Java { 2 } else { 1 };
    for key in &distinct[first_steady..distinct.len() - 1] {
        let uses = report.keys.iter().filter(|k| *k == key).count();
        assert!(
            uses >= 4,
            "{sdk:?} through {way}: key {key} signed only {uses} calls: {:?}",
            report.keys
        );
    }
    println!(
        "{sdk:?} through {way}: {} calls in {:.1} s signed with {} keys",
        report.calls,
        report.seconds,
        distinct.len()
    );
}

/// Panics unless the long-running probe `ran` signed every call of `LIFETIMES` lifetimes
/// with the one key it read first: it never re-read the mounted files.
fn kept_its_first_key(sdk: Sdk, way: &str, ran: &Ran) {
    let report = report(ran);
    let mut distinct = report.keys.clone();
    distinct.dedup();
    assert!(
        distinct.len() == 1 && report.seconds >= (LIFETIME * LIFETIMES).as_secs_f64(),
        "{sdk:?} through {way} signed with {} keys in {:.1} s: {distinct:?}",
        distinct.len(),
        report.seconds
    );
    println!(
        "{sdk:?} through {way}: {} calls in {:.1} s signed with its first key only",
        report.calls, report.seconds
    );
}

/// Long-running probes side by side: through `credential_process` (AWS_CONFIG_FILE=
/// MNT/config), through the container endpoint (source MNT/container-env), and through
/// both files (AWS_SHARED_CREDENTIALS_FILE=MNT/credentials too), where only an SDK that
/// prefers the config's `credential_process` renews.
fn renews_by_itself(sdk: Sdk) {
    let lifetime = format!("{}s", LIFETIME.as_secs());
    let t = OnRgw::start_with(
        &["--lifetime", &lifetime],
        &["--container-endpoint", "--min-validity", "3s"],
    );
    let bucket = t.bucket(&format!("{}-renewal", sdk.name()));
    let long_running = |script: &str, file: &Path, prefix: &str, give_up: Duration| {
        let mut cmd = probe_in(&t, sdk, &bucket, script, file);
        cmd.arg("long-running")
            .env("S3_KEY", prefix)
            .env("WANTED_KEYS", LONG_RUNNING_KEYS.to_string())
            .env("MIN_SECONDS", (LIFETIME * LIFETIMES).as_secs().to_string())
            .env("GIVE_UP_SECONDS", give_up.as_secs().to_string());
        cmd
    };
    let (config, container_env) = (t.file("config"), t.file("container-env"));
    let [process, container, files] = std::thread::scope(|s| {
        let process = s.spawn(|| {
            let mut cmd = long_running(PLAIN, &config, "long-running-process", GIVE_UP);
            t.env.run(cmd.env("AWS_CONFIG_FILE", &config)).ok()
        });
        let container = s.spawn(|| {
            let mut cmd = long_running(SOURCED, &container_env, "long-running-container", GIVE_UP);
            t.env.run(&mut cmd).ok()
        });
        let files = s.spawn(|| {
            let mut cmd = long_running(PLAIN, &config, "long-running-files", LIFETIME * LIFETIMES);
            cmd.env("AWS_CONFIG_FILE", &config)
                .env("AWS_SHARED_CREDENTIALS_FILE", t.file("credentials"));
            t.env.run(&mut cmd).ok()
        });
        [process, container, files].map(|h| h.join().unwrap())
    });
    renewed_by_itself(sdk, "credential_process", &process);
    renewed_by_itself(sdk, "the container endpoint", &container);
    if sdk.prefers_credential_process() {
        renewed_by_itself(sdk, "both files", &files);
    } else {
        kept_its_first_key(sdk, "both files", &files);
    }
}

#[test]
fn a_long_running_javascript_v3_sdk_program_renews_by_itself_on_rgw() {
    renews_by_itself(Sdk::Js);
}

#[test]
fn a_long_running_go_v2_sdk_program_renews_by_itself_on_rgw() {
    renews_by_itself(Sdk::Go);
}

#[test]
fn a_long_running_rust_sdk_program_renews_by_itself_on_rgw() {
    renews_by_itself(Sdk::Rust);
}

#[test]
fn a_long_running_java_v2_sdk_program_renews_by_itself_on_rgw() {
    renews_by_itself(Sdk::Java);
}
