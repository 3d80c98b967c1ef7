//! The built-in places: the gateway, the site-wide config file and the CA bundle every
//! CSM node has. A leaf of `config`, so the setting table (`keys`) and the environment
//! (`settings::Context`) name them without importing the module above both.

/// The gateway every CSM node can reach by this name.
pub const DEFAULT_GATEWAY: &str = "https://api-gw-service-nmn.local";
/// The site-wide config file an administrator sets the gateway, CA bundle and profiles in
/// once per node; read before (under) the user's.
pub const SITE_CONFIG: &str = "/etc/s3credsfs/config.toml";
/// Where CSM nodes keep the platform CA bundle.
pub const PLATFORM_CA: &str = "/etc/pki/trust/anchors/platform-ca-certs.crt";
