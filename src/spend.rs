//! The monthly Cost Explorer request ledger and the `max_monthly_requests` spend cap.
//!
//! Every request is counted *before* it is sent, in `state_dir/ce-requests.json` (UTC
//! calendar month), under a short flock of that file so that a `once`, a `check` and the
//! service count exactly even when they run at the same time. The file holds two records
//! ("slots"), each with a checksum and alone in its own 4 KiB block, written in turn in
//! place and synced (fdatasync) before the request goes out: a crash or a power cut while
//! one is written leaves the other, one count behind, and no request is sent before its
//! count is on disk. Read back, the newer good slot counts; with one slot damaged, the
//! other plus one (it may have been one ahead: a request counted twice, never one missed);
//! with none readable, the month's count is lost and the cap is taken as reached until the
//! month ends. A request that would go past the cap is never made. Without a usable
//! state_dir, requests are counted in memory (the cap then holds per process) and a
//! warning says so.

use crate::files::{aside_name, move_aside, plain_io, sync_dir, write_error};
use crate::yaml::{ConfigError, Doc};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub month: String,
    pub requests: u64,
    /// The month's count was lost to a damaged ledger: `requests` are those counted since,
    /// and the cap counts as reached until the month ends.
    pub lost: bool,
}

/// The cap stopped a request: nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapReached {
    pub max: u64,
    pub requests: u64,
    pub month: String,
    /// Taken as reached because the month's count was lost (see Tally::lost).
    pub lost: bool,
}

impl std::fmt::Display for CapReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.lost {
            return write!(
                f,
                "{KEY} {} taken as reached: the count of Cost Explorer requests made in {} (UTC) was lost when state_dir/{FILE} was damaged; not making another before next month (to count from 0 now, check this month's requests in the AWS bill, then delete state_dir/{FILE} and restart)",
                self.max, self.month
            );
        }
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

/// The tally of `month` in a recorded one (an older month counts as none).
fn of_month(recorded: Option<&Tally>, month: &str) -> Tally {
    recorded
        .filter(|t| t.month == month)
        .cloned()
        .unwrap_or_else(|| Tally {
            month: month.to_string(),
            requests: 0,
            lost: false,
        })
}

/// Requests of `month` in a recorded tally (an older month counts as none), and whether
/// its count was lost.
pub fn this_month(recorded: Option<&Tally>, month: &str) -> (u64, bool) {
    let t = of_month(recorded, month);
    (t.requests, t.lost)
}

/// The tally with one more request in `month`, or the refusal when that would pass `max`
/// (0: no cap) or the month's count was lost.
pub fn admit(recorded: Option<&Tally>, month: &str, max: u64) -> Result<Tally, CapReached> {
    let t = of_month(recorded, month);
    if max > 0 && (t.lost || t.requests >= max) {
        return Err(CapReached {
            max,
            requests: t.requests,
            month: t.month,
            lost: t.lost,
        });
    }
    Ok(Tally {
        requests: t.requests + 1,
        ..t
    })
}

/// The ledger as a reader finds it: the tally the next count starts from, and what is
/// damaged (a phrase without the path), if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub tally: Option<Tally>,
    pub damage: Option<String>,
}

/// The ledger in `dir` as `month` (UTC) sees it, read without a lock and without writing
/// (for `status`): read again until two reads agree, so a slot being rewritten is not taken
/// for damage.
pub fn read(dir: &Path, month: &str) -> Result<Reading, String> {
    let path = dir.join(FILE);
    let read_once = || -> Result<Option<Vec<u8>>, String> {
        let file = match open_nonblocking(&path, false) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: cannot read: {}", path.display(), plain_io(&e))),
        };
        read_file(&file).map_err(|e| format!("{}: cannot read: {}", path.display(), e))
    };
    let mut bytes = read_once()?;
    for _ in 0..10 {
        let again = read_once()?;
        if again == bytes {
            break;
        }
        bytes = again;
    }
    Ok(match bytes {
        None => Reading {
            tally: None,
            damage: None,
        },
        Some(b) => decide(&b, month).reading,
    })
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
                    self.memory = read(&dir, &month).ok().and_then(|r| r.tally);
                    self.dir = None;
                }
            }
        }
        let next = admit(self.memory.as_ref(), &month, max).map_err(Refused::Cap)?;
        self.memory = Some(next);
        Ok(())
    }
}

