//! Hadoop's S3A connector (hadoop-aws 3.4 on the AWS SDK v2, the file system under
//! Spark's `s3a://` paths), as tests/sdk/hadoop/core-site.xml configures it: the mount's
//! endpoint and region, path-style access, and the SDK's `ProfileCredentialsProvider`
//! running the mounted config's `credential_process`. Against the real Ceph RGW of the
//! `rgw-tests` tier, which checks every signature; refused once that secret is altered
//! by one character.

use crate::common;

use common::clients::*;
use common::rgw::OnRgw;
use common::sdk::report;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where scripts/sdk-probes puts the S3A probe, beside the SDK probes.
fn probe() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test binary lies in TARGET/debug/deps");
    let probe = target.join("sdk-probes/hadoop-probe");
    assert!(
        probe.exists(),
        "{} is missing: run scripts/sdk-probes (scripts/test runs it), which builds it",
        probe.display()
    );
    probe
}

/// tests/sdk/hadoop/core-site.xml with the mount's endpoint and region filled in.
fn core_site(t: &OnRgw) -> PathBuf {
    let json: serde_json::Value = serde_json::from_str(&t.read("json")).expect("json");
    let region = t
        .read("config")
        .lines()
        .find_map(|l| l.strip_prefix("region = ").map(str::to_owned))
        .expect("the mounted config has a region");
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/hadoop/core-site.xml"),
    )
    .expect("tests/sdk/hadoop/core-site.xml");
    let endpoint = json["EndpointURL"].as_str().expect("EndpointURL");
    t.env.write(
        "core-site.xml",
        &template
            .replace("ENDPOINT_URL", endpoint)
            .replace("REGION", &region),
    )
}

/// The probe writing, listing and reading `key` in `bucket` with `config` as
/// `AWS_CONFIG_FILE` and nothing else: no credentials file, no keys in the environment
/// (the config's `request_checksum_calculation`, which RGW 16.2 needs of the SDK modules
/// 2.30 and later, comes from the mount: see rgw_sdk.rs's
/// java_v2_sdk_on_rgw_needs_the_mounts_checksum_setting).
fn s3a(t: &OnRgw, config: &Path, bucket: &str, key: &str) -> Command {
    let mut cmd = t.env.command(probe());
    cmd.arg(core_site(t))
        .env("AWS_CONFIG_FILE", config)
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            t.env.home().join("no-such-file"),
        )
        .env("S3_BUCKET", bucket)
        .env("S3_KEY", key)
        .env("S3_BODY", unique_content(key));
    cmd
}

#[test]
fn hadoop_s3a_writes_lists_and_reads_with_the_mounted_config_on_rgw() {
    let t = OnRgw::start();
    let bucket = t.bucket("s3a");
    let ran = t
        .env
        .run(&mut s3a(&t, &t.file("config"), &bucket, "s3a/object"))
        .ok();
    let report = report(&ran);
    let served = t.mount.access_key();
    assert!(
        report.keys.len() >= 3 && report.keys.iter().all(|k| *k == served),
        "S3A signed with {:?}, the mount serves {served}",
        report.keys
    );
    let bad = t.config_with_tampered_process();
    let ran = t.env.run(&mut s3a(&t, &bad, &bucket, "s3a/tampered"));
    assert_eq!(ran.status.code(), Some(3), "{}\n{}", ran.stdout, ran.stderr);
    ran.refused("SignatureDoesNotMatch");
}
