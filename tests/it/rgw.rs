//! Every client, through the mount, against a real Ceph RGW (`scripts/rgw up`, Debian's
//! 16.2, the release CSM 1.4 runs): `s3credsfs dev-gateway --backend-sts` calls RGW's
//! `AssumeRole` as cray-sts does (the service user's keys, one role with `s3:*`,
//! `DurationSeconds` 3600), a real FUSE mount serves what it hands out, and the AWS CLI,
//! boto3, s3cmd, rclone and curl `--aws-sigv4` each create a bucket, put, list and get
//! with nothing but what the mount serves. Each is then refused by RGW
//! (`SignatureDoesNotMatch`) once the secret it reads is altered by one character, so no
//! client can pass without the served credentials doing the work. The JavaScript, Go and
//! Rust SDK probes do the same, every way, in `rgw_sdk`; `fetch` and `exec` are in
//! `rgw_commands`.

use crate::common;

use common::clients::*;
use common::rgw::{OnRgw, AHEAD_SECONDS, AWS_BAD_SIGNATURE, AWS_ERROR_CODE};
use common::s3::on_path;
use common::wait_for;
use std::path::Path;
use std::time::Duration;

#[test]
fn aws_cli_on_rgw() {
    require_tool("aws");
    let t = OnRgw::start();
    let env = &t.env;
    let aws = |credentials: &Path| {
        let mut cmd = env.command("aws");
        cmd.env("AWS_SHARED_CREDENTIALS_FILE", credentials)
            .env("AWS_CONFIG_FILE", t.file("config"));
        cmd
    };
    let credentials = t.file("credentials");
    env.run(aws(&credentials).args(["s3", "mb", "s3://aws-cli"]))
        .ok();
    aws_round_trip(env, "aws-cli", "object", || aws(&credentials));
    // The credentials file is what signs: with its secret altered (and the mounted config,
    // whose credential_process would give good keys, still in place) RGW refuses.
    let bad = t.tampered("credentials", "aws_secret_access_key");
    aws_refused(env, "aws-cli", AWS_BAD_SIGNATURE, || {
        let mut cmd = env.bash(AWS_ERROR_CODE, "aws");
        cmd.env("AWS_SHARED_CREDENTIALS_FILE", &bad)
            .env("AWS_CONFIG_FILE", t.file("config"));
        cmd
    });

    // AWS_CONFIG_FILE alone: the keys come from its `credential_process = cat MNT/json`;
    // with it reading a copy of `json` whose secret is altered, refused.
    let nowhere = env.home().join("no-such-file");
    aws_round_trip(env, "aws-cli", "credential-process/object", || {
        aws(&nowhere)
    });
    let bad_config = t.config_with_tampered_process();
    aws_refused(env, "aws-cli", AWS_BAD_SIGNATURE, || {
        let mut cmd = env.bash(AWS_ERROR_CODE, "aws");
        cmd.env("AWS_SHARED_CREDENTIALS_FILE", &nowhere)
            .env("AWS_CONFIG_FILE", &bad_config);
        cmd
    });

    // `source MNT/env`, no AWS file at all: the keys and the endpoint from the variables.
    let sourced = |tamper: &str, run: &str| {
        let mut cmd = env.bash(
            &format!("source \"$0\" || exit 1\n{tamper}{run}"),
            t.file("env"),
        );
        cmd.env("AWS_SHARED_CREDENTIALS_FILE", &nowhere)
            .env("AWS_CONFIG_FILE", &nowhere);
        cmd
    };
    aws_round_trip(env, "aws-cli", "sourced-env/object", || {
        sourced("", r#"exec aws "$@""#)
    });
    aws_refused(env, "aws-cli", AWS_BAD_SIGNATURE, || {
        sourced(TAMPER_SECRET, AWS_ERROR_CODE)
    });
    env.assert_stayed_on_loopback();
}

/// boto3 as a program uses it (`boto3.Session()`, nothing passed in): creates `S3_BUCKET`,
/// puts, lists, gets; exits 3 with S3's error code on a refusal.
const BOTO3: &str = r#"
import os, sys, boto3, botocore
s3 = boto3.Session().client("s3")
bucket, key, body = os.environ["S3_BUCKET"], "object", os.environ["S3_BODY"].encode()
try:
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
except botocore.exceptions.ClientError as e:
    print(e.response["Error"]["Code"])
    sys.exit(3)
print("ok")
"#;

#[test]
fn boto3_on_rgw() {
    let python = on_path("python3").expect("python3 on PATH");
    let t = OnRgw::start();
    let env = &t.env;
    let boto3 = |credentials: &Path, bucket: &str| {
        let mut cmd = env.command(&python);
        cmd.args(["-c", BOTO3])
            .env("AWS_SHARED_CREDENTIALS_FILE", credentials)
            .env("AWS_CONFIG_FILE", t.file("config"))
            .env("S3_BUCKET", bucket)
            .env("S3_BODY", unique_content(bucket));
        cmd
    };
    let ran = env.run(&mut boto3(&t.file("credentials"), "boto3")).ok();
    assert_eq!(ran.stdout.trim(), "ok");
    let bad = t.tampered("credentials", "aws_secret_access_key");
    let ran = env.run(&mut boto3(&bad, "boto3-tampered"));
    assert_eq!(
        (ran.status.code(), ran.stdout.trim()),
        (Some(3), "SignatureDoesNotMatch"),
        "{}",
        ran.stderr
    );
    // RGW checks the session token too: altered or left out, refused with 403
    // AccessDenied (AWS's own codes for these are on moto, in `backend_sts`).
    let credentials = t.read("credentials");
    let wrong_token = env.write(
        "credentials-wrong-token",
        &tamper_ini(&credentials, "aws_session_token"),
    );
    let without: String = credentials
        .lines()
        .filter(|l| !l.starts_with("aws_session_token = "))
        .map(|l| format!("{l}\n"))
        .collect();
    let no_token = env.write("credentials-no-token", &without);
    for (bad, bucket) in [
        (wrong_token, "boto3-wrong-token"),
        (no_token, "boto3-no-token"),
    ] {
        let ran = env.run(&mut boto3(&bad, bucket));
        assert_eq!(
            (ran.status.code(), ran.stdout.trim()),
            (Some(3), "AccessDenied"),
            "{bucket}: {}",
            ran.stderr
        );
    }
    env.assert_stayed_on_loopback();
}

#[test]
fn s3cmd_on_rgw() {
    require_tool("s3cmd");
    let t = OnRgw::start();
    let env = &t.env;
    let s3cfg = t.file("s3cfg");
    let s3cmd = |args: &[&str]| {
        let mut cmd = env.bash(S3CMD, &s3cfg);
        cmd.args(args);
        cmd
    };
    let content = unique_content("s3cmd");
    let local = env.write("upload", &content);
    // As docs/clients.md says to run it: create, put, list, get, with no warning at all.
    let runs = [
        env.run(&mut s3cmd(&["mb", "s3://s3cmd"])).ok(),
        env.run(s3cmd(&["put"]).arg(&local).arg("s3://s3cmd/object"))
            .ok(),
        env.run(&mut s3cmd(&["ls", "s3://s3cmd/"])).ok(),
        env.run(&mut s3cmd(&["get", "s3://s3cmd/object", "-"])).ok(),
    ];
    assert!(
        runs[2]
            .stdout
            .lines()
            .any(|l| l.ends_with(" s3://s3cmd/object")),
        "{}",
        runs[2].stdout
    );
    assert_eq!(runs[3].stdout, content, "the object read back");
    for ran in &runs {
        assert!(
            ran.warnings().is_empty(),
            "`{}` warned:\n{}",
            ran.what,
            ran.stderr
        );
    }
    env.assert_stayed_on_loopback();

    let bad = t.tampered("s3cfg", "secret_key");
    env.run(env.bash(S3CMD, &bad).args(["ls", "s3://s3cmd/"]))
        .refused("SignatureDoesNotMatch");

    // A plain `s3cmd -c MNT/s3cfg ls` works, but s3cmd 2.4 takes a session token from a
    // config file for an expiring role and tries to "refresh" it from the instance
    // metadata service (169.254.169.254:80, 2 s timeout each) before each request. No
    // config key can stop that (the flag is `_access_token_refresh`, and keys starting
    // with `_` are not read from the file); only `--access_token` or AWS_SESSION_TOKEN
    // with the keys in the environment do, which is why [`S3CMD`] passes it. The guard
    // refuses the connections here, so nothing leaves the machine.
    let plain = env
        .run(
            env.command("s3cmd")
                .arg("-c")
                .arg(&s3cfg)
                .args(["ls", "s3://s3cmd/"]),
        )
        .ok();
    assert!(
        plain
            .warnings()
            .iter()
            .any(|w| w.contains("Could not refresh role")),
        "s3cmd 2.4 warns about the role:\n{}",
        plain.stderr
    );
    let blocked = env.blocked_connections();
    assert!(
        !blocked.is_empty() && blocked.iter().all(|b| b == "169.254.169.254:80"),
        "{blocked:?}"
    );
}

#[test]
fn rclone_on_rgw() {
    require_tool("rclone");
    let t = OnRgw::start();
    let env = &t.env;
    let rclone = |config: &Path| {
        let mut cmd = env.command("rclone");
        cmd.arg("--config").arg(config).args(["--retries", "1"]);
        cmd
    };
    let conf = t.file("rclone.conf");
    let content = unique_content("rclone");
    let local = env.write("upload", &content);
    env.run(rclone(&conf).args(["mkdir", "default:rclone"]))
        .ok();
    env.run(
        rclone(&conf)
            .arg("copyto")
            .arg(&local)
            .arg("default:rclone/object"),
    )
    .ok();
    let listed = env.run(rclone(&conf).args(["lsf", "default:rclone"])).ok();
    assert_eq!(listed.stdout, "object\n");
    let read = env
        .run(rclone(&conf).args(["cat", "default:rclone/object"]))
        .ok();
    assert_eq!(read.stdout, content, "the object read back");

    let bad = t.tampered("rclone.conf", "secret_access_key");
    env.run(rclone(&bad).args(["lsf", "default:rclone"]))
        .refused("SignatureDoesNotMatch");

    // The quirk docs/clients.md warns about: Debian's rclone 1.60 refuses every s3 remote
    // when AWS_CA_BUNDLE is set (the runs above had it unset).
    let ca = env.write("ca.pem", &common::test_tls().0);
    let ran = env.run(
        rclone(&conf)
            .args(["lsf", "default:rclone"])
            .env("AWS_CA_BUNDLE", &ca),
    );
    let version = env.run(env.command("rclone").arg("version")).ok().stdout;
    if version.starts_with("rclone v1.60.") {
        ran.refused("LoadCustomCABundleError");
    } else {
        // A newer rclone: the docs' advice is only needed for 1.60.
        assert_eq!(ran.ok().stdout, "object\n", "{version}");
    }
}

#[test]
fn curl_aws_sigv4_on_rgw() {
    require_tool("jq");
    require_tool("curl");
    let t = OnRgw::start();
    let env = &t.env;
    let json = t.file("json");
    let curl = |script: &str, path: &str| {
        let mut cmd = env.bash(&format!("{JQ_CURL}{script}{REQUEST}"), &json);
        cmd.arg(path);
        cmd
    };
    let content = unique_content("curl");
    let local = env.write("upload", &content);
    env.run(curl("", "curl").args(["-X", "PUT"])).ok();
    env.run(curl("", "curl/object").arg("-T").arg(&local)).ok();
    let listed = env.run(&mut curl("", "curl?list-type=2")).ok();
    assert!(
        listed.stdout.contains("<Key>object</Key>"),
        "{}",
        listed.stdout
    );
    let read = env.run(&mut curl("", "curl/object")).ok();
    assert_eq!(read.stdout, content, "the object read back");

    env.run(&mut curl(TAMPER_SECRET, "curl/object"))
        .refused("SignatureDoesNotMatch");
}

/// What the mount advertises; RGW is asked for an hour, as cray-sts asks, so every key served
/// stays valid at RGW long after the mount replaced it.
const LIFETIME: &str = "6s";
/// The mount renews once less than this is left: every 3 s.
const MIN_VALIDITY: &str = "3s";
/// A long-running program stops once its calls were signed with [`LONG_RUNNING_KEYS`]
/// keys (three renewals), or after this long, far more than the ~10 s that takes.
const GIVE_UP: Duration = Duration::from_secs(90);

/// `source "$0"` (the mounted `container-env`), then the program: its keys come from the
/// container endpoint only.
const SOURCED: &str = r#"source "$0" && exec "$@""#;

/// A long-running boto3 through `credential_process` and through the container endpoint
/// (the SDKs' long-running programs are in `rgw_sdk`, `exec`'s in `rgw_commands`).
#[test]
fn long_running_boto3_renews_on_rgw() {
    let python = on_path("python3").expect("python3 on PATH");
    let t = OnRgw::start_with(
        &["--lifetime", LIFETIME],
        &["--container-endpoint", "--min-validity", MIN_VALIDITY],
    );
    let env = &t.env;
    let nowhere = env.home().join("no-such-file");
    // One bucket for each way boto3 runs (its program writes the same object names).
    for bucket in ["renewal-process", "renewal-container"] {
        t.bucket(bucket);
    }

    let (config, container_env) = (t.file("config"), t.file("container-env"));
    // The long-running boto3 script (tests/s3/long_running.py) with AWS_CONFIG_FILE
    // (credential_process) or through the container endpoint.
    let boto3 = |through_process: bool| {
        let (mut cmd, bucket) = if through_process {
            let mut cmd = env.command(&python);
            cmd.env("AWS_CONFIG_FILE", &config);
            (cmd, "renewal-process")
        } else {
            let mut cmd = env.bash(SOURCED, &container_env);
            cmd.arg(&python).env("AWS_CONFIG_FILE", &nowhere);
            (cmd, "renewal-container")
        };
        long_running(&mut cmd, bucket, GIVE_UP)
            .arg(long_running_script())
            .env("AWS_SHARED_CREDENTIALS_FILE", &nowhere);
        cmd
    };
    let [process, container] = std::thread::scope(|s| {
        [
            s.spawn(|| env.run(&mut boto3(true)).ok()),
            s.spawn(|| env.run(&mut boto3(false)).ok()),
        ]
        .map(|h| h.join().unwrap())
    });
    // Every call succeeded (`ok()`), so RGW accepted every key served.
    let run = LongRun::check(&process, "custom-process");
    LongRun::check(&container, "container-role");
    // Through credential_process every key between the first (picked up at whatever point
    // of its life the program started) and the newest signed several calls: the mount
    // renewed near its end, not on every read.
    for key in &run.distinct[1..run.distinct.len() - 1] {
        let uses = run.keys.iter().filter(|k| *k == key).count();
        assert!(
            uses >= 4,
            "key {key} signed only {uses} calls: {:?}",
            run.keys
        );
    }
    env.assert_stayed_on_loopback();
}

/// The time on the `Date` header of `endpoint`'s reply to `GET /`: that server's clock.
fn server_clock(endpoint: &str) -> chrono::DateTime<chrono::Utc> {
    use std::io::{Read, Write};
    let address = endpoint.strip_prefix("http://").expect("an http endpoint");
    let mut stream = std::net::TcpStream::connect(address).expect("connect to RGW");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    let date = reply
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(name, _)| name.eq_ignore_ascii_case("date"))
        })
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_else(|| panic!("no Date header from {endpoint}: {reply}"));
    chrono::DateTime::parse_from_rfc2822(&date)
        .unwrap_or_else(|e| panic!("Date {date:?} from {endpoint}: {e}"))
        .with_timezone(&chrono::Utc)
}

