//! The service's sign of life (`heartbeat.json`) and how the last pull ended (`last-pull.json`).
//!
//! The service (`run`) writes `state_dir/heartbeat.json` whenever it acts and before every
//! wait, with the time by which it will act next; each pull leaves `state_dir/last-pull.json`.
//! Both are written to a temporary file, synced and renamed, so a reader (`status`) and a
//! power cut leave the old or the new one; a damaged one is kept aside and replaced at the
//! next write.

use crate::files::{aside_name, move_aside, plain_io, write_atomic, write_error};
use crate::schedule::{format_date, rfc3339};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
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
    /// It exited cleanly (SIGTERM, SIGINT, SIGHUP or SIGQUIT).
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

/// The service exits cleanly: `status --check` then says it stopped. Later beats are
/// no-ops (a stop at the end of the grace period races the main thread).
pub fn stopped() {
    write_beat("stopped", OffsetDateTime::now_utc(), true, false);
    *SERVICE.lock().unwrap_or_else(|e| e.into_inner()) = None;
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
    let path = dir.join(HEARTBEAT);
    keep_if_damaged::<Heartbeat>(&path);
    if let Err(e) = replace_synced(&path, format!("{json}\n").as_bytes()) {
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
    let path = dir.join(LAST_PULL);
    keep_if_damaged::<LastPull>(&path);
    if let Err(e) = write_atomic(&path, format!("{json}\n").as_bytes()) {
        crate::warn!("{e}");
    }
}

/// What a heartbeat or last-pull file holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Record<T> {
    /// No such file: nothing written yet.
    Absent,
    Good(T),
    /// One line naming the file and what is wrong with it.
    Damaged(String),
}

/// Far more than a record ever takes (about 200 bytes).
const MAX_RECORD: u64 = 64 * 1024;

/// Reads and checks a record file; Err only when the system refuses the read (permissions,
/// I/O errors). A FIFO or a device is never waited on: it is damage, like an empty file,
/// bytes that are not UTF-8 or text that is not the record.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<Record<T>, String> {
    let damaged = |what: &str| {
        Ok(Record::Damaged(format!(
            "{}: damaged: {what}",
            path.display()
        )))
    };
    let cannot = |e: std::io::Error| format!("{}: cannot read: {}", path.display(), plain_io(&e));
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Record::Absent),
        Err(e) => return Err(cannot(e)),
    };
    if !file.metadata().map_err(cannot)?.is_file() {
        return damaged("not a regular file");
    }
    let bytes = crate::files::read_capped(file, MAX_RECORD).map_err(cannot)?;
    if bytes.len() as u64 > MAX_RECORD {
        return damaged(&format!("larger than {} KiB", MAX_RECORD / 1024));
    }
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return damaged("not UTF-8 text");
    };
    if text.trim().is_empty() {
        return damaged("empty");
    }
    match serde_json::from_str(text) {
        Ok(record) => Ok(Record::Good(record)),
        Err(e) => damaged(&format!("not the record it should hold ({e})")),
    }
}

/// Before a record is replaced: a damaged one is kept beside it as
/// `<name>.corrupt-<UTC time>` and named in one line (a copy, so that a reader never
/// finds no file; a FIFO or a directory is renamed, as nothing can be written over it).
fn keep_if_damaged<T: DeserializeOwned>(path: &Path) {
    let Ok(Record::Damaged(what)) = read::<T>(path) else {
        return;
    };
    let kept = match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => {
            let aside = aside_name(path);
            fs::copy(path, &aside)
                .map(|_| aside.clone())
                .map_err(|e| write_error(&aside, &e))
        }
        _ => move_aside(path),
    };
    match kept {
        Ok(aside) => crate::error!("{what}; kept it as {} and wrote a new one", aside.display()),
        Err(e) => crate::error!("{what}; could not keep it aside ({e}); writing a new one"),
    }
}

/// Temporary file, fdatasync, rename, without a sync of the directory: the heartbeat is
/// written often (before every wait), so it costs one disk flush, not two. A power cut then
/// leaves the old or the new file, whole: the rename may be lost, and a heartbeat one write
/// old is right for a service that a power cut stopped.
fn replace_synced(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let result = File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_data()))
        .and_then(|()| fs::rename(&tmp, path));
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        write_error(path, &e)
    })
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
