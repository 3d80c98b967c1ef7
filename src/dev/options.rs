//! What the emulator is asked for, as plain values, and their checks: the command layer
//! parses `dev-gateway`'s and `mount --dev`'s flags (clap, in `cli`) into these, and the
//! wing turns them into a `GatewayConfig` or refuses them with a sentence naming the flag.
//! Messages never repeat a secret.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use super::gateway::{
    check_lifetime, Account, BackendSts, GatewayConfig, DEFAULT_BACKEND_REGION, DEFAULT_CLIENT,
    DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD, DEFAULT_USER,
};
use crate::secret::Secret;

/// The `--endpoint-url` value that sends `"EndpointURL": null`, cray-sts's reply when its
/// configmap has no `ext_endpoint_url`, so clients' handling of it can be tried.
pub const NO_ENDPOINT_URL: &str = "null";

/// A `NAME:SECRET` value as given. Kept whole until [`GatewayOptions::to_config`] checks
/// it, so that a malformed one is refused with a sentence naming the flag, never (as a
/// parser's error would) quoting a value that holds a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedSecret {
    /// The part before the first colon; `None` without a colon (all of it is then held,
    /// unseen, as the secret).
    name: Option<String>,
    secret: Secret,
}

impl NamedSecret {
    /// Splits at the first colon (a secret may hold colons); never fails, see the type.
    pub fn parse(value: &str) -> Result<NamedSecret, Infallible> {
        Ok(match value.split_once(':') {
            Some((name, secret)) => NamedSecret {
                name: Some(name.to_owned()),
                secret: Secret::new(secret),
            },
            None => NamedSecret {
                name: None,
                secret: Secret::new(value),
            },
        })
    }
}

/// What `s3credsfs dev-gateway` serves.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Lifetime of the S3 credentials STS hands out.
    pub lifetime: Duration,
    /// Lifetime of Keycloak access tokens.
    pub token_lifetime: Duration,
    /// Lifetime of Keycloak refresh tokens.
    pub refresh_lifetime: Duration,
    /// `--user`: users with the admin role.
    pub users: Vec<NamedSecret>,
    /// `--non-admin-user`: users STS refuses.
    pub non_admin_users: Vec<NamedSecret>,
    /// `--client`: confidential clients with the admin role.
    pub clients: Vec<NamedSecret>,
    /// `--endpoint-url`: the S3 endpoint reported with random credentials; `null` for
    /// none (JSON null, as from a cray-sts whose configmap has no `ext_endpoint_url`).
    pub endpoint_url: String,
    /// Where real credentials come from, if anywhere.
    pub backend: BackendOptions,
    /// `--keycloak`: a real Keycloak to front instead of the emulated one.
    pub keycloak: Option<String>,
}

/// Options that make the emulated STS mint real credentials with `AssumeRole` on an S3
/// server's STS (moto, Ceph RGW, MinIO), as cray-sts does on CSM: all of `sts`,
/// `access_key`, `secret_key` and `role_arn`, or none (then credentials are random and
/// open nothing). Each field is named after its flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendOptions {
    /// `--backend-sts`: the STS endpoint to call AssumeRole on.
    pub sts: Option<String>,
    /// `--backend-access-key`: the access key id of the user that assumes the role.
    pub access_key: Option<String>,
    /// `--backend-secret-key`: that user's secret key.
    pub secret_key: Option<Secret>,
    /// `--role-arn`: the role assumed for every caller.
    pub role_arn: Option<String>,
    /// `--backend-region`: the region used to sign AssumeRole.
    pub region: String,
    /// `--backend-s3-endpoint`: the S3 endpoint returned [default: the STS URL].
    pub s3_endpoint: Option<String>,
}

/// No backend, with the command line's region default, so options built by hand behave
/// like an empty command line.
impl Default for BackendOptions {
    fn default() -> BackendOptions {
        BackendOptions {
            sts: None,
            access_key: None,
            secret_key: None,
            role_arn: None,
            region: DEFAULT_BACKEND_REGION.to_owned(),
            s3_endpoint: None,
        }
    }
}

