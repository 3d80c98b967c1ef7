//! Which build this binary is, decided once: whether it has the built-in gateway emulator
//! (the `dev-gateway` feature: `cargo demo` and the tests) or is the production build
//! (`cargo build`, `cargo install`, the packages). The start line, the metrics and the
//! help say it from here; the version line from build.rs, which sees the same feature
//! (`concat!` takes only literals).

/// Whether this binary has the built-in gateway emulator (`dev-gateway`, `mount --dev`).
pub const EMULATOR: bool = cfg!(feature = "dev-gateway");

/// The start line's name for this build.
pub const START_LINE: &str = if EMULATOR {
    "development (with the built-in gateway)"
} else {
    "production"
};

/// The metrics' `build` label.
pub const LABEL: &str = if EMULATOR {
    "dev-gateway"
} else {
    "production"
};
