//! Which proxy a gateway request goes through: the environment's variables
//! (`https_proxy`, `http_proxy`, `all_proxy`, `NO_PROXY`), except that loopback traffic
//! (the built-in gateway, an ssh tunnel) never leaves this host, password and all.
//!
//! Whether a host is proxied, and by the variable for its scheme or `all_proxy`, is decided
//! by hyper-util's proxy `Matcher`: the code behind reqwest's own `Proxy::http`/`https`/`all`
//! and `NoProxy` (reqwest 0.12 hands both to it). reqwest's `NoProxy` cannot be used on its
//! own here: a `Proxy::custom`, which keeps loopback first and the proxy's password in its
//! URL, ignores it. Ours are where the matcher reads `NO_PROXY` otherwise than curl, always
//! towards proxying (which would hand the proxy the login): the forms of [`curl_entry`],
//! `*` covering addresses too, a host's trailing dot, and the reading of the variables
//! (lower case first, an empty one as unset, as curl).

use crate::config::is_loopback;
use hyper_util::client::proxy::matcher::Matcher;
use std::net::IpAddr;

/// The proxy variables of the environment, read once when the client is built.
pub struct ProxyEnv {
    http: Option<url::Url>,
    https: Option<url::Url>,
    all: Option<url::Url>,
    /// `NO_PROXY` holds `*`: curl then proxies no host, addresses included, where the
    /// matcher reads `*` as a domain pattern and still proxies a gateway named by its IP.
    bypass_everything: bool,
    /// Decides, from the same variables and `NO_PROXY`, whether a target is proxied.
    matcher: Matcher,
}

impl std::fmt::Debug for ProxyEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The matcher's own Debug leaves out proxy passwords; the URLs here would not.
        f.debug_struct("ProxyEnv")
            .field("matcher", &self.matcher)
            .finish_non_exhaustive()
    }
}

impl ProxyEnv {
    /// Reads `http_proxy`, `https_proxy` and `all_proxy` (lower case first, as curl does,
    /// then upper case). A value that is not a URL is ignored with a warning that names the
    /// variable only, since a proxy URL may hold a password.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`ProxyEnv::from_env`] with any source of variables, for tests.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let read = |lower: &str| -> Option<url::Url> {
            let upper = lower.to_uppercase();
            let (name, value) = [lower, upper.as_str()]
                .into_iter()
                .find_map(|n| lookup(n).filter(|v| !v.trim().is_empty()).map(|v| (n, v)))?;
            let value = value.trim();
            // Like curl, a bare host:port means http.
            let parsed = url::Url::parse(value)
                .ok()
                .filter(|u| u.has_host())
                .or_else(|| url::Url::parse(&format!("http://{value}")).ok());
            if parsed.is_none() {
                tracing::warn!(
                    variable = name,
                    "ignoring a proxy variable that is not a URL"
                );
            }
            parsed
        };
        let (http, https, all) = (read("http_proxy"), read("https_proxy"), read("all_proxy"));
        // An empty variable counts as unset, as curl reads it (and as `read` does above).
        let no_proxy = ["no_proxy", "NO_PROXY"]
            .into_iter()
            .find_map(|name| lookup(name).filter(|v| !v.trim().is_empty()));
        let bypass: Vec<String> = no_proxy
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter_map(curl_entry)
            .collect();
        let bypass_everything = bypass.iter().any(|entry| entry == "*");
        let text = |url: &Option<url::Url>| url.as_ref().map_or(String::new(), url::Url::to_string);
        let matcher = Matcher::builder()
            .http(text(&http))
            .https(text(&https))
            .all(text(&all))
            .no(bypass.join(","))
            .build();
        ProxyEnv {
            http,
            https,
            all,
            bypass_everything,
            matcher,
        }
    }

    /// The proxy a request to `target` goes through: none for loopback (our built-in
    /// gateway, a tunnel) or a host `NO_PROXY` names, else the variable for its scheme,
    /// else `all_proxy`.
    pub fn proxy_for(&self, target: &url::Url) -> Option<url::Url> {
        if is_loopback(target) || self.bypass_everything {
            return None;
        }
        let uri: hyper::Uri = without_trailing_dot(target).as_str().parse().ok()?;
        self.matcher.intercept(&uri)?;
        // The matcher said which variable applies; its URL is taken from ours, which still
        // holds the proxy's user and password (the matcher keeps them as a header).
        let chosen = match target.scheme() {
            "https" => self.https.as_ref(),
            "http" => self.http.as_ref(),
            _ => None,
        }
        .or(self.all.as_ref())
        .cloned();
        if let Some(proxy) = &chosen {
            tracing::debug!(
                host = target.host_str().unwrap_or_default(),
                proxy = %without_userinfo(proxy),
                "request goes through a proxy"
            );
        }
        chosen
    }
}

