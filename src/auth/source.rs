//! Reading the password or client secret once at start: environment, file (owner-only,
//! as ssh demands), command output, or a no-echo terminal prompt.

use crate::config::{PasswordSource, SecretSource};
use crate::error::{Error, Result};
use crate::files::Kind;
use crate::secret::Secret;
use std::path::Path;
use zeroize::Zeroizing;

fn from_env(var: &str, what: &str) -> Result<Secret> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
        _ => Err(Error::Config(format!(
            "environment variable {var} (named for the {what}) is not set or is empty; export it or fix the setting"
        ))),
    }
}

/// Reads a secret file, refusing one that group or others can read or that is not ours.
pub fn from_file(path: &Path, what: &str) -> Result<Secret> {
    let bytes = Zeroizing::new(crate::files::read_checked(
        path,
        &format!("{what} file"),
        "fix the path",
        Kind::Secret,
    )?);
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        Error::Config(format!(
            "the {what} file {} is not UTF-8 text",
            path.display()
        ))
    })?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(Error::Config(format!(
            "the {what} file {} is empty",
            path.display()
        )));
    }
    Ok(Secret::new(value))
}

fn from_command(command: &str) -> Result<Secret> {
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| {
            Error::Config(format!(
                "cannot run --password-command ({e}); check that `sh` exists"
            ))
        })?;
    if !output.status.success() {
        return Err(Error::Config(format!(
            "--password-command failed ({}); fix the command so it prints the password and exits 0",
            output.status
        )));
    }
    let stdout = Zeroizing::new(output.stdout);
    let value = std::str::from_utf8(&stdout).map_err(|_| {
        Error::Config("--password-command printed something that is not UTF-8".into())
    })?;
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::Config(
            "--password-command printed nothing; it must print the password".into(),
        ));
    }
    Ok(Secret::new(value))
}

/// Asks on the terminal with echo off (`rpassword` restores the terminal afterwards, also
/// on error).
fn prompt(username: &str, gateway: &str) -> Result<Secret> {
    // Opened here only so that having no terminal keeps its own sentence; rpassword
    // opens /dev/tty again for the prompt and the reading.
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| Error::Config(format!("cannot open the terminal to ask for the password ({e}); use --password-env, --password-file or --password-command")))?;
    let mut typed = Zeroizing::new(
        rpassword::prompt_password(format!("Password for {username} at {gateway}: ")).map_err(
            |e| Error::Config(format!("cannot read the password from the terminal ({e})")),
        )?,
    );
    // Taken, not copied: the buffer moves into the secret.
    let secret = Secret::new(std::mem::take(&mut *typed));
    if secret.is_empty() {
        return Err(Error::Config("no password was typed".into()));
    }
    Ok(secret)
}

/// Obtains the password the configuration names.
pub fn password(source: &PasswordSource, username: &str, gateway: &str) -> Result<Secret> {
    match source {
        PasswordSource::Env(var) => from_env(var, "password"),
        PasswordSource::File(path) => from_file(path, "password"),
        PasswordSource::Command(command) => from_command(command),
        PasswordSource::Prompt => prompt(username, gateway),
        PasswordSource::Given(secret) => Ok(secret.clone()),
    }
}

