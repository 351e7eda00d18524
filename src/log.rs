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
    // Whatever a message holds, it stays one line of printable text.
    let message = escape(message, usize::MAX);
    let _ = writeln!(std::io::stderr().lock(), "{now} {name} {message}");
}

/// Longest piece of peer text (an error message, a service name, an answer) shown in a line.
pub const PEER_TEXT_MAX: usize = 300;

/// Text that came from the network, fit for a log line: control characters (C0, C1, DEL)
/// and bidirectional overrides escaped as `\u{..}`, cut to `PEER_TEXT_MAX` characters with `…`.
pub fn peer(text: &str) -> String {
    escape(text, PEER_TEXT_MAX)
}

/// `text` with every control or bidi-override character escaped, cut after `max` characters.
pub fn escape(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max.saturating_add(16)));
    for (count, c) in text.chars().enumerate() {
        if count == max {
            out.push('…');
            break;
        }
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// C0 (incl. CR, LF, TAB, ESC), DEL, C1, and the Unicode bidi embeddings, overrides and isolates.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

#[macro_export]
macro_rules! debug { ($($t:tt)*) => { if $crate::log::enabled($crate::log::Level::Debug) { $crate::log::write($crate::log::Level::Debug, &format!($($t)*)) } } }
#[macro_export]
macro_rules! info { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Info, &format!($($t)*)) } }
#[macro_export]
macro_rules! warn { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Warn, &format!($($t)*)) } }
#[macro_export]
macro_rules! error { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Error, &format!($($t)*)) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_text_cannot_forge_a_line_or_drive_a_terminal() {
        let forged = "denied\r\n2026-11-24T02:00:00Z INFO delivered 42\u{1b}[2K\u{1b}]0;title\u{7}\u{9b}31m\u{7f}\u{202e}txt.exe";
        let shown = peer(forged);
        assert_eq!(
            shown,
            "denied\\u{d}\\u{a}2026-11-24T02:00:00Z INFO delivered 42\\u{1b}[2K\\u{1b}]0;title\\u{7}\\u{9b}31m\\u{7f}\\u{202e}txt.exe"
        );
        assert!(!shown.chars().any(unsafe_char), "{shown}");
        assert!(!shown.contains('\n') && !shown.contains('\r'));
    }

    #[test]
    fn peer_text_is_cut_to_a_sane_length() {
        let long = "x".repeat(10_000);
        let shown = peer(&long);
        assert_eq!(shown.chars().count(), PEER_TEXT_MAX + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(
            peer("Amazon Simple Storage Service – Ünïcode"),
            "Amazon Simple Storage Service – Ünïcode"
        );
    }
}
