//! The monthly Cost Explorer request ledger and the `max_monthly_requests` spend cap.
//!
//! Every request is counted *before* it is sent, in `state_dir/ce-requests.json`
//! (`{"version":1,"month":"2026-11","requests":12}`, UTC calendar month), under a short
//! flock of that file so that a `once`, a `check` and the service count exactly even when
//! they run at the same time. The record is rewritten in place within one disk sector, so a
//! crash leaves the old or the new count, and a reader (`status`) needs no lock. A request
//! that would go past the cap is never made. Without a usable state_dir, requests are
//! counted in memory (the cap then holds per process) and a warning says so.

use crate::files::{aside_name, plain_io};
use crate::yaml::{ConfigError, Doc};
use std::fs::{self, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use time::{Date, Month, OffsetDateTime};

/// The config key, and its default: 1000 requests, $10 a month.
pub const KEY: &str = "max_monthly_requests";
pub const DEFAULT_MAX: u64 = 1000;
/// The ledger file in state_dir.
pub const FILE: &str = "ce-requests.json";

/// `max_monthly_requests` of the config: a whole number, 0 for no cap.
pub fn settings(doc: &Doc) -> Result<u64, ConfigError> {
    let what = "a number of Cost Explorer requests per month (0 for no cap)";
    Ok(doc
        .integer(KEY, 0, 100_000_000, what)?
        .unwrap_or(DEFAULT_MAX))
}

/// Requests counted in one UTC calendar month.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    pub month: String,
    pub requests: u64,
}

/// The cap stopped a request: nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapReached {
    pub max: u64,
    pub requests: u64,
    pub month: String,
}

impl std::fmt::Display for CapReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{KEY} {} reached: {} Cost Explorer requests made in {} (UTC, ${}); not making another before next month (raise {KEY} and restart to pull now)",
            self.max,
            self.requests,
            self.month,
            cost_usd(self.requests)
        )
    }
}

/// `YYYY-MM` of a UTC instant.
pub fn month_of(t: OffsetDateTime) -> String {
    format!("{:04}-{:02}", t.year(), u8::from(t.month()))
}

/// 00:00 UTC on the first day of the month after `t`.
pub fn next_month_start(t: OffsetDateTime) -> OffsetDateTime {
    let (year, month) = match t.month() {
        Month::December => (t.year() + 1, Month::January),
        m => (t.year(), m.next()),
    };
    Date::from_calendar_date(year, month, 1)
        .map(|d| d.midnight().assume_utc())
        .unwrap_or(t)
}

/// What `requests` cost at $0.01 each, as a decimal string ("0.12", "10.00").
pub fn cost_usd(requests: u64) -> String {
    format!("{}.{:02}", requests / 100, requests % 100)
}

/// Requests of `month` in a recorded tally (an older month counts as none).
pub fn this_month(recorded: Option<&Tally>, month: &str) -> u64 {
    recorded
        .filter(|t| t.month == month)
        .map_or(0, |t| t.requests)
}

/// The tally with one more request in `month`, or the refusal when that would pass `max`
/// (0: no cap).
pub fn admit(recorded: Option<&Tally>, month: &str, max: u64) -> Result<Tally, CapReached> {
    let requests = this_month(recorded, month);
    if max > 0 && requests >= max {
        return Err(CapReached {
            max,
            requests,
            month: month.to_string(),
        });
    }
    Ok(Tally {
        month: month.to_string(),
        requests: requests + 1,
    })
}

/// The ledger in `dir`, read without a lock: read again until two reads agree, so a record
/// being rewritten is never taken half old, half new. None: no requests counted yet.
pub fn read(dir: &Path) -> Result<Option<Tally>, String> {
    let path = dir.join(FILE);
    let read_once = || match fs::read(&path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("{}: cannot read: {}", path.display(), plain_io(&e))),
    };
    let mut bytes = read_once()?;
    for _ in 0..10 {
        let again = read_once()?;
        if again == bytes {
            break;
        }
        bytes = again;
    }
    parse(&bytes).map_err(|()| format!("{}: not a request ledger", path.display()))
}

/// Where this process counts.
struct Ledger {
    dir: Option<PathBuf>,
    /// Memory-only mode (or after the disk failed): the tally of this process.
    memory: Option<Tally>,
    /// A write failure is an error (the user named state_dir for the service), not a fallback.
    strict: bool,
}

