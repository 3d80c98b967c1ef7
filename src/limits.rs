//! The open-file limit: a daemon that serves other processes must keep descriptors for
//! its own refreshes, so it starts with the most the system lets it have.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// The soft and hard `RLIMIT_NOFILE` of this process.
pub fn nofile() -> std::io::Result<(u64, u64)> {
    Ok(getrlimit(Resource::RLIMIT_NOFILE)?)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (the usual soft default, 1024, is
/// small next to what a busy endpoint and its refreshes may need); returns the new soft
/// limit.
pub fn raise_nofile() -> std::io::Result<u64> {
    let (soft, hard) = nofile()?;
    if soft >= hard {
        return Ok(soft);
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}

/// `raise_nofile` for daemon start: a failure is logged and the daemon goes on with the
/// limit it has.
pub fn raise_nofile_or_warn() {
    match raise_nofile() {
        Ok(soft) => tracing::debug!(soft, "open-file limit"),
        Err(error) => tracing::warn!(
            error = %error,
            "cannot raise the open-file limit to its hard limit; the mount works, but raise \
             `ulimit -n` if many clients use the container endpoint"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_limit() {
        let (_, hard) = nofile().unwrap();
        // Lower the soft limit a little (harmless to other tests), then raise it.
        setrlimit(Resource::RLIMIT_NOFILE, hard - 1, hard).unwrap();
        assert_eq!(nofile().unwrap(), (hard - 1, hard));
        assert_eq!(raise_nofile().unwrap(), hard);
        assert_eq!(nofile().unwrap(), (hard, hard));
    }
}
