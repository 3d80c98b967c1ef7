//! `s3credsfs fetch`: credentials once, printed in the chosen format (usable as an AWS
//! `credential_process`).

use crate::cli::FetchArgs;
use crate::config::{load_layers, resolve, Context};
use crate::error::Result;
use crate::render::{render, Profile};
use crate::sts::Pipeline;
use std::io::Write;

/// Runs `s3credsfs fetch`.
pub fn run(args: FetchArgs) -> Result<()> {
    crate::logging::init_stderr("warn");
    let ctx = Context::from_process();
    let settings = resolve(&load_layers(&args.settings.0, &ctx)?, &ctx)?;
    crate::logging::set_stderr_format(settings.log_format);
    let pipeline = Pipeline::new(&settings)?.remembering_refusals();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot start the async runtime");
    let creds = runtime.block_on(pipeline.fetch())?;
    let text = render(
        args.format,
        &creds,
        &Profile::named(&settings.profile, &settings.region),
    )?;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
    Ok(())
}