static LEDGER: Mutex<Option<Ledger>> = Mutex::new(None);

/// Counts one Cost Explorer request before it is sent; a request the cap does not allow
/// is refused here, unsent. `state_dir` is where the ledger lives, `delivering` whether the
/// target is HTTP (a preview keeps no state), `named` whether the user chose state_dir;
/// the first call opens the ledger for the process.
pub fn before_request(
    state_dir: &Path,
    delivering: bool,
    named: bool,
    max: u64,
) -> Result<(), Refused> {
    let mut guard = LEDGER.lock().unwrap_or_else(|e| e.into_inner());
    let ledger = guard.get_or_insert_with(|| Ledger::open(state_dir, delivering, named));
    ledger.count(OffsetDateTime::now_utc(), max)
}

/// Why a request may not be made: the cap, or a ledger that cannot be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Cap(CapReached),
    Io(String),
}

impl Ledger {
    /// On disk when state_dir exists (`once`, `run` and `check` have made it by now; a
    /// preview creates no state), else in memory, and says so. A failed write falls back to
    /// memory too, unless the user named state_dir for delivery: then the pull fails.
    fn open(dir: &Path, http: bool, named: bool) -> Ledger {
        let strict = http && named;
        if dir.is_dir() || strict {
            return Ledger {
                dir: Some(dir.to_path_buf()),
                memory: None,
                strict,
            };
        }
        let note = format!(
            "state_dir {} is not usable: Cost Explorer requests are counted in memory only, so {KEY} applies to this process alone",
            dir.display()
        );
        // A preview without state is a normal use (debug); a service or once, a warning.
        if http {
            crate::warn!("{note}");
        } else {
            crate::debug!("{note}");
        }
        Ledger {
            dir: None,
            memory: None,
            strict,
        }
    }

    fn count(&mut self, now: OffsetDateTime, max: u64) -> Result<(), Refused> {
        let month = month_of(now);
        if let Some(dir) = self.dir.clone() {
            match count_on_disk(&dir, &month, max) {
                Ok(result) => return result.map_err(Refused::Cap),
                Err(e) if self.strict => return Err(Refused::Io(e)),
                Err(e) => {
                    crate::warn!(
                        "{e}; Cost Explorer requests are counted in memory from now on, so {KEY} applies to this process alone"
                    );
                    self.memory = read(&dir).ok().flatten();
                    self.dir = None;
                }
            }
        }
        let next = admit(self.memory.as_ref(), &month, max).map_err(Refused::Cap)?;
        self.memory = Some(next);
        Ok(())
    }
}

/// The one record is rewritten in place at offset 0, always this many bytes (padded with
/// spaces): it sits in one disk sector, so a crash (or a power cut) leaves the old or the new
/// count. No rename and no fsync: on ext4 either costs milliseconds before every request.
const RECORD: usize = 96;

/// Read, decide and write the ledger under a flock of the file itself. The outer error is an
/// IO failure.
fn count_on_disk(dir: &Path, month: &str, max: u64) -> Result<Result<(), CapReached>, String> {
    let path = dir.join(FILE);
    let io = |e: std::io::Error| format!("{}: {}", path.display(), plain_io(&e));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io)?;
    // SAFETY: flock on a descriptor we own; released when `file` is closed.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) } != 0 {
        let e = std::io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::ENOLCK | libc::EOPNOTSUPP)) {
            return Err(io(e));
        }
    }
    let mut bytes = Vec::new();
    (&file).read_to_end(&mut bytes).map_err(io)?;
    let recorded = match parse(&bytes) {
        Ok(t) => t,
        Err(()) => {
            // Only damage from outside gets here: keep a copy, say so.
            let aside = aside_name(&path);
            let _ = fs::write(&aside, &bytes);
            crate::error!(
                "{}: not a request ledger; kept a copy as {} and counting this month's Cost Explorer requests afresh",
                path.display(),
                aside.display()
            );
            None
        }
    };
    let next = match admit(recorded.as_ref(), month, max) {
        Ok(t) => t,
        Err(cap) => return Ok(Err(cap)),
    };
    let json = serde_json::json!({ "version": 1, "month": next.month, "requests": next.requests });
    let record = format!("{:<width$}\n", json.to_string(), width = RECORD - 1);
    file.write_all_at(record.as_bytes(), 0).map_err(io)?;
    if bytes.len() > RECORD {
        file.set_len(RECORD as u64).map_err(io)?;
    }
    Ok(Ok(()))
}

