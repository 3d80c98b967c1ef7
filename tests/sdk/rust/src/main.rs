//! A program written as a user of the Rust AWS SDK would write it: `aws_config::load`
//! with nothing passed in (region, credentials and endpoint come from the environment and
//! the files it names), then S3 calls. Driven by tests/it/rgw_sdk.rs.
//!
//! `round-trip`: creates `S3_BUCKET` first when `S3_CREATE_BUCKET` is 1, puts `S3_BODY`
//! under `S3_KEY` in `S3_BUCKET`, lists the bucket and finds it, reads it back.
//! `long-running`: puts and gets objects under `S3_KEY/` until the calls have been signed
//! with `WANTED_KEYS` different access keys and `MIN_SECONDS` have passed, or
//! `GIVE_UP_SECONDS` pass.
//! Either prints `{"calls": N, "keys": [...], "seconds": S}` (`keys`: the access key that
//! signed each call, read from its Authorization header). An S3 error prints its code
//! and exits 3; any other failure exits 1.

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::{BoxError, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records the access key of each signed request.
#[derive(Debug, Clone, Default)]
struct SignedWith(Arc<Mutex<Vec<String>>>);

impl Intercept for SignedWith {
    fn name(&self) -> &'static str {
        "SignedWith"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let auth = context
            .request()
            .headers()
            .get("authorization")
            .unwrap_or_default();
        let key = auth
            .split_once("Credential=")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map_or("unsigned", |(key, _)| key);
        self.0.lock().unwrap().push(key.to_owned());
        Ok(())
    }
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// Exits 3 with S3's error code, or 1 with the whole error chain.
fn fail<E: ProvideErrorMetadata + std::error::Error>(error: E) -> ! {
    if let Some(code) = error.code() {
        println!("{code}");
        std::process::exit(3);
    }
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    eprintln!("{text}");
    std::process::exit(1);
}

/// Puts `body` under `key`.
async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8]) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| fail(e));
}

/// Reads `key` back and checks that it holds `body`.
async fn get_back(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8]) {
    let got = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| fail(e));
    let got = got
        .body
        .collect()
        .await
        .expect("read the object")
        .into_bytes();
    assert_eq!(&got[..], body, "the object read back");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    // Plain http only: the S3 and the container endpoint are both on loopback.
    let http = aws_smithy_http_client::Builder::new().build_http();
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await;
    let signed = SignedWith::default();
    let config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(true)
        .interceptor(signed.clone())
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(config);
    let bucket = var("S3_BUCKET");
    let start = Instant::now();
    let mut calls = 0;
    match mode.as_str() {
        "round-trip" => {
            let (key, body) = (var("S3_KEY"), var("S3_BODY"));
            if std::env::var("S3_CREATE_BUCKET").as_deref() == Ok("1") {
                s3.create_bucket()
                    .bucket(&bucket)
                    .send()
                    .await
                    .unwrap_or_else(|e| fail(e));
                calls += 1;
            }
            put(&s3, &bucket, &key, body.as_bytes()).await;
            let listed = s3
                .list_objects_v2()
                .bucket(&bucket)
                .prefix(&key)
                .delimiter("/")
                .send()
                .await
                .unwrap_or_else(|e| fail(e));
            let names: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
            assert_eq!(names, [key.as_str()], "the listing");
            get_back(&s3, &bucket, &key, body.as_bytes()).await;
            calls += 3;
        }
        "long-running" => {
            let prefix = var("S3_KEY");
            let wanted: usize = var("WANTED_KEYS").parse().expect("WANTED_KEYS");
            let seconds = |name| Duration::from_secs(var(name).parse().expect(name));
            let (min, give_up) = (seconds("MIN_SECONDS"), seconds("GIVE_UP_SECONDS"));
            loop {
                let mut distinct = signed.0.lock().unwrap().clone();
                distinct.sort();
                distinct.dedup();
                let done = distinct.len() >= wanted && start.elapsed() >= min;
                if done || start.elapsed() > give_up {
                    break;
                }
                let body = format!("{calls} {:?}", start.elapsed());
                let key = format!("{prefix}/{calls}");
                put(&s3, &bucket, &key, body.as_bytes()).await;
                get_back(&s3, &bucket, &key, body.as_bytes()).await;
                calls += 2;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        other => panic!("unknown mode {other:?}: round-trip or long-running"),
    }
    let keys = signed.0.lock().unwrap().clone();
    let quoted: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
    println!(
        "{{\"calls\": {calls}, \"keys\": [{}], \"seconds\": {}}}",
        quoted.join(", "),
        start.elapsed().as_secs_f64()
    );
}