/// Each slot has a block of its own (a page of the page cache, a sector or more of the
/// disk), so writing one never touches the other; the file is two slots long.
const SLOT: usize = 4096;
const FILE_LEN: usize = 2 * SLOT;
/// Past this a ledger is not read (it is damaged).
const MAX_LEN: u64 = 64 * 1024;

/// One slot's record: `{"version":2,"seq":7,"month":"2026-11","requests":12,"lost":false,
/// "crc":"89abcdef"}`, padded with spaces to the end of its block. `crc` is the CRC-32 of
/// the record serialized without it; `seq` counts writes, the higher slot is the newer.
/// A version 1 ledger (one record, no seq or crc) is read as slot 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Slot {
    version: u32,
    #[serde(default)]
    seq: u64,
    month: String,
    requests: u64,
    #[serde(default)]
    lost: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crc: Option<String>,
}

impl Slot {
    fn of(t: &Tally, seq: u64) -> Slot {
        let mut slot = Slot {
            version: 2,
            seq,
            month: t.month.clone(),
            requests: t.requests,
            lost: t.lost,
            crc: None,
        };
        slot.crc = Some(format!("{:08x}", slot.checksum()));
        slot
    }

    fn checksum(&self) -> u32 {
        let bare = Slot {
            crc: None,
            ..self.clone()
        };
        crc32(serde_json::to_string(&bare).unwrap_or_default().as_bytes())
    }

    fn tally(&self) -> Tally {
        Tally {
            month: self.month.clone(),
            requests: self.requests,
            lost: self.lost,
        }
    }

    /// The slot's block: the record, spaces, a newline.
    fn block(&self) -> Vec<u8> {
        let json = serde_json::to_string(self).unwrap_or_default();
        format!("{json:<width$}\n", width = SLOT - 1).into_bytes()
    }

    /// A slot's block read back: the record, or what is wrong with it.
    fn parse(block: &[u8]) -> Result<Slot, &'static str> {
        let end = block
            .iter()
            .rposition(|b| !b.is_ascii_whitespace() && *b != 0)
            .map_or(0, |i| i + 1);
        if end == 0 {
            return Err(if block.is_empty() { "missing" } else { "blank" });
        }
        let slot: Slot = serde_json::from_slice(&block[..end]).map_err(|_| "not a record")?;
        match (slot.version, &slot.crc) {
            (1, None) => Ok(slot),
            (2, Some(crc)) if *crc == format!("{:08x}", slot.checksum()) => Ok(slot),
            (2, Some(_)) => Err("checksum does not match"),
            _ => Err("not a record"),
        }
    }
}

/// CRC-32 (IEEE 802.3, as zlib and `crc32` compute it).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// What the ledger's bytes say, and how the next count writes it.
#[derive(Debug)]
struct Decided {
    reading: Reading,
    /// The seq of the next write and the slot it goes to; None: rewrite both slots.
    next: (u64, Option<usize>),
}

/// The pure reading of a ledger file as `month` sees it.
fn decide(bytes: &[u8], month: &str) -> Decided {
    let block = |i: usize| &bytes[(i * SLOT).min(bytes.len())..((i + 1) * SLOT).min(bytes.len())];
    let slots = [Slot::parse(block(0)), Slot::parse(block(1))];
    let damage = |what: String| Some(format!("damaged: {what}"));
    match slots {
        // Version 1: one record, no second slot yet.
        [Ok(old), Err("missing")] if old.version == 1 && bytes.len() <= SLOT => Decided {
            reading: Reading {
                tally: Some(old.tally()),
                damage: None,
            },
            next: (1, Some(1)),
        },
        [Ok(a), Ok(b)] => {
            let (newest, other) = if b.seq > a.seq { (b, 1) } else { (a, 0) };
            let damage = (bytes.len() != FILE_LEN).then(|| {
                format!(
                    "damaged: {} bytes where {FILE_LEN} were written (both records are good)",
                    bytes.len()
                )
            });
            let next = match damage {
                Some(_) => None,
                None => Some(1 - other),
            };
            Decided {
                next: (newest.seq + 1, next),
                reading: Reading {
                    tally: Some(newest.tally()),
                    damage,
                },
            }
        }
        [Ok(good), Err(why)] | [Err(why), Ok(good)] => {
            let t = of_month(Some(&good.tally()), month);
            Decided {
                next: (good.seq + 2, None),
                reading: Reading {
                    tally: Some(Tally {
                        requests: t.requests + 1,
                        ..t
                    }),
                    damage: damage(format!(
                        "one of its two records is unreadable ({why}); counting on from the other plus one (a request may be counted twice, never missed)"
                    )),
                },
            }
        }
        [Err(a), Err(b)] => Decided {
            next: (1, None),
            reading: Reading {
                tally: Some(Tally {
                    month: month.to_string(),
                    requests: 0,
                    lost: true,
                }),
                damage: damage(format!(
                    "neither of its two records is readable ({a}; {b}): the count of {month} is lost, so {KEY} is taken as reached until the month ends (to count from 0, check this month's requests in the AWS bill, then delete the file)"
                )),
            },
        },
    }
}

