//! The `s3credsfs` binary: parse, dispatch, turn errors into one line and an exit code.

use s3credsfs::app_error::AppError;
use s3credsfs::cli::{Cli, Command};
use s3credsfs::commands;
use std::process::ExitCode;

#[cfg(feature = "dev-gateway")]
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot start the async runtime")
}

/// Keeps secrets out of core dumps and away from same-user ptrace, before any secret
/// (a typed password, a token file) is read, for every command.
fn not_dumpable() {
    // It cannot fail for a value of 0 or 1 (prctl(2)); were it to, there is nothing better
    // to do than go on.
    let _ = nix::sys::prctl::set_dumpable(false);
}

fn main() -> ExitCode {
    not_dumpable();
    s3credsfs::logging::install_panic_hook();
    let cli = Cli::parse_args();
    let result: Result<(), AppError> = match cli.command {
        Command::Fetch(args) => commands::fetch::run(args).map_err(Into::into),
        Command::Mount(args) => commands::mount::run(args),
        Command::Unmount(args) => commands::unmount::run(args),
        // Its exit status is the monitoring verdict, and it prints its own errors.
        Command::Status(args) => return commands::status::run(args).into(),
        Command::Refresh(args) => commands::refresh::run(args),
        Command::Exec(args) => commands::exec::run(args),
        Command::Config(args) => commands::config::run_on_stdout(args).map_err(Into::into),
        Command::Completions(args) => commands::completions::run(args),
        Command::Man(args) => commands::man::run(args),
        #[cfg(feature = "dev-gateway")]
        Command::DevGateway(args) => args
            .options()
            .to_config()
            .and_then(|config| {
                s3credsfs::logging::init_stderr("info");
                runtime().block_on(s3credsfs::dev::gateway::run_dev_gateway(config))
            })
            .map_err(|e| s3credsfs::error::Error::Config(e).into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s3credsfs: error: {e}");
            e.exit_status().into()
        }
    }
}
