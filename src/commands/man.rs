//! `s3credsfs man [--out DIR]`: the manual page on standard output, or every page
//! written into a directory.

use crate::app_error::Result;
use crate::cli::extras::{write_man_page, write_man_pages};
use crate::cli::ManArgs;
use std::io::Write;

/// Runs `s3credsfs man`.
pub fn run(args: ManArgs) -> Result<()> {
    match args.out {
        Some(dir) => write_man_pages(&dir),
        None => {
            let mut out = std::io::stdout().lock();
            let _ = write_man_page(&mut out).and_then(|_| out.flush());
            Ok(())
        }
    }
}
