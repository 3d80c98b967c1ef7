//! Pure renderers: credentials + profile → the bytes of one file format.
//!
//! `fetch` prints these and the mount serves them, so each is a pure function, pinned
//! byte for byte by the tests below.

use crate::creds::Credentials;
use crate::error::Error;
use crate::untrusted::is_line_breaking;
use std::fmt::Write;

/// Checksums only when an operation requires them, in every file that configures an SDK.
/// Since early 2025 the AWS SDKs (Java 2.30, boto3 1.36, Go, JavaScript, Rust, the AWS
/// CLI) send each upload's checksum in an aws-chunked trailer by default, which Ceph RGW
/// before 19 (Squid), and so every RGW that CSM ships, refuses with
/// `XAmzContentSHA256Mismatch` however right the keys are. SDKs older than the setting
/// ignore it. (config file key, environment variable, value.)
pub const CHECKSUM_SETTING: (&str, &str, &str) = (
    "request_checksum_calculation",
    "AWS_REQUEST_CHECKSUM_CALCULATION",
    "when_required",
);

/// The file formats people feed to their S3 tools (clap lists them in `--help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `credential_process` JSON (a superset of the STS `Credentials` object).
    Json,
    /// AWS shared credentials file.
    Credentials,
    /// AWS config file (endpoint, and in a mount a `credential_process`).
    Config,
    /// POSIX shell `export` lines.
    Env,
    /// s3cmd configuration.
    S3cfg,
    /// rclone remote section.
    Rclone,
}

impl Format {
    /// Every format, in the order help texts list them.
    pub const ALL: [Format; 6] = [
        Format::Json,
        Format::Credentials,
        Format::Config,
        Format::Env,
        Format::S3cfg,
        Format::Rclone,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Credentials => "credentials",
            Format::Config => "config",
            Format::Env => "env",
            Format::S3cfg => "s3cfg",
            Format::Rclone => "rclone",
        }
    }
}

/// What a rendering needs besides the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Section name in the INI formats (validated to `[A-Za-z0-9_.-]+` by the config).
    pub name: String,
    /// The region for clients that need one (validated to `[A-Za-z0-9_.-]+` by the
    /// config).
    pub region: String,
    /// Command for the config file's `credential_process` line; the mount sets it.
    pub credential_process: Option<String>,
}

impl Profile {
    /// A profile with no `credential_process`, as `fetch` renders.
    pub fn named(name: &str, region: &str) -> Self {
        Profile {
            name: name.to_string(),
            region: region.to_string(),
            credential_process: None,
        }
    }
}

/// Renders one format. The INI formats refuse any value that could end its line, so no
/// field, present or future, can add a key such as `credential_process` to a file SDKs
/// execute; the credentials were validated when parsed, so this is the second wall.
pub fn render(format: Format, creds: &Credentials, profile: &Profile) -> Result<String, Error> {
    let text = match format {
        Format::Json => render_json(creds),
        Format::Credentials => render_credentials(creds, profile),
        Format::Config => render_config(creds, profile),
        Format::Env => render_env(creds, profile),
        Format::S3cfg => render_s3cfg(creds, profile),
        Format::Rclone => render_rclone(creds, profile),
    };
    text.map_err(|key| Error::Unrenderable {
        key,
        format: format.name(),
    })
}

