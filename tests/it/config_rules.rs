//! Settings rules that guard the password and the refresh loop, through the public
//! `resolve`: plain http only to this host (for every URL the password or a token is sent
//! to), and no zero durations.

use crate::common;

use common::settings_for;

/// Resolves a password login with `pairs` (which may replace `--api-gateway`).
fn resolve(pairs: &[(&'static str, &str)]) -> Result<(), String> {
    let mut all = vec![("username", "dev"), ("password-env", "PW")];
    all.extend_from_slice(pairs);
    settings_for("https://gw.example", &all)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn refused_http(key: &str, url: &str) -> String {
    format!(
        "bad value \"{url}\" for --{key}: plain http is only allowed to loopback addresses; \
         use https, or pass --allow-http"
    )
}

#[test]
fn plain_http_goes_only_to_this_host() {
    for url in [
        "http://localhost:8080",
        "http://LocalHost:8080",
        "http://127.0.0.1",
        "http://127.9.9.9:1",
        "http://[::1]:8443",
    ] {
        for key in ["api-gateway", "token-url", "sts-url"] {
            assert_eq!(resolve(&[(key, url)]), Ok(()), "{key} {url}");
        }
    }
    for url in [
        "http://gw.example",
        "http://localhost.gw.example",
        "http://127.0.0.1.nip.io",
        "http://[::2]",
        "http://0.0.0.0",
        "http://10.0.0.1",
    ] {
        for key in ["api-gateway", "token-url", "sts-url"] {
            // The gateway itself is https: only `key` may be refused.
            assert_eq!(
                resolve(&[(key, url)]),
                Err(refused_http(key, url)),
                "{key} {url}"
            );
            assert_eq!(
                resolve(&[(key, url), ("allow-http", "true")]),
                Ok(()),
                "--allow-http lets {key} {url} through"
            );
        }
    }
}

#[test]
fn zero_durations_are_refused() {
    for key in ["timeout", "min-validity"] {
        for zero in ["0s", "0ms", "0m"] {
            assert_eq!(
                resolve(&[(key, zero)]),
                Err(format!(
                    "bad value \"{zero}\" for --{key}: the duration must be more than zero"
                )),
            );
        }
        assert_eq!(resolve(&[(key, "1ms")]), Ok(()), "{key}");
    }
}
