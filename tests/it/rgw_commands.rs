//! The gateway against the real Ceph RGW of the `rgw-tests` tier, in process, minting
//! there by `AssumeRole` as cray-sts does: its answer when RGW refuses cray-sts's own keys.

use crate::common;

use common::clients::tamper;
use common::rgw::rgw;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_from_rgw_is_cray_sts_problem_500() {
    let mut backend = tokio::task::spawn_blocking(|| rgw().backend())
        .await
        .unwrap();
    backend.secret_key = tamper(backend.secret_key.expose()).into();
    let gw = common::gateway(|c| c.backend = Some(backend)).await;
    let token = common::password_grant(&gw).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .put(gw.sts_url())
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    // cray-sts does not catch RGW's refusal of its AssumeRole: connexion's problem document.
    assert_eq!(reply.status(), 500);
    assert_eq!(reply.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(problem["status"], 500);
    assert_eq!(problem["title"], "Internal Server Error");
    assert_eq!(problem["type"], "about:blank");
    assert!(problem["detail"].is_string());
    assert_eq!(problem.as_object().unwrap().len(), 4);
    assert!(!problem.to_string().contains(&rgw().secret_key));
    assert_eq!(gw.stats().sts_issued, 0);
}
