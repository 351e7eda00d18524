//! Where events go: stdout, a CloudEvents HTTP receiver, or an EventBridge bus, read from one `target` string.

use crate::eventbridge::{Bus, PREFIX};
use crate::yaml::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `-`: structured JSON lines on stdout; no state is read or written.
    Stdout,
    Http(String),
    /// `eventbridge:<bus name or ARN>`: PutEvents (its region and endpoint: `Bus::locate`).
    EventBridge(Bus),
}

/// `-`, `eventbridge:<bus>` or an http(s) URL, from `from` (a flag, a variable, a key).
pub fn parse(from: &str, value: &str) -> Result<Target, ConfigError> {
    let value = value.trim();
    if value == "-" {
        return Ok(Target::Stdout);
    }
    if let Some(bus) = value.strip_prefix(PREFIX) {
        return Bus::parse(from, bus).map(Target::EventBridge);
    }
    crate::urls::check_http_url(from, value).map_err(ConfigError)?;
    Ok(Target::Http(value.to_string()))
}