/// One profile's part of a file that holds every profile: its credentials, or why it has
/// none (the error's sentence).
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    Creds(&'a Credentials),
    Failed(&'a str),
}

/// Renders a file holding every profile (the mount's root `credentials`, `config` and
/// `rclone.conf`): each profile's own rendering, in order, and for a profile without
/// credentials one full-line comment naming the error, so the others stay usable. The
/// error is cleaned of line breaks: it must not add a line to a file SDKs execute.
pub fn render_profiles(format: Format, parts: &[(Profile, Part<'_>)]) -> Result<String, Error> {
    let mut out = String::new();
    for (profile, part) in parts {
        match part {
            Part::Creds(creds) => out.push_str(&render(format, creds, profile)?),
            Part::Failed(why) => {
                let why = crate::untrusted::clean(why, crate::untrusted::MAX_QUOTED * 4);
                let _ = writeln!(out, "# profile {}: no credentials: {why}", profile.name);
            }
        }
    }
    Ok(out)
}

/// Writes one `key = value` INI line, or names the key whose value would break the line.
fn ini_pair(out: &mut String, key: &'static str, value: &str) -> Result<(), &'static str> {
    if value.chars().any(is_line_breaking) {
        return Err(key);
    }
    let _ = writeln!(out, "{key} = {value}");
    Ok(())
}

/// Writes one `[section]` INI line, refused like a value that would break the line.
fn ini_section(out: &mut String, name: &str) -> Result<(), &'static str> {
    if name.chars().any(|c| is_line_breaking(c) || c == ']') {
        return Err("section name");
    }
    let _ = writeln!(out, "[{name}]");
    Ok(())
}

/// The keys of the `json` format, in the order it writes them; readers of a mounted
/// `json` (`exec`) expect exactly these.
pub const JSON_KEYS: [&str; 6] = [
    "Version",
    "AccessKeyId",
    "SecretAccessKey",
    "SessionToken",
    "Expiration",
    "EndpointURL",
];

fn render_json(creds: &Credentials) -> Result<String, &'static str> {
    let value = serde_json::json!({
        "Version": 1,
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key.expose(),
        "SessionToken": creds.session_token.expose(),
        "Expiration": creds.expiration_rfc3339(),
        "EndpointURL": creds.endpoint_url,
    });
    // serde_json's `preserve_order` is off, so write the keys in a fixed, documented order.
    let mut out = String::from("{\n");
    let keys = JSON_KEYS;
    for (i, key) in keys.iter().enumerate() {
        let comma = if i + 1 < keys.len() { "," } else { "" };
        let _ = writeln!(out, "  \"{key}\": {}{comma}", value[key]);
    }
    out.push_str("}\n");
    Ok(out)
}

fn header(out: &mut String, what: &str, creds: &Credentials) {
    let _ = writeln!(
        out,
        "# {what} from s3credsfs; these credentials expire at {}",
        creds.expiration_rfc3339()
    );
}

fn render_credentials(creds: &Credentials, profile: &Profile) -> Result<String, &'static str> {
    let mut out = String::new();
    header(&mut out, "AWS shared credentials", creds);
    ini_section(&mut out, &profile.name)?;
    ini_pair(&mut out, "aws_access_key_id", &creds.access_key_id)?;
    ini_pair(
        &mut out,
        "aws_secret_access_key",
        creds.secret_access_key.expose(),
    )?;
    ini_pair(&mut out, "aws_session_token", creds.session_token.expose())?;
    Ok(out)
}

fn render_config(creds: &Credentials, profile: &Profile) -> Result<String, &'static str> {
    let mut out = String::from("# AWS config from s3credsfs\n");
    if profile.name == "default" {
        ini_section(&mut out, "default")?;
    } else {
        ini_section(&mut out, &format!("profile {}", profile.name))?;
    }
    ini_pair(&mut out, "endpoint_url", &creds.endpoint_url)?;
    ini_pair(&mut out, "region", &profile.region)?;
    ini_pair(&mut out, CHECKSUM_SETTING.0, CHECKSUM_SETTING.2)?;
    if let Some(command) = &profile.credential_process {
        ini_pair(&mut out, "credential_process", command)?;
    }
    Ok(out)
}

/// Quotes a value for sh, bash and zsh: single quotes, with `'` written as `'\''`.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn render_env(creds: &Credentials, profile: &Profile) -> Result<String, &'static str> {
    let mut out = String::new();
    header(&mut out, "Shell environment (source this file)", creds);
    let expiration = creds.expiration_rfc3339();
    let pairs = [
        ("AWS_ACCESS_KEY_ID", creds.access_key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", creds.secret_access_key.expose()),
        ("AWS_SESSION_TOKEN", creds.session_token.expose()),
        ("AWS_CREDENTIAL_EXPIRATION", expiration.as_str()),
        ("AWS_ENDPOINT_URL", creds.endpoint_url.as_str()),
        ("AWS_REGION", profile.region.as_str()),
        ("AWS_DEFAULT_REGION", profile.region.as_str()),
        (CHECKSUM_SETTING.1, CHECKSUM_SETTING.2),
    ];
    for (name, value) in pairs {
        let _ = writeln!(out, "export {name}={}", shell_quote(value));
    }
    Ok(out)
}

