//! Logging setup: `S3CREDSFS_LOG` picks the level for our own code; other crates stay at
//! `warn` unless the variable holds full directives, so no library's trace output (which
//! may include HTTP internals) appears by accident.

use tracing_subscriber::EnvFilter;

/// The variable that sets the log filter.
pub const LOG_ENV: &str = "S3CREDSFS_LOG";

/// Turns `S3CREDSFS_LOG` (a level, or full tracing directives) into a filter.
pub fn filter(value: Option<&str>, default_level: &str) -> EnvFilter {
    let value = value.map(str::trim).filter(|v| !v.is_empty());
    let directives = match value {
        Some(v) if v.contains('=') || v.contains(',') => v.to_string(),
        Some(level) => format!("warn,s3credsfs={level}"),
        None => format!("warn,s3credsfs={default_level}"),
    };
    EnvFilter::try_new(&directives).unwrap_or_else(|_| {
        eprintln!("s3credsfs: warning: {LOG_ENV}={directives:?} is not a valid log filter; using {default_level}");
        EnvFilter::new(format!("warn,s3credsfs={default_level}"))
    })
}

/// Installs the stderr logger for a command.
pub fn init_stderr(default_level: &str) {
    let value = std::env::var(LOG_ENV).ok();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(value.as_deref(), default_level))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Installs a logger writing to `file` (the background daemon's `--log-file`).
pub fn init_writer(file: std::fs::File) {
    let value = std::env::var(LOG_ENV).ok();
    let file = std::sync::Mutex::new(file);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(value.as_deref(), "info"))
        .with_writer(file)
        .with_ansi(false)
        .try_init();
}