/// A record, or None for an empty (new) file; Err for anything else.
fn parse(bytes: &[u8]) -> Result<Option<Tally>, ()> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice::<Tally>(bytes)
        .map(Some)
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sab-spend-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn cap(yaml: &str) -> Result<u64, ConfigError> {
        let map = serde_yaml::from_str(yaml).unwrap();
        settings(&Doc::new("c.yml", &map))
    }

    #[test]
    fn the_cap_parses_with_a_default_and_zero_for_none() {
        assert_eq!(cap("{}"), Ok(1000));
        assert_eq!(cap("max_monthly_requests: 0"), Ok(0));
        assert_eq!(cap("max_monthly_requests: \"25\""), Ok(25));
        for (bad, shown) in [
            ("-1", "-1"),
            ("1.5", "1.5"),
            ("lots", "\"lots\""),
            ("[1]", "a list"),
        ] {
            let e = cap(&format!("max_monthly_requests: {bad}")).unwrap_err().0;
            assert!(
                e.starts_with("c.yml: max_monthly_requests: expected a number"),
                "{e}"
            );
            assert!(e.ends_with(&format!("found {shown}")), "{e}");
        }
    }

    #[test]
    fn a_request_past_the_cap_is_refused_and_a_new_month_starts_at_zero() {
        let t = |requests| Tally {
            month: "2026-11".into(),
            requests,
        };
        assert_eq!(admit(None, "2026-11", 2), Ok(t(1)));
        assert_eq!(admit(Some(&t(1)), "2026-11", 2), Ok(t(2)));
        let refused = admit(Some(&t(2)), "2026-11", 2).unwrap_err();
        assert_eq!(refused.requests, 2);
        let line = refused.to_string();
        assert!(
            line.contains("max_monthly_requests 2 reached")
                && line.contains("2 Cost Explorer requests made in 2026-11"),
            "{line}"
        );
        assert_eq!(
            admit(Some(&t(2)), "2026-12", 2).unwrap(),
            Tally {
                month: "2026-12".into(),
                requests: 1
            }
        );
        assert_eq!(
            admit(Some(&t(5000)), "2026-11", 0),
            Ok(t(5001)),
            "0: no cap"
        );
    }

    #[test]
    fn months_costs_and_the_next_month_are_utc_and_exact() {
        assert_eq!(month_of(datetime!(2026-01-31 23:59:59 UTC)), "2026-01");
        assert_eq!(
            next_month_start(datetime!(2026-12-31 23:00 UTC)),
            datetime!(2027-01-01 00:00 UTC)
        );
        assert_eq!(
            next_month_start(datetime!(2026-02-01 00:00 UTC)),
            datetime!(2026-03-01 00:00 UTC)
        );
        assert_eq!(cost_usd(0), "0.00");
        assert_eq!(cost_usd(7), "0.07");
        assert_eq!(cost_usd(1000), "10.00");
        assert_eq!(cost_usd(123_456), "1234.56");
    }

    #[test]
    fn the_ledger_on_disk_counts_across_writers_and_stops_at_the_cap() {
        let dir = tmpdir("disk");
        let month = month_of(OffsetDateTime::now_utc());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let dir = dir.clone();
                let month = month.clone();
                std::thread::spawn(move || {
                    (0..10)
                        .filter(|_| count_on_disk(&dir, &month, 25).unwrap().is_ok())
                        .count()
                })
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(admitted, 25, "exactly the cap, never more");
        assert_eq!(read(&dir).unwrap().map(|t| t.requests), Some(25));
        assert_eq!(fs::metadata(dir.join(FILE)).unwrap().len(), RECORD as u64);
        fs::write(dir.join(FILE), format!("{{torn{}", "x".repeat(200))).unwrap();
        assert!(count_on_disk(&dir, &month, 25).unwrap().is_ok());
        assert_eq!(read(&dir).unwrap().map(|t| t.requests), Some(1));
        assert_eq!(fs::metadata(dir.join(FILE)).unwrap().len(), RECORD as u64);
        let kept = fs::read_dir(&dir).unwrap().flatten();
        assert_eq!(
            kept.filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
                .count(),
            1,
            "the damaged ledger is kept aside"
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
