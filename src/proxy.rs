//! Which proxy a gateway request goes through: the environment's variables
//! (`https_proxy`, `http_proxy`, `all_proxy`, `NO_PROXY`), except that loopback traffic
//! (the built-in gateway, an ssh tunnel) never leaves this host, password and all.

use crate::config::is_loopback;
use std::net::IpAddr;

/// The proxy variables of the environment, read once when the client is built.
#[derive(Debug, Clone, Default)]
pub struct ProxyEnv {
    http: Option<url::Url>,
    https: Option<url::Url>,
    all: Option<url::Url>,
    bypass: Vec<Bypass>,
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
        let no_proxy = lookup("no_proxy").or_else(|| lookup("NO_PROXY"));
        ProxyEnv {
            http: read("http_proxy"),
            https: read("https_proxy"),
            all: read("all_proxy"),
            bypass: no_proxy
                .as_deref()
                .map(Bypass::parse_list)
                .unwrap_or_default(),
        }
    }

    /// The proxy a request to `target` goes through: none for loopback (our built-in
    /// gateway, a tunnel) or a host `NO_PROXY` names, else the variable for its scheme,
    /// else `all_proxy`.
    pub fn proxy_for(&self, target: &url::Url) -> Option<url::Url> {
        if is_loopback(target) || self.bypass.iter().any(|rule| rule.matches(target)) {
            return None;
        }
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

/// A URL safe to log: user name and password removed.
fn without_userinfo(url: &url::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// One `NO_PROXY` entry, matched as curl does: `*` for every host, an address or
/// network (`10.0.0.0/8`), or a domain that also covers its subdomains (`.example.com`
/// and `example.com` alike). A port in an entry is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Bypass {
    Everything,
    Network(IpAddr, u8),
    Domain(String),
}

impl Bypass {
    fn parse_list(list: &str) -> Vec<Bypass> {
        list.split(',').filter_map(Bypass::parse).collect()
    }

    fn parse(entry: &str) -> Option<Bypass> {
        let entry = entry.trim();
        if entry.is_empty() {
            return None;
        }
        if entry == "*" {
            return Some(Bypass::Everything);
        }
        let (address, prefix) = match entry.split_once('/') {
            Some((a, p)) => (a, p.parse::<u8>().ok()),
            None => (entry, None),
        };
        if let Ok(ip) = address.trim_matches(['[', ']']).parse::<IpAddr>() {
            let full = if ip.is_ipv4() { 32 } else { 128 };
            return Some(Bypass::Network(ip, prefix.unwrap_or(full).min(full)));
        }
        let host = entry.rsplit_once(':').map_or(entry, |(h, _)| h);
        let domain = host.trim_start_matches("*.").trim_start_matches('.');
        Some(Bypass::Domain(domain.to_ascii_lowercase()))
    }

    fn matches(&self, target: &url::Url) -> bool {
        match (self, target.host()) {
            (Bypass::Everything, _) => true,
            (Bypass::Network(net, bits), Some(url::Host::Ipv4(ip))) => {
                in_network(IpAddr::V4(ip), *net, *bits)
            }
            (Bypass::Network(net, bits), Some(url::Host::Ipv6(ip))) => {
                in_network(IpAddr::V6(ip), *net, *bits)
            }
            (Bypass::Domain(domain), Some(url::Host::Domain(host))) => {
                let host = host.to_ascii_lowercase();
                host == *domain || host.ends_with(&format!(".{domain}"))
            }
            _ => false,
        }
    }
}

/// Whether `ip` lies in `net`/`bits`.
fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let shift = width - u32::from(bits);
    shift >= width || (ip >> shift) == (net >> shift)
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
        assert!(in_network(
            "10.0.0.1".parse().unwrap(),
            "0.0.0.0".parse().unwrap(),
            0
        ));
    }
}