/// Opens `path` without waiting on a FIFO; `write` for counting.
fn open_nonblocking(path: &Path, write: bool) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// The bytes of an open ledger (at most MAX_LEN + 1), or None for a file that is not a
/// regular one (damage).
fn read_file(file: &File) -> Result<Option<Vec<u8>>, String> {
    if !file.metadata().map_err(|e| plain_io(&e))?.is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(FILE_LEN);
    file.take(MAX_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| plain_io(&e))?;
    Ok(Some(bytes))
}

/// Makes a new ledger holding `tally` whole before it has its name (temporary file, fsync,
/// hard link, fsync of the directory), so a ledger that exists was once whole: an empty or
/// short one is damage, never "new". The link never replaces: a ledger another process
/// made first is kept.
fn create(path: &Path, tally: &Tally) -> Result<(), String> {
    // A name of its own: two makers (threads, processes) never remove each other's file.
    let tmp = PathBuf::from(format!(
        "{}.new-{}-{:x}",
        path.display(),
        std::process::id(),
        getrandom::u64().unwrap_or(0)
    ));
    let slot = Slot::of(tally, 0);
    let mut bytes = slot.block();
    bytes.extend_from_slice(&slot.block());
    let written =
        File::create(&tmp).and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()));
    let linked = written.and_then(|()| match fs::hard_link(&tmp, path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        // A filesystem without hard links: renamed instead.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EOPNOTSUPP)) => {
            fs::rename(&tmp, path)
        }
        other => other,
    });
    let _ = fs::remove_file(&tmp);
    linked.map_err(|e| write_error(path, &e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// The ledger of `dir`, open and flocked: made if missing; a FIFO, a device or another
/// non-regular file there is moved aside (the count it stood for is lost).
fn open_locked(path: &Path, month: &str) -> Result<File, String> {
    let io = |e: std::io::Error| format!("{}: {}", path.display(), plain_io(&e));
    for _ in 0..8 {
        let file = match open_nonblocking(path, true) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let fresh = Tally {
                    month: month.to_string(),
                    requests: 0,
                    lost: false,
                };
                create(path, &fresh)?;
                continue;
            }
            Err(e) => return Err(io(e)),
        };
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            drop(file);
            let aside = move_aside(path)?;
            crate::error!(
                "{}: damaged: not a regular file; moved it to {}: the count of {month} is lost, so {KEY} is taken as reached until the month ends (to count from 0, check this month's requests in the AWS bill, then delete {})",
                path.display(),
                aside.display(),
                path.display()
            );
            let lost = Tally {
                month: month.to_string(),
                requests: 0,
                lost: true,
            };
            create(path, &lost)?;
            continue;
        }
        // SAFETY: flock on a descriptor we own; released when `file` is closed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            let e = std::io::Error::last_os_error();
            if !matches!(e.raw_os_error(), Some(libc::ENOLCK | libc::EOPNOTSUPP)) {
                return Err(io(e));
            }
        }
        // Deleted (a deliberate reset) or made anew while we waited: lock the file of the name.
        match fs::metadata(path) {
            Ok(now) if now.ino() == meta.ino() && now.dev() == meta.dev() => return Ok(file),
            _ => continue,
        }
    }
    Err(format!(
        "{}: replaced again and again while being opened",
        path.display()
    ))
}

