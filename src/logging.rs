//! Logging setup: `S3CREDSFS_LOG` picks the level for our own code; other crates stay at
//! `warn` unless the variable holds full directives, so no library's trace output (which
//! may include HTTP internals) appears by accident.
//!
//! A background daemon logs to a file (`--log-file`, else one per mountpoint under
//! `$XDG_STATE_HOME/s3credsfs/`) that is rotated at [`LOG_LIMIT`], so a daemon running for
//! months cannot fill a home directory; `--foreground` logs to stderr (the journal under
//! systemd).

pub mod repeats;

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// The variable that sets the log filter.
pub const LOG_ENV: &str = "S3CREDSFS_LOG";

/// The variable of the `log-format` setting, read here before the configuration is (so
/// that what reading it logs comes out in that format); config's `log-format` setting
/// maps to the same name, which a test in `config` checks.
pub const LOG_FORMAT_ENV: &str = "S3CREDSFS_LOG_FORMAT";

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

/// Whether log lines may carry colour: only on a terminal, and never when `NO_COLOR` is
/// set to anything but the empty string (no-color.org), so pipes, files and the journal
/// get plain text.
pub fn colour(no_color: Option<&std::ffi::OsStr>, terminal: bool) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// How log lines look (`log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One line of text per event, for people.
    #[default]
    Text,
    /// One JSON object per line, for journald and log shippers.
    Json,
}

impl LogFormat {
    /// The format `log-format` names, if any (`text`, `json`).
    pub fn parse(value: &str) -> Option<LogFormat> {
        match value.trim().to_ascii_lowercase().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// A formatting layer over the registry, boxed so that text and JSON are one type.
type FormatLayer = Box<dyn tracing_subscriber::Layer<Registry> + Send + Sync>;

/// The stderr logger's format, switchable once the configuration is read (the logger
/// must exist before, so that what reading it logs is not lost).
static STDERR_FORMAT: OnceLock<reload::Handle<FormatLayer, Registry>> = OnceLock::new();

/// The layer writing events to `writer` in `format`: JSON objects (every field, spans
/// with theirs) or text lines; never with colour unless `ansi`.
pub fn format_layer<W>(format: LogFormat, writer: W, ansi: bool, target: bool) -> FormatLayer
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(target);
    match format {
        LogFormat::Text => layer.with_ansi(ansi).boxed(),
        LogFormat::Json => layer.json().with_ansi(false).boxed(),
    }
}

fn stderr_ansi() -> bool {
    colour(
        std::env::var_os("NO_COLOR").as_deref(),
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    )
}

/// Installs the stderr logger for a command: in the format `S3CREDSFS_LOG_FORMAT` names
/// (else text) until [`set_stderr_format`] applies the configuration's.
pub fn init_stderr(default_level: &str) {
    let value = std::env::var(LOG_ENV).ok();
    let format = std::env::var(LOG_FORMAT_ENV)
        .ok()
        .and_then(|v| LogFormat::parse(&v))
        .unwrap_or_default();
    let (layer, handle) =
        reload::Layer::new(format_layer(format, std::io::stderr, stderr_ansi(), false));
    let installed = tracing_subscriber::registry()
        .with(layer)
        .with(filter(value.as_deref(), default_level))
        .try_init();
    if installed.is_ok() {
        let _ = STDERR_FORMAT.set(handle);
    }
}

/// Switches the stderr logger to `format` (the configuration's `log-format`, read after
/// the logger was installed).
pub fn set_stderr_format(format: LogFormat) {
    if let Some(handle) = STDERR_FORMAT.get() {
        let _ = handle.reload(format_layer(format, std::io::stderr, stderr_ansi(), false));
    }
}

/// Installs a logger writing to the background daemon's log file.
pub fn init_log(log: RotatingLog, format: LogFormat) {
    let value = std::env::var(LOG_ENV).ok();
    let _ = tracing_subscriber::registry()
        .with(format_layer(
            format,
            std::sync::Mutex::new(log),
            false,
            true,
        ))
        .with(filter(value.as_deref(), "info"))
        .try_init();
}

/// Past this size the log file becomes `<name>.1` (replacing the previous one) and a new
/// file is started: at most about twice this much log per mount.
pub const LOG_LIMIT: u64 = 1024 * 1024;

/// A log file that rotates itself past a size limit. Rotation renames (never follows a
/// link planted at `<name>.1`) and reopens with [`crate::files::open_log`]'s checks; when
/// either fails the file is truncated instead, so it stays bounded whatever happens.
pub struct RotatingLog {
    path: PathBuf,
    file: File,
    limit: u64,
    /// Point stderr at each new file while stderr is the log (the detached daemon's).
    follow_stderr: bool,
}

impl RotatingLog {
    /// Wraps `file`, already opened at `path`, rotating at `limit` bytes.
    pub fn new(path: PathBuf, file: File, limit: u64, follow_stderr: bool) -> Self {
        RotatingLog {
            path,
            file,
            limit,
            follow_stderr,
        }
    }