/// `target` with its host's trailing dot removed (`gw.nmn.` is `gw.nmn`), as curl reads
/// a host against `NO_PROXY`; the matcher would not match it.
fn without_trailing_dot(target: &url::Url) -> url::Url {
    let mut asked = target.clone();
    if let Some(url::Host::Domain(host)) = target.host() {
        if let Some(bare) = host.strip_suffix('.').filter(|bare| !bare.is_empty()) {
            let _ = asked.set_host(Some(bare));
        }
    }
    asked
}

/// A URL safe to log: user name and password removed.
fn without_userinfo(url: &url::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// One `NO_PROXY` entry in the form the matcher reads, for the two forms curl accepts that
/// it does not: a port (`hpc.example.com:443`, ignored as curl ignores it) and an IPv6
/// address in brackets (`[fd00::1]`); and `*.example.com`, which curl reads as
/// `example.com`; a trailing dot is dropped, as curl drops it. Everything else (`*`,
/// addresses, networks like `10.0.0.0/8`, a domain that also covers its subdomains)
/// passes through as written.
fn curl_entry(entry: &str) -> Option<String> {
    let entry = entry.trim();
    if entry.is_empty() {
        return None;
    }
    let address = |text: &str| {
        let (ip, prefix) = text
            .split_once('/')
            .map_or((text, None), |(a, p)| (a, Some(p)));
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        ip.parse::<IpAddr>()
            .ok()
            .map(|ip| prefix.map_or(ip.to_string(), |p| format!("{ip}/{p}")))
    };
    if let Some(ip) = address(entry) {
        return Some(ip);
    }
    let host = entry.rsplit_once(':').map_or(entry, |(host, _)| host);
    if let Some(ip) = address(host) {
        return Some(ip);
    }
    let domain = host.strip_prefix("*.").unwrap_or(host);
    // curl ignores a trailing dot in an entry as in a host.
    let domain = domain
        .strip_suffix('.')
        .filter(|d| !d.is_empty())
        .unwrap_or(domain);
    Some(domain.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> url::Url {
        url::Url::parse(text).unwrap()
    }

    fn env(pairs: &[(&str, &str)]) -> ProxyEnv {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ProxyEnv::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn loopback_is_never_proxied() {
        let proxies = env(&[
            ("http_proxy", "http://proxy:3128"),
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("ALL_PROXY", "socks5://proxy:1080"),
        ]);
        for target in [
            "http://127.0.0.1:8080/t",
            "http://127.8.9.10/t",
            "https://localhost/t",
            "http://[::1]:99/t",
        ] {
            assert_eq!(proxies.proxy_for(&url(target)), None, "{target}");
        }
        assert_eq!(
            proxies.proxy_for(&url("https://api-gw-service-nmn.local/t")),
            Some(url("http://proxy:3128"))
        );
    }

    #[test]
    fn scheme_variables_then_all_proxy() {
        let proxies = env(&[
            ("http_proxy", "plain:3128"),
            ("HTTP_PROXY", "http://upper:1"),
            ("all_proxy", "http://all:9"),
        ]);
        assert_eq!(
            proxies.proxy_for(&url("http://gw/t")),
            Some(url("http://plain:3128"))
        );
        assert_eq!(
            proxies.proxy_for(&url("https://gw/t")),
            Some(url("http://all:9"))
        );
        assert_eq!(env(&[]).proxy_for(&url("https://gw/t")), None);
        assert_eq!(
            env(&[("https_proxy", "  ")]).proxy_for(&url("https://gw/t")),
            None
        );
    }

    #[test]
    fn logged_proxy_urls_lose_their_password() {
        assert_eq!(
            without_userinfo(&url("http://user:pa55@proxy:3128/")),
            "http://proxy:3128/"
        );
    }

    #[test]
    fn no_proxy_entries_match_as_curl_does() {
        let proxies = env(&[
            ("https_proxy", "http://proxy:3128"),
            (
                "NO_PROXY",
                " .nmn, hpc.example.com:443,10.0.0.0/8, 192.168.1.5,[fd00::1],",
            ),
        ]);
        for direct in [
            "https://api-gw-service.nmn/t",
            "https://hpc.example.com/t",
            "https://gw.hpc.example.com/t",
            "https://10.1.2.3/t",
            "https://192.168.1.5/t",
            "https://[fd00::1]/t",
        ] {
            assert_eq!(proxies.proxy_for(&url(direct)), None, "{direct}");
        }
        for proxied in [
            "https://nmn.evil/t",
            "https://xhpc.example.com/t",
            "https://11.1.2.3/t",
            "https://192.168.1.6/t",
        ] {
            assert!(proxies.proxy_for(&url(proxied)).is_some(), "{proxied}");
        }
        let everything = env(&[("https_proxy", "http://p:1"), ("no_proxy", "*")]);
        assert_eq!(everything.proxy_for(&url("https://gw/t")), None);
        let any_v4 = env(&[("https_proxy", "http://p:1"), ("no_proxy", "0.0.0.0/0")]);
        assert_eq!(any_v4.proxy_for(&url("https://10.0.0.1/t")), None);
        assert!(any_v4.proxy_for(&url("https://[fd00::1]/t")).is_some());
    }

    /// curl's `*` bypasses every host, addresses included: a gateway reached by its IP
    /// (`https://10.252.1.1`) must not send the password and the JWT to the proxy.
    #[test]
    fn no_proxy_star_covers_gateways_named_by_address() {
        let everything = env(&[("https_proxy", "http://p:1"), ("NO_PROXY", " * ")]);
        for target in [
            "https://10.252.1.1/t",
            "https://[fd00::1]:8443/t",
            "https://gw/t",
        ] {
            assert_eq!(everything.proxy_for(&url(target)), None, "{target}");
        }
        let listed = env(&[("https_proxy", "http://p:1"), ("no_proxy", ".nmn,*")]);
        assert_eq!(listed.proxy_for(&url("https://10.252.1.1/t")), None);
    }

    /// curl reads an empty variable as unset: an empty `no_proxy` leaves `NO_PROXY` in
    /// force, as an empty `http_proxy` leaves `HTTP_PROXY`.
    #[test]
    fn an_empty_lower_case_no_proxy_leaves_the_upper_case_one() {
        for empty in ["", "  "] {
            let proxies = env(&[
                ("https_proxy", "http://p:1"),
                ("no_proxy", empty),
                ("NO_PROXY", ".nmn"),
            ]);
            let gateway = url("https://api-gw-service.nmn/t");
            assert_eq!(proxies.proxy_for(&gateway), None, "{empty:?}");
        }
    }

    /// curl ignores a trailing dot, in the host and in the entry: `gw.nmn.` is `gw.nmn`,
    /// and must not take the login to the proxy because it is spelled fully qualified.
    #[test]
    fn a_trailing_dot_is_ignored_as_curl_ignores_it() {
        let proxies = env(&[
            ("https_proxy", "http://p:1"),
            ("NO_PROXY", ".nmn,hpc.example.com."),
        ]);
        for direct in [
            "https://api-gw-service.nmn./t",
            "https://hpc.example.com/t",
            "https://gw.hpc.example.com./t",
        ] {
            assert_eq!(proxies.proxy_for(&url(direct)), None, "{direct}");
        }
        assert!(proxies.proxy_for(&url("https://nmn.evil./t")).is_some());
    }

    #[test]
    fn curl_s_no_proxy_forms_become_the_matcher_s() {
        for (entry, read) in [
            ("  ", None),
            ("*", Some("*")),
            ("hpc.example.com:443", Some("hpc.example.com")),
            ("*.example.com", Some("example.com")),
            ("hpc.example.com.", Some("hpc.example.com")),
            (".", Some(".")),
            (".nmn", Some(".nmn")),
            ("[fd00::1]", Some("fd00::1")),
            ("[fd00::1]:443", Some("fd00::1")),
            ("fd00::1", Some("fd00::1")),
            ("10.0.0.0/8", Some("10.0.0.0/8")),
            ("192.168.1.5:80", Some("192.168.1.5")),
        ] {
            assert_eq!(curl_entry(entry).as_deref(), read, "{entry:?}");
        }
    }

    #[test]
    fn a_proxy_keeps_its_password_and_debug_output_hides_it() {
        let proxies = env(&[("https_proxy", "http://user:pa55@proxy:3128")]);
        let chosen = proxies.proxy_for(&url("https://gw/t")).unwrap();
        assert_eq!(chosen.password(), Some("pa55"));
        let shown = format!("{proxies:?}");
        assert!(
            shown.starts_with("ProxyEnv { matcher: Matcher { https: "),
            "{shown}"
        );
        assert!(
            shown.contains("proxy:3128") && !shown.contains("pa55"),
            "{shown}"
        );
    }
}