/// Obtains the client secret the configuration names.
pub fn client_secret(source: &SecretSource) -> Result<Secret> {
    match source {
        SecretSource::Env(var) => from_env(var, "client secret"),
        SecretSource::File(path) => from_file(path, "client secret"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secret_files_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "pa ss\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = from_file(&path, "password").unwrap_err().to_string();
        assert!(err.contains("(mode 0644); run `chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(from_file(&path, "password").unwrap().expose(), "pa ss");
    }

    #[test]
    fn command_output_is_trimmed_and_failures_hide_output() {
        let pw = password(
            &PasswordSource::Command("printf ' pw\\n'".into()),
            "u",
            "gw",
        )
        .unwrap();
        assert_eq!(pw.expose(), "pw");
        let err = password(
            &PasswordSource::Command("echo leaked; exit 3".into()),
            "u",
            "gw",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("--password-command failed") && !err.contains("leaked"),
            "{err}"
        );
    }

    #[test]
    fn missing_env_is_named() {
        let err = password(
            &PasswordSource::Env("S3CREDSFS_TEST_UNSET_VAR".into()),
            "u",
            "gw",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("environment variable S3CREDSFS_TEST_UNSET_VAR"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_variable_is_no_password() {
        // Names no other test uses; std serialises access to the environment.
        std::env::set_var("S3CREDSFS_UNIT_PW_SET", "pw ");
        std::env::set_var("S3CREDSFS_UNIT_PW_EMPTY", "");
        let env = |var: &str| password(&PasswordSource::Env(var.into()), "u", "gw");
        assert_eq!(env("S3CREDSFS_UNIT_PW_SET").unwrap().expose(), "pw ");
        assert_eq!(
            env("S3CREDSFS_UNIT_PW_EMPTY").err().unwrap().to_string(),
            "environment variable S3CREDSFS_UNIT_PW_EMPTY (named for the password) is not set \
             or is empty; export it or fix the setting"
        );
    }

    #[test]
    fn a_client_secret_comes_from_a_private_file_or_a_variable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cr3t\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let secret = client_secret(&SecretSource::File(path.clone())).unwrap();
        assert_eq!(secret.expose(), "s3cr3t");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(client_secret(&SecretSource::File(path)).is_err());
        let err = client_secret(&SecretSource::Env("S3CREDSFS_TEST_UNSET_VAR".into()))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("(named for the client secret)"), "{err}");
    }

    /// Run again by itself in a new session, which has no controlling terminal, the
    /// prompt must fail with its own sentence rather than wait or invent a password.
    #[test]
    fn without_a_terminal_the_prompt_names_the_other_sources() {
        const CHILD: &str = "S3CREDSFS_UNIT_PROMPT_CHILD";
        if std::env::var_os(CHILD).is_some() {
            let err = password(&PasswordSource::Prompt, "u", "gw").err().unwrap();
            let err = err.to_string();
            assert!(
                err.starts_with("cannot open the terminal to ask for the password (")
                    && err
                        .ends_with("); use --password-env, --password-file or --password-command"),
                "{err}"
            );
            return;
        }
        use std::os::unix::process::CommandExt;
        let name = "auth::source::tests::without_a_terminal_the_prompt_names_the_other_sources";
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", name, "--test-threads=1"])
            .env(CHILD, "1")
            .stdin(std::process::Stdio::null());
        // SAFETY: setsid is async-signal-safe, the only call between fork and exec.
        unsafe {
            cmd.pre_exec(|| match libc::setsid() {
                -1 => Err(std::io::Error::last_os_error()),
                _ => Ok(()),
            });
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("test result: ok. 1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    /// Run again by itself in a new session whose controlling terminal is a pseudo-
    /// terminal, where Enter alone is typed at the prompt: that is no password, refused
    /// with its own sentence instead of sent to the gateway as an empty one.
    #[test]
    fn an_empty_password_typed_at_the_prompt_is_refused() {
        const CHILD: &str = "S3CREDSFS_UNIT_EMPTY_PROMPT_CHILD";
        if std::env::var_os(CHILD).is_some() {
            let err = password(&PasswordSource::Prompt, "u", "gw").err().unwrap();
            assert_eq!(err.to_string(), "no password was typed");
            return;
        }
        use std::io::Read;
        use std::os::unix::process::CommandExt;
        let pty = nix::pty::openpty(None, None).unwrap();
        let name = "auth::source::tests::an_empty_password_typed_at_the_prompt_is_refused";
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", name, "--test-threads=1"])
            .env(CHILD, "1")
            .stdin(std::fs::File::from(pty.slave.try_clone().unwrap()))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        // Every copy of the terminal's other end goes, so that the reader below sees its
        // end when the child exits.
        drop(cmd);
        drop(pty.slave);
        // Type Enter once the prompt is shown (echo is off by then).
        let mut master = std::fs::File::from(pty.master);
        let mut typist = master.try_clone().unwrap();
        let (shown, prompt) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let (mut seen, mut buf) = (Vec::new(), [0u8; 256]);
            while let Ok(n @ 1..) = master.read(&mut buf) {
                seen.extend_from_slice(&buf[..n]);
                if seen.windows(13).any(|w| w == b"Password for ") {
                    let _ = shown.send(());
                }
            }
        });
        let appeared = prompt.recv_timeout(std::time::Duration::from_secs(30));
        if appeared.is_ok() {
            std::io::Write::write_all(&mut typist, b"\n").unwrap();
        } else {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        drop(typist);
        let _ = reader.join();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(appeared.is_ok(), "no prompt appeared: {stdout}");
        assert!(
            out.status.success() && stdout.contains("test result: ok. 1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
