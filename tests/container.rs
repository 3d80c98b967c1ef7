//! The container credentials endpoint (`mount --container-endpoint`): only the mount's
//! token gets credentials, and boto3 keeps working through it over several lifetimes.

mod common;

use common::mount::*;
use common::s3::S3Server;
use std::time::Duration;

/// The `export NAME='value'` lines of a file the mount renders.
fn exports(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_string(), value.trim_matches('\'').to_string()))
        .collect()
}

fn value(pairs: &[(String, String)], name: &str) -> String {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap()
}

#[test]
fn only_the_mounts_token_gets_credentials() {
    let gw = TestGateway::start(|_| {});
    let m = Mounted::start(&gw, &["--container-endpoint"]);
    let env = exports(&m.read("container-env").unwrap());
    let url = value(&env, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    let token = value(&env, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/credentials"),
        "{url}"
    );
    assert_eq!(value(&env, "AWS_ENDPOINT_URL"), "http://127.0.0.1:8080");
    assert_eq!(m.status()["container_endpoint"], url.as_str());
    assert!(
        !m.read("status").unwrap().contains(&token),
        "status shows the URL, never the token"
    );

    let get = |auth: Option<&str>| {
        gw.runtime().block_on(async {
            let mut request = reqwest::Client::new().get(&url);
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        })
    };
    let (status, body) = get(None);
    assert_eq!(status, 401);
    assert!(
        !body.contains("SecretAccessKey") && !body.contains("AccessKeyId"),
        "{body}"
    );
    let last = if token.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &token[..token.len() - 1]);
    let (status, body) = get(Some(&wrong));
    assert_eq!(status, 403);
    assert!(!body.contains("AccessKeyId"), "{body}");

    let (status, body) = get(Some(&token));
    assert_eq!(status, 200);
    let creds: serde_json::Value = serde_json::from_str(&body).unwrap();
    let served: serde_json::Value = serde_json::from_str(&m.read("json").unwrap()).unwrap();
    assert_eq!(creds["AccessKeyId"], served["AccessKeyId"]);
    assert_eq!(creds["SecretAccessKey"], served["SecretAccessKey"]);
    assert_eq!(creds["Token"], served["SessionToken"]);
    assert_eq!(creds["Expiration"], served["Expiration"]);
    assert!(!m.log().contains(&token), "the token is never logged");
}

#[test]
fn boto3_keeps_working_over_several_lifetimes() {
    let s3 = S3Server::start();
    let gw = TestGateway::start(|c| {
        c.backend = Some(s3.backend());
        c.lifetime = Duration::from_secs(6);
    });
    let m = Mounted::start(&gw, &["--container-endpoint", "--min-validity", "3s"]);
    let env = exports(&m.read("container-env").unwrap());
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    // Loop for more than three lifetimes; boto3 refreshes from the endpoint by itself.
    let script = r#"
import os, time, boto3
keys, calls, end = [], 0, time.time() + 20
session = boto3.Session()
client = session.client("s3")
while time.time() < end:
    client.put_object(Bucket=os.environ["S3_BUCKET"], Key="c%d" % calls, Body=b"x")
    client.list_objects_v2(Bucket=os.environ["S3_BUCKET"])
    keys.append(session.get_credentials().get_frozen_credentials().access_key)
    calls += 1
    time.sleep(0.25)
print(calls, len(set(keys)))
"#;
    let out = s3.python(script, &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    let numbers: Vec<usize> = stdout
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(numbers[0] >= 20, "{stdout}");
    assert!(
        numbers[1] >= 3,
        "boto3 used {} different access keys: {stdout}",
        numbers[1]
    );
}

#[test]
fn boto3_is_refused_with_a_wrong_token() {
    let s3 = S3Server::start();
    let gw = TestGateway::start(|c| c.backend = Some(s3.backend()));
    let m = Mounted::start(&gw, &["--container-endpoint"]);
    let mut env = exports(&m.read("container-env").unwrap());
    for (name, value) in env.iter_mut() {
        if name == "AWS_CONTAINER_AUTHORIZATION_TOKEN" {
            value.replace_range(0..1, if value.starts_with('0') { "1" } else { "0" });
        }
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let script = r#"
import os, boto3
boto3.Session().client("s3").list_objects_v2(Bucket=os.environ["S3_BUCKET"])
"#;
    let out = s3.python(script, &env);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Received non 200 response 403 from container metadata"),
        "{stderr}"
    );
}
