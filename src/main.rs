//! The `s3credsfs` binary: parse, dispatch, turn errors into one line and an exit code.

use s3credsfs::cli::{Cli, Command, FetchArgs, MountCommand};
use s3credsfs::config::{load_layers, resolve, Context};
use s3credsfs::error::Result;
use s3credsfs::mount::MountError;
use s3credsfs::render::{render, Profile};
use s3credsfs::sts::Pipeline;
use std::io::Write;
use std::process::ExitCode;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot start the async runtime")
}

fn fetch(args: FetchArgs) -> Result<()> {
    s3credsfs::logging::init_stderr("warn");
    let ctx = Context::from_process();
    let settings = resolve(&load_layers(&args.settings.0, &ctx)?, &ctx)?;
    s3credsfs::logging::set_stderr_format(settings.log_format);
    let pipeline = Pipeline::new(&settings)?;
    let creds = runtime().block_on(pipeline.fetch())?;
    let text = render(
        args.format,
        &creds,
        &Profile::named(&settings.profile, &settings.region),
    )?;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
    Ok(())
}

/// `mount`, with `--dev`'s built-in gateway plugged in when it is asked for (and this build
/// has it).
fn mount(args: MountCommand) -> std::result::Result<(), MountError> {
    #[cfg(feature = "dev-gateway")]
    let local = s3credsfs::dev::local_gateway(&args.dev.options())?;
    #[cfg(not(feature = "dev-gateway"))]
    let local = None;
    s3credsfs::mount::run_mount(args.mount, local)
}

fn config_check(args: s3credsfs::cli::config_check::ConfigArgs) -> Result<()> {
    s3credsfs::logging::init_stderr("warn");
    let ctx = Context::from_process();
    s3credsfs::cli::config_check::run(args, &ctx, &mut std::io::stdout().lock())
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
    let result: std::result::Result<(), MountError> = match cli.command {
        Command::Fetch(args) => fetch(args).map_err(Into::into),
        Command::Mount(args) => mount(args),
        Command::Unmount(args) => s3credsfs::mount::run_unmount(args),
        // Its exit status is the monitoring verdict, and it prints its own errors.
        Command::Status(args) => return s3credsfs::mount::run_status(args).into(),
        Command::Refresh(args) => s3credsfs::mount::refresh::run_refresh(args),
        Command::Exec(args) => s3credsfs::exec::run(args),
        Command::Config(args) => config_check(args).map_err(Into::into),
        Command::Completions(args) => {
            s3credsfs::cli::extras::run_completions(args).map_err(Into::into)
        }
        Command::Man(args) => s3credsfs::cli::extras::run_man(args).map_err(Into::into),
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