/// Splits an endpoint URL into (`host[:port]`, uses https) for s3cmd.
fn host_and_scheme(endpoint: &str) -> (String, bool) {
    match url::Url::parse(endpoint) {
        Ok(u) if u.host_str().is_some() => {
            let host = u.host_str().unwrap_or_default();
            let host = match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            };
            (host, u.scheme() == "https")
        }
        _ => (endpoint.to_string(), false),
    }
}

/// The `container-env` file: points SDKs at the container credentials endpoint.
pub fn render_container_env(
    url: &str,
    token: &crate::secret::Secret,
    endpoint_url: &str,
    region: &str,
) -> String {
    let mut out = String::from(
        "# Container credentials endpoint of s3credsfs: source this file; every AWS SDK then\n\
         # fetches (and refreshes) credentials from the endpoint by itself.\n",
    );
    let pairs = [
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", url),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", token.expose()),
        ("AWS_ENDPOINT_URL", endpoint_url),
        ("AWS_REGION", region),
        ("AWS_DEFAULT_REGION", region),
        (CHECKSUM_SETTING.1, CHECKSUM_SETTING.2),
    ];
    for (name, value) in pairs {
        let _ = writeln!(out, "export {name}={}", shell_quote(value));
    }
    out
}

/// s3cmd renews a session token read from its config file from EC2 instance metadata
/// before every request (slow, with warnings) and no config key stops it; a token on the
/// command line does.
const S3CMD_HINT: &str = "\
# s3cmd asks the EC2 instance metadata service (169.254.169.254) for a role before each
# request when the session token comes only from this file; pass it on the command line:
#   s3cmd -c FILE --access_token=\"$(sed -n 's/^access_token = //p' FILE)\" ...
";

fn render_s3cfg(creds: &Credentials, profile: &Profile) -> Result<String, &'static str> {
    let (host, https) = host_and_scheme(&creds.endpoint_url);
    let mut out = String::new();
    header(&mut out, "s3cmd configuration (s3cmd -c FILE)", creds);
    out.push_str(S3CMD_HINT);
    ini_section(&mut out, "default")?;
    ini_pair(&mut out, "access_key", &creds.access_key_id)?;
    ini_pair(&mut out, "secret_key", creds.secret_access_key.expose())?;
    ini_pair(&mut out, "access_token", creds.session_token.expose())?;
    ini_pair(&mut out, "host_base", &host)?;
    ini_pair(&mut out, "host_bucket", &host)?;
    ini_pair(&mut out, "use_https", if https { "True" } else { "False" })?;
    ini_pair(&mut out, "bucket_location", &profile.region)?;
    Ok(out)
}