/// Read, decide and write the ledger under a flock of the file itself. The outer error is an
/// IO failure.
fn count_on_disk(dir: &Path, month: &str, max: u64) -> Result<Result<(), CapReached>, String> {
    let path = dir.join(FILE);
    let io = |e: std::io::Error| format!("{}: {}", path.display(), plain_io(&e));
    let file = open_locked(&path, month)?;
    let bytes = read_file(&file)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?
        .unwrap_or_default();
    let decided = decide(&bytes, month);
    let recorded = decided.reading.tally.clone();
    if let Some(damage) = &decided.reading.damage {
        let aside = aside_name(&path);
        let kept = match fs::write(&aside, &bytes) {
            Ok(()) => format!("kept a copy as {}", aside.display()),
            Err(e) => format!("could not keep a copy ({})", write_error(&aside, &e)),
        };
        crate::error!("{}: {damage}; {kept}", path.display());
    }
    let (result, next) = match admit(recorded.as_ref(), month, max) {
        Ok(t) => (Ok(()), t),
        // A damaged ledger is written whole again even at the cap, so it is reported once.
        Err(cap) if decided.reading.damage.is_some() => {
            (Err(cap), of_month(recorded.as_ref(), month))
        }
        Err(cap) => return Ok(Err(cap)),
    };
    let (seq, slot) = decided.next;
    let block = Slot::of(&next, seq).block();
    match slot {
        Some(i) => file.write_all_at(&block, (i * SLOT) as u64).map_err(io)?,
        None => {
            file.write_all_at(&block, 0).map_err(io)?;
            file.write_all_at(&block, SLOT as u64).map_err(io)?;
            file.set_len(FILE_LEN as u64).map_err(io)?;
        }
    }
    // On disk before the request goes out: a power cut never loses a count that was paid.
    file.sync_data().map_err(io)?;
    Ok(result)
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
            lost: false,
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
        assert_eq!(admit(Some(&t(2)), "2026-12", 2).unwrap(), {
            let mut next = t(1);
            next.month = "2026-12".into();
            next
        });
        assert_eq!(
            admit(Some(&t(5000)), "2026-11", 0),
            Ok(t(5001)),
            "0: no cap"
        );
    }

    #[test]
    fn a_lost_count_is_the_cap_until_the_month_ends() {
        let lost = Tally {
            month: "2026-11".into(),
            requests: 0,
            lost: true,
        };
        let refused = admit(Some(&lost), "2026-11", 1000).unwrap_err();
        assert!(refused.lost);
        let line = refused.to_string();
        assert!(
            line.contains("max_monthly_requests 1000 taken as reached")
                && line.contains("lost when state_dir/ce-requests.json was damaged")
                && line.contains("delete state_dir/ce-requests.json"),
            "{line}"
        );
        let next = admit(Some(&lost), "2026-12", 1000).unwrap();
        assert_eq!(
            (next.requests, next.lost),
            (1, false),
            "a new month is known"
        );
        let counted = admit(Some(&lost), "2026-11", 0).unwrap();
        assert_eq!(
            (counted.requests, counted.lost),
            (1, true),
            "no cap: counted on"
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
    fn the_checksum_is_crc32() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    fn slots(a: &Tally, seq_a: u64, b: &Tally, seq_b: u64) -> Vec<u8> {
        let mut bytes = Slot::of(a, seq_a).block();
        bytes.extend(Slot::of(b, seq_b).block());
        bytes
    }

    fn tally(requests: u64) -> Tally {
        Tally {
            month: "2026-11".into(),
            requests,
            lost: false,
        }
    }

    #[test]
    fn the_newer_good_slot_counts_and_damage_never_counts_less() {
        let whole = slots(&tally(8), 8, &tally(7), 7);
        assert_eq!(whole.len(), FILE_LEN);
        let d = decide(&whole, "2026-11");
        assert_eq!((d.reading.tally, d.reading.damage), (Some(tally(8)), None));
        assert_eq!(
            d.next,
            (9, Some(1)),
            "the next write goes to the older slot"
        );
        let d = decide(&slots(&tally(7), 7, &tally(8), 8), "2026-11");
        assert_eq!((d.reading.tally, d.next), (Some(tally(8)), (9, Some(0))));

        // One slot damaged, whichever: the other plus one, and both are written again.
        let mut flipped = whole.clone();
        flipped[30] ^= 0x01;
        let mut torn = whole.clone();
        torn.truncate(SLOT + 20);
        for (what, bytes, counted) in [
            ("newer slot flipped", &flipped, 8),
            ("older slot torn", &torn, 9),
        ] {
            let d = decide(bytes, "2026-11");
            assert_eq!(d.reading.tally.map(|t| t.requests), Some(counted), "{what}");
            assert!(
                d.reading.damage.unwrap().contains("one of its two records"),
                "{what}"
            );
            assert_eq!(d.next.1, None, "{what}");
        }
        // Nothing readable: lost.
        let zeros = vec![0u8; FILE_LEN];
        let mut garbled = whole.clone();
        garbled[10..SLOT + 10].fill(b'x');
        for (what, bytes) in [
            ("empty", &Vec::new()),
            ("zero-filled", &zeros),
            ("garbled", &garbled),
            ("torn in the first slot", &whole[..25].to_vec()),
        ] {
            let d = decide(bytes, "2026-11");
            let t = d.reading.tally.unwrap();
            assert!(t.lost && t.requests == 0, "{what}");
            assert!(
                d.reading
                    .damage
                    .unwrap()
                    .contains("neither of its two records"),
                "{what}"
            );
        }
        // Appended garbage: the count is intact, the file is written whole again.
        let mut longer = whole.clone();
        longer.extend_from_slice(b"garbage");
        let d = decide(&longer, "2026-11");
        assert_eq!(d.reading.tally, Some(tally(8)));
        assert!(d.reading.damage.unwrap().contains("8199 bytes"));
        // Version 1: one record, read as it was.
        let v1 = format!(
            "{:<95}\n",
            r#"{"version":1,"month":"2026-11","requests":12}"#
        );
        let d = decide(v1.as_bytes(), "2026-11");
        assert_eq!((d.reading.tally, d.reading.damage), (Some(tally(12)), None));
        assert_eq!(d.next, (1, Some(1)));
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
        let counted = |dir: &Path| read(dir, &month).unwrap().tally.map(|t| t.requests);
        assert_eq!(counted(&dir), Some(25));
        assert_eq!(fs::metadata(dir.join(FILE)).unwrap().len(), FILE_LEN as u64);
        let names = |dir: &Path| -> Vec<String> {
            fs::read_dir(dir)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names(&dir), [FILE], "no temporary file is left");

        // Garbled: the month's count is lost, the cap is taken as reached, a copy kept.
        fs::write(dir.join(FILE), format!("{{torn{}", "x".repeat(200))).unwrap();
        let refused = count_on_disk(&dir, &month, 1000).unwrap().unwrap_err();
        assert!(refused.lost);
        let reading = read(&dir, &month).unwrap();
        assert_eq!(reading.damage, None, "written whole again: reported once");
        assert!(reading.tally.unwrap().lost);
        assert_eq!(fs::metadata(dir.join(FILE)).unwrap().len(), FILE_LEN as u64);
        let kept: Vec<String> = names(&dir)
            .into_iter()
            .filter(|n| n.starts_with("ce-requests.json.corrupt-"))
            .collect();
        assert_eq!(kept.len(), 1, "the damaged ledger is kept aside");
        assert!(
            fs::read_to_string(dir.join(&kept[0]))
                .unwrap()
                .starts_with("{torn")
        );
        assert!(count_on_disk(&dir, &month, 1000).unwrap().is_err());

        // Deleting the file is the deliberate reset.
        fs::remove_file(dir.join(FILE)).unwrap();
        assert!(count_on_disk(&dir, &month, 1000).unwrap().is_ok());
        assert_eq!(counted(&dir), Some(1));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_fifo_ledger_is_moved_aside_never_waited_on() {
        let dir = tmpdir("fifo");
        let month = month_of(OffsetDateTime::now_utc());
        let fifo = std::ffi::CString::new(dir.join(FILE).to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let refused = count_on_disk(&dir, &month, 1000).unwrap().unwrap_err();
        assert!(refused.lost, "the count it stood for is lost");
        assert!(fs::metadata(dir.join(FILE)).unwrap().is_file());
        fs::remove_dir_all(dir).unwrap();
    }
}