impl BackendOptions {
    /// The backend these options describe: `Ok(None)` when none of them is given,
    /// `Err(sentence)` when only some are, or a URL or value is malformed. Messages never
    /// repeat the secret key.
    pub fn to_backend(&self) -> Result<Option<BackendSts>, String> {
        let required = [
            ("--backend-sts", self.sts.is_some(), ""),
            (
                "--backend-access-key",
                self.access_key.is_some(),
                " (or S3CREDSFS_BACKEND_ACCESS_KEY)",
            ),
            (
                "--backend-secret-key",
                self.secret_key.is_some(),
                " (or S3CREDSFS_BACKEND_SECRET_KEY)",
            ),
            ("--role-arn", self.role_arn.is_some(), ""),
        ];
        let given: Vec<&str> = required
            .iter()
            .filter(|(_, set, _)| *set)
            .map(|(flag, _, _)| *flag)
            .collect();
        let missing: Vec<String> = required
            .iter()
            .filter(|(_, set, _)| !*set)
            .map(|(flag, _, env)| format!("{flag}{env}"))
            .collect();
        if given.is_empty() {
            return match self.s3_endpoint {
                Some(_) => Err(
                    "--backend-s3-endpoint needs a backend: give --backend-sts, \
                     --backend-access-key, --backend-secret-key and --role-arn too."
                        .to_owned(),
                ),
                None => Ok(None),
            };
        }
        if !missing.is_empty() {
            return Err(format!(
                "The AssumeRole backend needs {} as well (given: {}).",
                join_and(&missing),
                given.join(", ")
            ));
        }
        let (Some(url), Some(access_key), Some(secret_key), Some(role_arn)) = (
            &self.sts,
            &self.access_key,
            &self.secret_key,
            &self.role_arn,
        ) else {
            unreachable!("checked above");
        };
        check_url("--backend-sts", url)?;
        if let Some(s3) = &self.s3_endpoint {
            check_url("--backend-s3-endpoint", s3)?;
        }
        for (flag, value) in [
            ("--backend-access-key", access_key.as_str()),
            ("--backend-secret-key", secret_key.expose()),
            ("--role-arn", role_arn),
            ("--backend-region", &self.region),
        ] {
            if value.trim().is_empty() {
                return Err(format!("{flag} must not be empty."));
            }
        }
        Ok(Some(BackendSts {
            url: url.clone(),
            access_key: access_key.clone(),
            secret_key: secret_key.clone(),
            role_arn: role_arn.clone(),
            region: self.region.clone(),
            s3_endpoint: self.s3_endpoint.as_ref().unwrap_or(url).clone(),
        }))
    }
}

/// "a", "a and b", "a, b and c".
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Checks `--keycloak`'s value: an absolute http(s) URL, Keycloak's base with its
/// relative path (such as `http://127.0.0.1:8080/keycloak`).
pub fn check_keycloak(url: Option<&str>) -> Result<Option<String>, String> {
    match url {
        None => Ok(None),
        Some(url) => match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.query().is_none() => {
                Ok(Some(url.trim_end_matches('/').to_owned()))
            }
            _ => Err(format!(
                "--keycloak expects Keycloak's absolute http(s) URL with its relative path, such as http://127.0.0.1:8080/keycloak, not {url:?}."
            )),
        },
    }
}

/// Refuses anything but an absolute http(s) URL with a host.
fn check_url(flag: &str, value: &str) -> Result<(), String> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(format!(
            "{flag} expects an absolute http(s) URL such as http://127.0.0.1:5000, not {value:?}."
        )),
    }
}

/// Checks the `NAME:SECRET` values of `flag`. Messages never repeat a value (it holds a
/// secret).
fn accounts(
    flag: &str,
    form: &str,
    values: &[NamedSecret],
    admin: bool,
) -> Result<Vec<Account>, String> {
    values
        .iter()
        .map(|v| {
            let Some(name) = &v.name else {
                return Err(format!(
                    "{flag} expects {form}, with a colon between them (for example {flag} dev:dev-password)."
                ));
            };
            if name.is_empty() || v.secret.is_empty() {
                return Err(format!(
                    "{flag} expects {form} with neither part empty."
                ));
            }
            Ok(Account {
                name: name.clone(),
                secret: v.secret.clone(),
                admin,
            })
        })
        .collect()
}

impl GatewayOptions {
    /// The gateway configuration these options describe, refusing malformed ones with a
    /// sentence that names the flag.
    pub fn to_config(&self) -> Result<GatewayConfig, String> {
        let mut users = accounts("--user", "NAME:PASSWORD", &self.users, true)?;
        let non_admin = accounts(
            "--non-admin-user",
            "NAME:PASSWORD",
            &self.non_admin_users,
            false,
        )?;
        // The default user stays unless --user is given (or --non-admin-user takes its name).
        if users.is_empty() && !non_admin.iter().any(|u| u.name == DEFAULT_USER) {
            users.push(Account::new(DEFAULT_USER, DEFAULT_PASSWORD, true));
        }
        users.extend(non_admin);
        let mut clients = accounts("--client", "NAME:SECRET", &self.clients, true)?;
        if clients.is_empty() {
            clients.push(Account::new(DEFAULT_CLIENT, DEFAULT_CLIENT_SECRET, true));
        }
        for (kind, list) in [("user", &users), ("client", &clients)] {
            for (i, a) in list.iter().enumerate() {
                if list[..i].iter().any(|b| b.name == a.name) {
                    return Err(format!("The {kind} {:?} is given more than once.", a.name));
                }
            }
        }
        let endpoint_url = match self.endpoint_url.as_str() {
            NO_ENDPOINT_URL => None,
            url if url::Url::parse(url).is_ok() => Some(url.to_owned()),
            other => {
                return Err(format!(
                    "--endpoint-url expects an absolute URL such as http://127.0.0.1:8080 (or \"null\" for none), not {other:?}."
                ))
            }
        };
        let backend = self.backend.to_backend()?;
        if backend.is_some() {
            check_lifetime(self.lifetime)?;
        }
        Ok(GatewayConfig {
            listen: self.listen,
            lifetime: self.lifetime,
            token_lifetime: self.token_lifetime,
            refresh_lifetime: self.refresh_lifetime,
            users,
            clients,
            endpoint_url,
            backend,
            upstream_timeout: GatewayConfig::default().upstream_timeout,
            keycloak: check_keycloak(self.keycloak.as_deref())?,
            tls: None,
            date_offset_seconds: 0,
        })
    }
}
