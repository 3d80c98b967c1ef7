//! s3cmd and rclone with the configuration files the mount serves, against a real S3 that
//! checks signatures (moto), with credentials the built-in gateway mints there by
//! `AssumeRole`; and each refused once the served secret is tampered with. Each tool runs
//! with an empty environment and a temporary `HOME` ([`ClientEnv`]).

use crate::common;

use common::clients::*;

#[test]
fn s3cmd_with_the_mounted_s3cfg() {
    require_tool("s3cmd");
    let t = MountedS3::start(|_| {}, &[]);
    let (env, bucket) = (&t.env, t.bucket());
    let s3cfg = t.file("s3cfg");
    let content = unique_content("s3cmd");
    let local = env.write("upload", &content);
    let object = format!("s3://{bucket}/s3cmd/object");

    // 6. `-c MNT/s3cfg`: put, list, get, with no warning at all.
    let runs = [
        env.run(env.bash(S3CMD, &s3cfg).arg("put").arg(&local).arg(&object))
            .ok(),
        env.run(
            env.bash(S3CMD, &s3cfg)
                .arg("ls")
                .arg(format!("s3://{bucket}/s3cmd/")),
        )
        .ok(),
        env.run(env.bash(S3CMD, &s3cfg).args(["get", &object, "-"]))
            .ok(),
    ];
    assert!(
        runs[1]
            .stdout
            .lines()
            .any(|l| l.ends_with(&format!(" {object}"))),
        "`s3cmd ls` does not show {object}:\n{}",
        runs[1].stdout
    );
    assert_eq!(runs[2].stdout, content, "the object read back");
    for ran in &runs {
        assert!(
            ran.warnings().is_empty(),
            "`{}` warned:\n{}",
            ran.what,
            ran.stderr
        );
    }
    env.assert_stayed_on_loopback();

    // The same with a copy of s3cfg whose secret_key is altered: refused.
    let bad = env.write(
        "s3cfg-tampered",
        &tamper_ini(&t.read("s3cfg"), "secret_key"),
    );
    env.run(
        env.bash(S3CMD, &bad)
            .arg("ls")
            .arg(format!("s3://{bucket}/s3cmd/")),
    )
    .refused("SignatureDoesNotMatch");
}

#[test]
fn plain_s3cmd_looks_for_an_instance_role_first() {
    require_tool("s3cmd");
    let t = MountedS3::start(|_| {}, &[]);
    let (env, bucket) = (&t.env, t.bucket());
    // A plain `s3cmd -c MNT/s3cfg ls` works, but s3cmd 2.4 takes a session token from a
    // config file for an expiring role and tries to "refresh" it from the instance
    // metadata service (169.254.169.254:80, 2 s timeout each) before each request. No
    // config key can stop that (the flag is `_access_token_refresh`, and keys starting
    // with `_` are not read from the file); only `--access_token` or AWS_SESSION_TOKEN
    // with the keys in the environment do. The guard refused the connections here, so
    // nothing left the machine.
    let ran = env
        .run(
            env.command("s3cmd")
                .arg("-c")
                .arg(t.file("s3cfg"))
                .args(["ls", &format!("s3://{bucket}/")]),
        )
        .ok();
    assert!(
        ran.warnings()
            .iter()
            .any(|w| w.contains("Could not refresh role")),
        "s3cmd 2.4 warns about the role:\n{}",
        ran.stderr
    );
    let blocked = env.blocked_connections();
    assert!(
        !blocked.is_empty() && blocked.iter().all(|b| b == "169.254.169.254:80"),
        "{blocked:?}"
    );
}

#[test]
fn rclone_with_the_mounted_remote() {
    require_tool("rclone");
    let t = MountedS3::start(|_| {}, &[]);
    let (env, bucket) = (&t.env, t.bucket());
    let rclone = |config: &std::path::Path| {
        let mut cmd = env.command("rclone");
        cmd.arg("--config").arg(config).args(["--retries", "1"]);
        cmd
    };
    let conf = t.file("rclone.conf");
    let content = unique_content("rclone");
    let local = env.write("upload", &content);
    // 7. `--config MNT/rclone.conf`; the remote is named after the profile, `default`.
    let object = format!("default:{bucket}/rclone/object");
    env.run(rclone(&conf).arg("copyto").arg(&local).arg(&object))
        .ok();
    let listed = env
        .run(rclone(&conf).args(["lsf", &format!("default:{bucket}/rclone")]))
        .ok();
    assert_eq!(listed.stdout, "object\n");
    let read = env.run(rclone(&conf).args(["cat", &object])).ok();
    assert_eq!(read.stdout, content, "the object read back");

    // A copy of the remote with secret_access_key altered: refused.
    let bad = env.write(
        "rclone-tampered.conf",
        &tamper_ini(&t.read("rclone.conf"), "secret_access_key"),
    );
    env.run(rclone(&bad).args(["lsf", &format!("default:{bucket}")]))
        .refused("SignatureDoesNotMatch");

    // The quirk docs/clients.md warns about: Debian's rclone 1.60 refuses every s3 remote
    // when AWS_CA_BUNDLE is set (the clients above ran without it).
    let ca = env.write("ca.pem", &common::test_tls().0);
    let ran = env.run(
        rclone(&conf)
            .args(["lsf", &format!("default:{bucket}/rclone")])
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