fn render_rclone(creds: &Credentials, profile: &Profile) -> Result<String, &'static str> {
    let mut out = String::new();
    header(&mut out, "rclone remote (rclone --config FILE)", creds);
    ini_section(&mut out, &profile.name)?;
    out.push_str("type = s3\nprovider = Ceph\n");
    ini_pair(&mut out, "access_key_id", &creds.access_key_id)?;
    ini_pair(
        &mut out,
        "secret_access_key",
        creds.secret_access_key.expose(),
    )?;
    ini_pair(&mut out, "session_token", creds.session_token.expose())?;
    ini_pair(&mut out, "endpoint", &creds.endpoint_url)?;
    ini_pair(&mut out, "region", &profile.region)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use chrono::TimeZone;

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("s3cr3t/K+y"),
            session_token: Secret::new("tok'en=="),
            expiration: chrono::Utc.with_ymd_and_hms(2026, 11, 30, 5, 0, 0).unwrap(),
            endpoint_url: "http://rgw.local:8080".into(),
        }
    }

    #[test]
    fn json_is_credential_process_output() {
        let text = render(
            Format::Json,
            &creds(),
            &Profile::named("default", "us-east-1"),
        )
        .unwrap();
        assert_eq!(
            text,
            r#"{
  "Version": 1,
  "AccessKeyId": "AKIDEXAMPLE",
  "SecretAccessKey": "s3cr3t/K+y",
  "SessionToken": "tok'en==",
  "Expiration": "2026-11-30T05:00:00Z",
  "EndpointURL": "http://rgw.local:8080"
}
"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["Version"], 1);
    }

    #[test]
    fn credentials_file() {
        assert_eq!(
            render(Format::Credentials, &creds(), &Profile::named("cray", "zg-1")).unwrap(),
            "# AWS shared credentials from s3credsfs; these credentials expire at 2026-11-30T05:00:00Z\n\
             [cray]\n\
             aws_access_key_id = AKIDEXAMPLE\n\
             aws_secret_access_key = s3cr3t/K+y\n\
             aws_session_token = tok'en==\n"
        );
    }

    #[test]
    fn config_file_default_and_named() {
        assert_eq!(
            render(
                Format::Config,
                &creds(),
                &Profile::named("default", "us-east-1")
            )
            .unwrap(),
            "# AWS config from s3credsfs\n[default]\nendpoint_url = http://rgw.local:8080\n\
             region = us-east-1\nrequest_checksum_calculation = when_required\n"
        );
        let profile = Profile {
            name: "cray".into(),
            region: "zg-1".into(),
            credential_process: Some("cat /home/u/.s3creds/json".into()),
        };
        assert_eq!(
            render(Format::Config, &creds(), &profile).unwrap(),
            "# AWS config from s3credsfs\n[profile cray]\nendpoint_url = http://rgw.local:8080\n\
             region = zg-1\n\
             request_checksum_calculation = when_required\n\
             credential_process = cat /home/u/.s3creds/json\n"
        );
    }

    #[test]
    fn env_file_quotes_every_value() {
        assert_eq!(
            render(Format::Env, &creds(), &Profile::named("default", "zg-1")).unwrap(),
            "# Shell environment (source this file) from s3credsfs; these credentials expire at 2026-11-30T05:00:00Z\n\
             export AWS_ACCESS_KEY_ID='AKIDEXAMPLE'\n\
             export AWS_SECRET_ACCESS_KEY='s3cr3t/K+y'\n\
             export AWS_SESSION_TOKEN='tok'\\''en=='\n\
             export AWS_CREDENTIAL_EXPIRATION='2026-11-30T05:00:00Z'\n\
             export AWS_ENDPOINT_URL='http://rgw.local:8080'\n\
             export AWS_REGION='zg-1'\n\
             export AWS_DEFAULT_REGION='zg-1'\n\
             export AWS_REQUEST_CHECKSUM_CALCULATION='when_required'\n"
        );
    }

    #[test]
    fn shell_quote_survives_a_real_shell() {
        let nasty = "a'b\"c$(echo x)`d`\\e\nf !g";
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", shell_quote(nasty)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), nasty);
    }

    #[test]
    fn s3cfg_uses_path_style_and_scheme() {
        assert_eq!(
            render(Format::S3cfg, &creds(), &Profile::named("default", "zg-1")).unwrap(),
            "# s3cmd configuration (s3cmd -c FILE) from s3credsfs; these credentials expire at 2026-11-30T05:00:00Z\n\
             # s3cmd asks the EC2 instance metadata service (169.254.169.254) for a role before each\n\
             # request when the session token comes only from this file; pass it on the command line:\n\
             #   s3cmd -c FILE --access_token=\"$(sed -n 's/^access_token = //p' FILE)\" ...\n\
             [default]\n\
             access_key = AKIDEXAMPLE\n\
             secret_key = s3cr3t/K+y\n\
             access_token = tok'en==\n\
             host_base = rgw.local:8080\n\
             host_bucket = rgw.local:8080\n\
             use_https = False\n\
             bucket_location = zg-1\n"
        );
        let mut https = creds();
        https.endpoint_url = "https://s3.example.com".into();
        let text = render(
            Format::S3cfg,
            &https,
            &Profile::named("default", "us-east-1"),
        )
        .unwrap();
        assert!(text.contains("host_base = s3.example.com\n"));
        assert!(text.contains("\nuse_https = True\n"));
        // Something that parses as a URL without a host (never let through by the STS
        // reply's checks) is written as it is rather than as an empty host.
        let mut odd = creds();
        odd.endpoint_url = "rgw.local:8080".into();
        let text = render(Format::S3cfg, &odd, &Profile::named("default", "r")).unwrap();
        assert!(text.contains("\nhost_base = rgw.local:8080\n"), "{text}");
    }

    #[test]
    fn rclone_remote() {
        assert_eq!(
            render(Format::Rclone, &creds(), &Profile::named("default", "zg-1")).unwrap(),
            "# rclone remote (rclone --config FILE) from s3credsfs; these credentials expire at 2026-11-30T05:00:00Z\n\
             [default]\n\
             type = s3\n\
             provider = Ceph\n\
             access_key_id = AKIDEXAMPLE\n\
             secret_access_key = s3cr3t/K+y\n\
             session_token = tok'en==\n\
             endpoint = http://rgw.local:8080\n\
             region = zg-1\n"
        );
    }

    #[test]
    fn no_inline_comments_anywhere() {
        for format in Format::ALL {
            let text = render(format, &creds(), &Profile::named("default", "us-east-1")).unwrap();
            for line in text.lines() {
                if !line.starts_with('#') {
                    assert!(!line.contains(" #"), "{format:?}: {line}");
                }
            }
        }
    }

    #[test]
    fn ini_formats_refuse_values_that_break_lines() {
        let planted = "x\n[profile evil]\ncredential_process = sh -c id";
        type Tamper = fn(&mut Credentials, &str);
        let tamper: [(&str, Tamper); 4] = [
            ("access key", |c, v| c.access_key_id = v.into()),
            ("secret", |c, v| c.secret_access_key = Secret::new(v)),
            ("token", |c, v| c.session_token = Secret::new(v)),
            ("endpoint", |c, v| c.endpoint_url = v.into()),
        ];
        for (what, set) in tamper {
            for breaker in ["\n", "\r", "\u{85}", "\u{2028}", "\x0b", "\x0c"] {
                let mut bad = creds();
                set(&mut bad, &planted.replace('\n', breaker));
                let mut refused = 0;
                for format in [
                    Format::Credentials,
                    Format::Config,
                    Format::S3cfg,
                    Format::Rclone,
                ] {
                    match render(format, &bad, &Profile::named("default", "us-east-1")) {
                        // A format that does not carry this field is unaffected.
                        Ok(text) => assert!(!text.contains("evil"), "{what} {format:?}: {text}"),
                        Err(err) => {
                            assert!(err.to_string().starts_with("refused to write `"));
                            refused += 1;
                        }
                    }
                }
                assert!(refused >= 2, "{what} with {breaker:?}: {refused} refusals");
            }
        }
        let mut bad = creds();
        bad.endpoint_url = planted.into();
        assert_eq!(
            render(
                Format::Config,
                &bad,
                &Profile::named("default", "us-east-1")
            )
            .unwrap_err()
            .to_string(),
            "refused to write `endpoint_url` into the config file: its value holds a line break \
             or control character that could inject settings; the gateway's reply is suspect, \
             check --api-gateway"
        );
        let profile = Profile {
            name: "default".into(),
            region: "us-east-1".into(),
            credential_process: Some("cat /a\ncredential_process = id".into()),
        };
        assert!(render(Format::Config, &creds(), &profile).is_err());
        assert!(render(
            Format::Credentials,
            &creds(),
            &Profile::named("a]\n[b", "r")
        )
        .is_err());
        for format in [Format::Config, Format::S3cfg, Format::Rclone] {
            let region = Profile::named("default", "r\n[profile evil]");
            assert!(render(format, &creds(), &region).is_err(), "{format:?}");
        }
        // Quoted formats carry any value safely.
        assert!(render(Format::Json, &bad, &Profile::named("default", "us-east-1")).is_ok());
        assert!(render(Format::Env, &bad, &Profile::named("default", "us-east-1")).is_ok());
    }

    #[test]
    fn container_env_file() {
        let token = crate::secret::Secret::new("abc123");
        assert_eq!(
            render_container_env(
                "http://127.0.0.1:4321/credentials",
                &token,
                "http://rgw.local:8080",
                "zg-1"
            ),
            "# Container credentials endpoint of s3credsfs: source this file; every AWS SDK then\n\
             # fetches (and refreshes) credentials from the endpoint by itself.\n\
             export AWS_CONTAINER_CREDENTIALS_FULL_URI='http://127.0.0.1:4321/credentials'\n\
             export AWS_CONTAINER_AUTHORIZATION_TOKEN='abc123'\n\
             export AWS_ENDPOINT_URL='http://rgw.local:8080'\n\
             export AWS_REGION='zg-1'\n\
             export AWS_DEFAULT_REGION='zg-1'\n\
             export AWS_REQUEST_CHECKSUM_CALCULATION='when_required'\n"
        );
    }

    #[test]
    fn format_names_are_the_command_line_names() {
        use clap::ValueEnum;
        assert_eq!(Format::value_variants(), Format::ALL);
        for format in Format::ALL {
            assert_eq!(Format::from_str(format.name(), false).unwrap(), format);
        }
        assert!(Format::from_str("yaml", false).is_err());
    }
}
