//! A log kept in memory, for unit tests of what is logged (and at which level): one
//! writer for them all instead of one per test module.

use crate::sync::lock;
use std::sync::{Arc, Mutex};

/// Log lines written so far, shared by the subscriber and the test.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// A plain-text subscriber writing here, events at `level` and above, as the daemon's
    /// log would show them.
    pub fn subscriber(&self, level: tracing::Level) -> impl tracing::Subscriber + Send + Sync {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.0)).into_owned()
    }
}

/// What `body` logs at `level` and above, on this thread.
pub fn logged(level: tracing::Level, body: impl FnOnce()) -> String {
    let captured = Captured::default();
    tracing::subscriber::with_default(captured.subscriber(level), body);
    captured.text()
}
