//! Credentials without a mount (`s3credsfs fetch` as an AWS `credential_process`) and
//! from scripts (values pulled out of the mounted `json` with jq and signed by curl),
//! against a real S3 that checks signatures (moto), with credentials the built-in gateway
//! mints there by `AssumeRole`; each refused once the secret is tampered with.

use crate::common;

use common::clients::*;
use common::mount::TestGateway;
use common::s3::*;

#[test]
fn fetch_as_credential_process_without_a_mount() {
    require_tool("aws");
    require_tool("jq");
    let s3 = S3Server::start();
    let gw = TestGateway::start(|c| c.backend = Some(s3.backend()));
    let env = ClientEnv::new();
    // 8. An AWS config of the user's own: credential_process is `s3credsfs fetch`, by
    //    absolute path (botocore runs it without a shell), the password in $PW.
    let fetch = format!(
        "{} fetch --format json --api-gateway {} --username dev --password-env PW",
        env!("CARGO_BIN_EXE_s3credsfs"),
        gw.gw.base_url()
    );
    let config_with = |process: &str| {
        format!(
            "[default]\ncredential_process = {process}\nendpoint_url = {}\n",
            s3.url
        )
    };
    let nowhere = env.home().join("no-such-file");
    let aws = |config: &std::path::Path| {
        let mut cmd = env.command("aws");
        cmd.env("AWS_CONFIG_FILE", config)
            .env("AWS_SHARED_CREDENTIALS_FILE", &nowhere)
            .env("PW", s3credsfs::dev::gateway::DEFAULT_PASSWORD);
        cmd
    };
    let config = env.write("config", &config_with(&fetch));
    aws_round_trip(&env, &s3.bucket, "fetch-process/object", || aws(&config));
    let fetched = gw.stats().sts_issued;
    assert!(
        fetched >= 3,
        "each aws command ran fetch: {fetched} STS calls"
    );

    // The same command with its output's SecretAccessKey altered on the way: refused.
    let tampering = env.script(
        "tampering",
        "\"$@\" | jq '.SecretAccessKey |= .[:-1] + (if endswith(\"A\") then \"B\" else \"A\" end)'\n",
    );
    let bad = env.write(
        "config-tampered",
        &config_with(&format!("{} {fetch}", tampering.display())),
    );
    aws_refused(&env, &s3.bucket, "SignatureDoesNotMatch", || aws(&bad));
    assert!(
        gw.stats().sts_issued > fetched,
        "the tampered run fetched too"
    );
    env.assert_stayed_on_loopback();
}

#[test]
fn jq_extracted_values_sign_curl_requests() {
    require_tool("jq");
    require_tool("curl");
    let t = MountedS3::start(|_| {}, &[]);
    let (env, bucket) = (&t.env, t.bucket());
    let json = t.file("json");
    let curl = |path: &str| {
        let mut cmd = env.bash(&format!("{JQ_CURL}{REQUEST}"), &json);
        cmd.arg(path);
        cmd
    };
    // 9. Put, list and get an object with nothing but jq's values.
    let content = unique_content("curl");
    let local = env.write("upload", &content);
    let object = format!("{bucket}/jq-curl/object");
    env.run(curl(&object).arg("-T").arg(&local)).ok();
    let listed = env
        .run(&mut curl(&format!(
            "{bucket}?delimiter=%2F&list-type=2&prefix=jq-curl%2F"
        )))
        .ok();
    assert!(
        listed.stdout.contains("<Key>jq-curl/object</Key>"),
        "{}",
        listed.stdout
    );
    let read = env.run(&mut curl(&object)).ok();
    assert_eq!(read.stdout, content, "the object read back");

    let mut tampered = env.bash(&format!("{JQ_CURL}{TAMPER_SECRET}{REQUEST}"), &json);
    env.run(tampered.arg(&object))
        .refused("SignatureDoesNotMatch");
}
