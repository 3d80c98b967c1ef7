//! A long-running boto3 process keeps working across several credential lifetimes,
//! picking up new credentials by itself through the mounted `config`'s
//! `credential_process = cat MNT/json`, against a real S3 that checks signatures (moto).
//! moto does not check expiry, so the proof of refresh is that the access key the process
//! signs with changes while it runs, with no call failing.

use crate::common;

use common::clients::*;
use std::time::Duration;

/// Credentials live this long; the mount renews them when under half remains.
const LIFETIME: Duration = Duration::from_secs(6);

/// The long-running process gives up after this long, far more than the
/// [`LONG_RUNNING_KEYS`] lifetimes it needs.
const GIVE_UP: Duration = Duration::from_secs(90);

#[test]
fn a_long_running_boto3_process_refreshes_through_credential_process() {
    let t = MountedS3::start(|c| c.lifetime = LIFETIME, &["--min-validity", "3s"]);
    let env = &t.env;
    // 5. AWS_CONFIG_FILE=MNT/config only.
    let ran = env
        .run(
            long_running(&mut env.command(&t.s3.python), t.bucket(), GIVE_UP)
                .arg(long_running_script())
                .env("AWS_CONFIG_FILE", t.file("config"))
                .env(
                    "AWS_SHARED_CREDENTIALS_FILE",
                    env.home().join("no-such-file"),
                ),
        )
        .ok();
    let run = LongRun::check(&ran, "custom-process");
    println!(
        "{} calls in {:.1} s signed with {} keys",
        run.report["calls"],
        run.report["seconds"].as_f64().unwrap(),
        run.distinct.len()
    );
    // Every key but the newest served two calls or more: renewed near its end, not on
    // every read.
    for key in &run.distinct[..run.distinct.len() - 1] {
        let uses = run.keys.iter().filter(|k| *k == key).count();
        assert!(
            uses >= 4,
            "key {key} signed only {uses} calls: {:?}",
            run.keys
        );
    }
    env.assert_stayed_on_loopback();
}
