//! `s3credsfs completions SHELL`: the script on standard output.

use crate::app_error::Result;
use crate::cli::extras::write_completions;
use crate::cli::CompletionsArgs;
use std::io::Write;

/// Runs `s3credsfs completions`.
pub fn run(args: CompletionsArgs) -> Result<()> {
    let mut out = std::io::stdout().lock();
    write_completions(args.shell, &mut out);
    // A closed pipe (`| head`) is the reader's choice, not an error, as for `fetch`.
    let _ = out.flush();
    Ok(())
}