#[test]
fn rgw_refuses_credentials_past_their_real_expiry() {
    let python = on_path("python3").expect("python3 on PATH");
    // The hour cray-sts asks RGW for: what the mount advertises is RGW's own expiry.
    let t = OnRgw::start_with(&["--lifetime", "1h"], &[]);
    let env = &t.env;
    let served: serde_json::Value = serde_json::from_str(&t.read("json")).expect("json");
    let expiration =
        chrono::DateTime::parse_from_rfc3339(served["Expiration"].as_str().expect("Expiration"))
            .expect("an RFC 3339 Expiration")
            .with_timezone(&chrono::Utc);
    // With the served keys only (from the environment), at `endpoint`.
    let boto3 = |endpoint: &str, bucket: &str| {
        let mut cmd = env.command(&python);
        cmd.args(["-c", BOTO3])
            .env("AWS_ACCESS_KEY_ID", served["AccessKeyId"].as_str().unwrap())
            .env(
                "AWS_SECRET_ACCESS_KEY",
                served["SecretAccessKey"].as_str().unwrap(),
            )
            .env(
                "AWS_SESSION_TOKEN",
                served["SessionToken"].as_str().unwrap(),
            )
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", env.home().join("no-such-file"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                env.home().join("no-such-file"),
            )
            .env("S3_BUCKET", bucket)
            .env("S3_BODY", unique_content(bucket));
        cmd
    };
    let ahead = &t.rgw.ahead_endpoint;
    // Its clients run as far ahead: RGW refuses a request signed 15 minutes off its clock.
    let boto3_ahead = |bucket: &str| {
        let mut cmd = boto3(ahead, bucket);
        cmd.env("LD_PRELOAD", &t.rgw.faketime_lib)
            .env("FAKETIME", format!("+{AHEAD_SECONDS}s"))
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        cmd
    };
    // While the clock ahead is still before the expiry, the RGW there takes the keys.
    let skew = server_clock(ahead) - chrono::Utc::now();
    assert!(
        (skew.num_seconds() - AHEAD_SECONDS).abs() <= 2,
        "the RGW at {ahead} runs {skew} ahead, not {AHEAD_SECONDS} s"
    );
    assert!(
        server_clock(ahead) < expiration,
        "the test started too late: the clock ahead is past {expiration} already"
    );
    env.run(&mut boto3_ahead("expiry-before")).ok();
    // Once that clock is past the expiry (the same RGW, the same keys), it refuses them
    // with 403 AccessDenied, not AWS's ExpiredToken.
    wait_for(
        "the clock ahead to pass the expiry",
        Duration::from_secs(60),
        || server_clock(ahead) > expiration + chrono::Duration::seconds(1),
    );
    let ran = env.run(&mut boto3_ahead("expiry-after"));
    assert_eq!(
        (ran.status.code(), ran.stdout.trim()),
        (Some(3), "AccessDenied"),
        "{}",
        ran.stderr
    );
    // The keys themselves are fine: at the RGW on real time, still before the expiry.
    assert!(chrono::Utc::now() < expiration);
    env.run(&mut boto3(&t.rgw.endpoint, "expiry-real-time"))
        .ok();
}

#[test]
fn with_the_gateway_stopped_reads_fail_once_the_served_keys_expire() {
    let mut t = OnRgw::start_with(&["--lifetime", "6s"], &["--min-validity", "2s"]);
    let served = t.read("json");
    t.gateway.take();
    // No new keys can come; the mount must stop serving the old ones by their expiry.
    let mut last = Ok(served);
    wait_for("EIO from the mount", Duration::from_secs(30), || {
        last = t.mount.read("json");
        if let Ok(json) = &last {
            // Every key it still serves is unexpired when read (`Expiration` is written in
            // whole seconds, rounded down, so it may show up to a second before the end).
            let json: serde_json::Value = serde_json::from_str(json).expect("json");
            let expiration = json["Expiration"].as_str().expect("Expiration");
            let end = chrono::DateTime::parse_from_rfc3339(expiration).unwrap()
                + chrono::Duration::seconds(1);
            assert!(
                end > chrono::Utc::now(),
                "served {} past its Expiration {expiration}",
                json["AccessKeyId"]
            );
        }
        last.is_err()
    });
    let err = last.expect_err("a failed read");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
}