    fn rotate(&mut self) {
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        let reopened = std::fs::rename(&self.path, &old)
            .ok()
            .and_then(|_| crate::files::open_log(&self.path).ok());
        match reopened {
            Some(file) => {
                if self.follow_stderr && same_file(&std::io::stderr(), &self.file) {
                    let _ = nix::unistd::dup2_stderr(&file);
                }
                self.file = file;
            }
            // An append-mode file written after set_len(0) starts again at 0.
            None => {
                let _ = self.file.set_len(0);
            }
        }
    }
}

fn same_file(a: &impl AsFd, b: &File) -> bool {
    let stat = |fd| nix::sys::stat::fstat(fd).ok().map(|s| (s.st_dev, s.st_ino));
    let (a, b) = (stat(a.as_fd()), stat(b.as_fd()));
    a.is_some() && a == b
}

impl Write for RotatingLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The file's own size, so what reaches it through stderr counts too.
        let size = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        if size > 0 && size + buf.len() as u64 > self.limit {
            self.rotate();
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Where a background daemon logs without `--log-file`:
/// `$XDG_STATE_HOME/s3credsfs/<name>.log`, else `~/.local/state/s3credsfs/<name>.log`,
/// with `<name>` taken from the mountpoint so two mounts never share a file. Both
/// variables come from the environment: a relative `XDG_STATE_HOME` is ignored (as the
/// XDG spec says), and a relative or missing `HOME` gives no path. Returns the file and
/// the directory that must exist before it (`HOME`, which is never created).
pub fn default_log_path(
    home: Option<&OsStr>,
    xdg_state_home: Option<&OsStr>,
    mountpoint: &Path,
) -> Result<(PathBuf, Option<PathBuf>), NoDefaultLog> {
    fn absolute(v: Option<&OsStr>) -> Option<&Path> {
        v.map(Path::new).filter(|p| p.is_absolute())
    }
    let home = absolute(home);
    let (base, must_exist) = match (absolute(xdg_state_home), home) {
        (Some(state), _) => (state.to_path_buf(), None),
        (None, Some(home)) => (home.join(".local/state"), Some(home.to_path_buf())),
        (None, None) => return Err(NoDefaultLog::NoStateDir),
    };
    let name = log_name(mountpoint, home);
    Ok((base.join("s3credsfs").join(name), must_exist))
}

/// `s3creds.log` for the default `~/.s3creds`; else the mountpoint's name (made safe)
/// and a short hash of its whole path.
fn log_name(mountpoint: &Path, home: Option<&Path>) -> String {
    if home.is_some_and(|h| h.join(".s3creds") == mountpoint) {
        return "s3creds.log".into();
    }
    let stem: String = mountpoint
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default()
        .trim_start_matches('.')
        .chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = if stem.is_empty() {
        "mount".into()
    } else {
        stem
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, mountpoint.as_os_str().as_bytes());
    let hash: String = digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{stem}-{hash}.log")
}

/// Why a background daemon has no default log file: the warning `mount` prints, after
/// which the daemon runs without a log.
#[derive(Debug, thiserror::Error)]
pub enum NoDefaultLog {
    /// Neither variable names a directory to keep the log in.
    #[error("neither XDG_STATE_HOME nor HOME is set to an absolute path; pass --log-file FILE")]
    NoStateDir,
    /// HOME names something that is not a directory.
    #[error("HOME ({}) is not a directory; set HOME or pass --log-file FILE", .0.display())]
    HomeNotDirectory(PathBuf),
    /// The log's directory or file failed its checks, or could not be made.
    #[error(transparent)]
    File(#[from] crate::error::Error),
}

/// Opens (creating it and its directories, 0700, and the file 0600) the default log for
/// a daemon mounted at `mountpoint`, from the real environment.
pub fn open_default_log(mountpoint: &Path) -> Result<(PathBuf, File), NoDefaultLog> {
    let home = std::env::var_os("HOME");
    let state = std::env::var_os("XDG_STATE_HOME");
    open_default_log_in(home.as_deref(), state.as_deref(), mountpoint)
}

/// [`open_default_log`] with the two variables given, so tests need not change the
/// process's environment.
fn open_default_log_in(
    home: Option<&OsStr>,
    xdg_state_home: Option<&OsStr>,
    mountpoint: &Path,
) -> Result<(PathBuf, File), NoDefaultLog> {
    let (path, must_exist) = default_log_path(home, xdg_state_home, mountpoint)?;
    if let Some(home) = must_exist {
        if !home.is_dir() {
            return Err(NoDefaultLog::HomeNotDirectory(home));
        }
    }
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .ok_or(NoDefaultLog::NoStateDir)?;
    let dir = crate::files::private_dir(dir)?;
    let path = dir.join(path.file_name().unwrap_or(OsStr::new("s3creds.log")));
    let file = crate::files::open_log_with(&path, "remove it or pass --log-file FILE")?;
    Ok((path, file))
}

/// Replaces the default panic message, which quotes whatever the failing code held (a
/// slice of a token, say), with the place of the bug alone; through the logger too, so a
/// daemon's panic lands in its log file before the process dies.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| report_panic(info.location())));
}

fn report_panic(location: Option<&std::panic::Location<'_>>) {
    let place = location
        .map(|l| format!("{}:{}", l.file(), l.line()))
        .unwrap_or_else(|| "an unknown place".into());
    tracing::error!(place = %place, "internal error (a bug in s3credsfs)");
    eprintln!("s3credsfs: internal error at {place}; this is a bug, please report it");
}

#[cfg(test)]
mod tests;
