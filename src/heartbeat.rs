//! The service's sign of life (`heartbeat.json`) and how the last pull ended (`last-pull.json`).
//!
//! The service (`run`) writes `state_dir/heartbeat.json` whenever it acts and before every
//! wait, with the time by which it will act next; each pull leaves `state_dir/last-pull.json`.
//! Both files are replaced by rename, so a reader (`status`) sees the old or the new one.

use crate::files::plain_io;
use crate::schedule::{format_date, rfc3339};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use time::{Date, OffsetDateTime};

pub const HEARTBEAT: &str = "heartbeat.json";
pub const LAST_PULL: &str = "last-pull.json";
/// The longest the service works without a sign of life: one request with its connect and
/// read timeouts (10 s + 60 s), with room to spare.
pub const WORK_BOUND: Duration = Duration::from_secs(120);
/// While it works without waiting (a long delivery), the heartbeat is renewed this often.
const WORKING_EVERY: Duration = Duration::from_secs(30);
/// The service's sign of life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub pid: u32,
    /// When it last acted (UTC, RFC 3339).
    pub acted: String,
    /// The time by which it will act again.
    pub next_act: String,
    /// What it is doing until then, for people.
    pub doing: String,
    /// It exited cleanly (SIGTERM/SIGINT).
    #[serde(default)]
    pub stopped: bool,
}

/// The inclusive day range of a pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Days {
    pub first: String,
    pub last: String,
}

/// How the latest pull (service or `once`) ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastPull {
    pub time: String,
    pub days: Days,
    pub ok: bool,
    pub error: Option<String>,
}

/// The heartbeat of this process, when it is the service: its state_dir and last write.
static SERVICE: Mutex<Option<(PathBuf, Option<Instant>)>> = Mutex::new(None);

/// Makes this process the service that heartbeats into `dir` (None: memory-only, no heartbeat).
pub fn serve(dir: Option<&Path>) {
    *SERVICE.lock().unwrap_or_else(|e| e.into_inner()) = dir.map(|d| (d.to_path_buf(), None));
}

/// Records that the service acts now and will act again by `next_act` (call before a wait).
/// Writing a file before sleeping costs no wake-up; no-op outside the service.
pub fn beat(doing: &str, next_act: OffsetDateTime) {
    write_beat(doing, next_act, false, false);
}

/// The service starts a round of work; a `once` may hold the state_dir lock it waits for
/// up to `send_timeout_s`.
pub fn round(send_timeout_s: u64) {
    let lock_wait = Duration::from_secs(send_timeout_s);
    beat(
        "working",
        OffsetDateTime::now_utc() + lock_wait + WORK_BOUND,
    );
}

/// The service is working: renews the heartbeat if it is older than WORKING_EVERY.
pub fn working() {
    let now = OffsetDateTime::now_utc();
    write_beat("working", now + WORK_BOUND, false, true);
}

/// The service exits cleanly: `status --check` then says it stopped.
pub fn stopped() {
    write_beat("stopped", OffsetDateTime::now_utc(), true, false);
}

fn write_beat(doing: &str, next_act: OffsetDateTime, stopped: bool, only_if_stale: bool) {
    let mut guard = SERVICE.lock().unwrap_or_else(|e| e.into_inner());
    let Some((dir, last)) = guard.as_mut() else {
        return;
    };
    if only_if_stale && last.is_some_and(|t| t.elapsed() < WORKING_EVERY) {
        return;
    }
    *last = Some(Instant::now());
    let beat = Heartbeat {
        pid: std::process::id(),
        acted: rfc3339(OffsetDateTime::now_utc()),
        next_act: rfc3339(next_act),
        doing: doing.to_string(),
        stopped,
    };
    let json = serde_json::to_string(&beat).unwrap_or_default();
    if let Err(e) = replace(&dir.join(HEARTBEAT), format!("{json}\n").as_bytes()) {
        crate::debug!("heartbeat not recorded: {e}");
    }
}

/// Records how a pull of `first..=last` ended (`error`: None when it succeeded); no-op
/// without a dir.
pub fn record_pull(dir: Option<&Path>, first: Date, last: Date, error: Option<String>) {
    let Some(dir) = dir else { return };
    let record = LastPull {
        time: rfc3339(OffsetDateTime::now_utc()),
        days: Days {
            first: format_date(first),
            last: format_date(last),
        },
        ok: error.is_none(),
        error,
    };
    let json = serde_json::to_string(&record).unwrap_or_default();
    if let Err(e) = replace(&dir.join(LAST_PULL), format!("{json}\n").as_bytes()) {
        crate::warn!("{e}");
    }
}

/// Temporary file and rename, no fsync: a record of the moment, not state to keep.
fn replace(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    fs::write(&tmp, bytes)
        .and_then(|_| fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {}", path.display(), plain_io(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn a_pull_is_recorded_with_its_days_and_its_error() {
        let dir = std::env::temp_dir().join(format!("sab-heartbeat-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let read = || -> LastPull {
            serde_json::from_slice(&fs::read(dir.join(LAST_PULL)).unwrap()).unwrap()
        };
        let (first, last) = (date!(2026 - 11 - 28), date!(2026 - 11 - 30));
        record_pull(Some(&dir), first, last, Some("AccessDenied".into()));
        let failed = read();
        assert_eq!(
            (failed.ok, failed.error.as_deref()),
            (false, Some("AccessDenied"))
        );
        assert_eq!(
            (failed.days.first.as_str(), failed.days.last.as_str()),
            ("2026-11-28", "2026-11-30")
        );
        record_pull(Some(&dir), first, last, None);
        assert_eq!((read().ok, read().error), (true, None));
        record_pull(None, first, last, Some("not written".into()));
        assert!(read().ok);
        fs::remove_dir_all(&dir).unwrap();
    }
}
