//! Leveled log lines on stderr, filtered by `LOG_LEVEL`.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Sets the level from a `LOG_LEVEL` value; an unknown value is reported and info is kept.
pub fn init(value: Option<&str>) {
    let level = match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("info") => Level::Info,
        Some("debug") | Some("trace") => Level::Debug,
        Some("warn") | Some("warning") => Level::Warn,
        Some("error") => Level::Error,
        Some(other) => {
            write(
                Level::Warn,
                &format!(
                    "LOG_LEVEL: expected debug, info, warn or error, found {other:?}; using info"
                ),
            );
            Level::Info
        }
    };
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed)
}

/// Writes one line: `2026-11-24T02:00:00Z INFO message`.
pub fn write(level: Level, message: &str) {
    if !enabled(level) {
        return;
    }
    let name = match level {
        Level::Debug => "DEBUG",
        Level::Info => "INFO",
        Level::Warn => "WARN",
        Level::Error => "ERROR",
    };
    let now = crate::schedule::rfc3339(time::OffsetDateTime::now_utc());
    let _ = writeln!(std::io::stderr().lock(), "{now} {name} {message}");
}

#[macro_export]
macro_rules! debug { ($($t:tt)*) => { if $crate::log::enabled($crate::log::Level::Debug) { $crate::log::write($crate::log::Level::Debug, &format!($($t)*)) } } }
#[macro_export]
macro_rules! info { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Info, &format!($($t)*)) } }
#[macro_export]
macro_rules! warn { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Warn, &format!($($t)*)) } }
#[macro_export]
macro_rules! error { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Error, &format!($($t)*)) } }
