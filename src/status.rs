//! `status`: what state_dir says about the connector, the service's heartbeat, and whether it is alive.
//!
//! `status` only reads (the files heartbeat.rs writes, the state, the ledger): it takes no
//! lock and makes no request, so it answers while the service works.

use crate::config::Config;
use crate::files::plain_io;
use crate::heartbeat::{HEARTBEAT, Heartbeat, LAST_PULL, LastPull};
use crate::schedule::{format_date, parse_date, rfc3339};
use crate::spend;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;
use time::{Date, OffsetDateTime};

/// `status --check` default: how long past its own next-act time the service may be late.
pub const DEFAULT_GRACE_S: u64 = 600;

/// Undelivered days after the oldest delivered one, among the `max_catchup` days up to the
/// latest due day (older gaps are not caught up by the service).
pub fn missing_days(
    delivered: &BTreeSet<Date>,
    now: OffsetDateTime,
    pull_hour: u8,
    max_catchup: u32,
) -> Vec<Date> {
    // Catch-up's list, less a fresh install's first day: nothing delivered, nothing missing.
    if delivered.is_empty() {
        return Vec::new();
    }
    crate::schedule::missing_days(delivered, now, pull_hour, max_catchup)
}

/// The liveness decision: Ok(what it is doing) while the service is on its own schedule,
/// Err(one line) once its next-act time plus `grace` has passed, it stopped, or there is none.
pub fn liveness(
    heartbeat: Option<&Heartbeat>,
    now: OffsetDateTime,
    grace: Duration,
) -> Result<String, String> {
    let Some(hb) = heartbeat else {
        return Err("no service has written a heartbeat in state_dir yet".into());
    };
    if hb.stopped {
        return Err(format!("the service stopped at {}", hb.acted));
    }
    let Some(due) = parse_utc(&hb.next_act) else {
        return Err(format!(
            "{HEARTBEAT}: next_act: expected an RFC 3339 time, found {:?}",
            hb.next_act
        ));
    };
    if now > due + grace {
        return Err(format!(
            "the service has not acted since {}, it was due at {}",
            hb.acted, hb.next_act
        ));
    }
    Ok(format!(
        "the service is on schedule: acted at {}, {} (next by {})",
        hb.acted, hb.doing, hb.next_act
    ))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` as `rfc3339` writes it, to the second (the fraction
/// is dropped: at most a second early). Kept small: time's RFC 3339 parser costs the binary
/// more than this whole check.
fn parse_utc(s: &str) -> Option<OffsetDateTime> {
    let (date, rest) = s.split_once('T')?;
    let clock = rest.strip_suffix('Z')?;
    let clock = clock.split_once('.').map_or(clock, |(whole, _)| whole);
    let mut hms = clock.split(':').map(|p| p.parse::<u8>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || clock.len() != 8 {
        return None;
    }
    let time = time::Time::from_hms(h, m, sec).ok()?;
    Some(parse_date(date)?.with_time(time).assume_utc())
}

/// When the service pulls next: the next pull hour, or, at the cap, the first one of next month.
pub fn next_pull(now: OffsetDateTime, pull_hour: u8, at_cap: bool) -> OffsetDateTime {
    if at_cap {
        let start = spend::next_month_start(now);
        return crate::schedule::next_pull(start - time::Duration::seconds(1), pull_hour);
    }
    crate::schedule::next_pull(now, pull_hour)
}

/// Everything `status` prints; the field names are the JSON keys (documented in README).
#[derive(Debug, Serialize)]
pub struct Report {
    pub state_dir: String,
    pub delivered_through: Option<String>,
    pub missing_days: Vec<String>,
    pub spool_events: u64,
    pub dead_letters: u64,
    pub last_pull: Option<LastPull>,
    pub next_pull: String,
    pub month: String,
    pub ce_requests_this_month: u64,
    pub ce_cost_this_month_usd: String,
    pub max_monthly_requests: u64,
    /// Days still inside the revise window of which a line went out as a revision;
    /// absent from the JSON when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_days: Option<Vec<String>>,
    /// Damaged files, `{"file","problem"}` (`damaged_entry`): found now (the next run
    /// repairs them) or kept aside earlier. JSON values, not a derived record: a new string
    /// serializer call site costs the event serializer its inlining (measured).
    pub damaged: Vec<serde_json::Value>,
    pub heartbeat: Option<Heartbeat>,
}

/// An entry of `damaged`: a file's path under state_dir, and what is wrong with it.
pub fn damaged_entry(file: String, problem: String) -> serde_json::Value {
    serde_json::json!({ "file": file, "problem": problem })
}

/// What a `.corrupt-` file is, in `damaged`.
pub const KEPT_ASIDE: &str = "a damaged file kept aside (the error log of that run says what was wrong and what was recovered); delete it once read";

/// Every damaged file of state_dir: what `state::inspect` finds, then every file kept aside
/// under a `.corrupt-` name (in state_dir, spool/ and revise/), each under its path
/// relative to state_dir.
fn damaged(dir: &Path, found: Vec<(std::path::PathBuf, String)>) -> Vec<serde_json::Value> {
    let relative = |p: &Path| {
        p.strip_prefix(dir)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    let mut out: Vec<serde_json::Value> = found
        .into_iter()
        .map(|(file, problem)| damaged_entry(relative(&file), problem))
        .collect();
    let mut aside = Vec::new();
    for sub in ["", "spool", "revise"] {
        let Ok(entries) = fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            if crate::files::is_aside(&e.file_name().to_string_lossy()) {
                aside.push(relative(&e.path()));
            }
        }
    }
    aside.sort();
    out.extend(
        aside
            .into_iter()
            .map(|file| damaged_entry(file, KEPT_ASIDE.into())),
    );
    out
}

/// Reads state_dir without a lock.
pub fn gather(config: &Config, now: OffsetDateTime) -> Result<Report, String> {
    let dir = config.state_dir.as_path();
    let state = crate::state::inspect(dir)?;
    let delivered = &state.record.delivered;
    let mut missing: BTreeSet<Date> =
        missing_days(delivered, now, config.pull_hour, config.max_catchup_days)
            .into_iter()
            .collect();
    // Days to pull again after damage are missing too, wherever they are.
    missing.extend(&state.record.again);
    let month = spend::month_of(now);
    let requests = spend::this_month(spend::read(dir)?.as_ref(), &month);
    let max = config.max_monthly_requests;
    Ok(Report {
        state_dir: dir.display().to_string(),
        delivered_through: delivered.last().map(|d| format_date(*d)),
        missing_days: missing.into_iter().map(format_date).collect(),
        spool_events: state.spool_events,
        dead_letters: count_lines(&dir.join("dead-letter.jsonl"))?,
        last_pull: read_json(&dir.join(LAST_PULL))?,
        next_pull: rfc3339(next_pull(now, config.pull_hour, max > 0 && requests >= max)),
        ce_cost_this_month_usd: spend::cost_usd(requests),
        ce_requests_this_month: requests,
        month,
        max_monthly_requests: max,
        revision_days: revision_days(config, now),
        damaged: damaged(dir, state.damaged),
        heartbeat: read_json(&dir.join(HEARTBEAT))?,
    })
}

fn revision_days(config: &Config, now: OffsetDateTime) -> Option<Vec<String>> {
    let yesterday = now.date() - time::Duration::days(1);
    let days = crate::snapshot::revised(&config.state_dir, yesterday, config.revise.revise_days);
    (!days.is_empty()).then(|| days.into_iter().map(format_date).collect())
}

/// The report for people, one fact a line.
pub fn human(r: &Report) -> String {
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
    let missing = if r.missing_days.is_empty() {
        "none".to_string()
    } else {
        r.missing_days.join(", ")
    };
    let last_pull = match &r.last_pull {
        None => "none".to_string(),
        Some(p) => {
            let days = if p.days.first == p.days.last {
                p.days.first.clone()
            } else {
                format!("{} to {}", p.days.first, p.days.last)
            };
            match &p.error {
                None => format!("{days} at {}, ok", p.time),
                // Peer text (Cost Explorer's or the target's words): escaped for a terminal.
                Some(e) => format!("{days} at {}, failed: {}", p.time, crate::log::peer(e)),
            }
        }
    };
    let cap = match r.max_monthly_requests {
        0 => "no cap".to_string(),
        n => format!("cap {n}"),
    };
    let heartbeat = match &r.heartbeat {
        None => "none (no service has run on this state_dir)".to_string(),
        Some(h) if h.stopped => format!("stopped at {} (pid {})", h.acted, h.pid),
        Some(h) => format!(
            "acted at {}, {} (next by {}, pid {})",
            h.acted, h.doing, h.next_act, h.pid
        ),
    };
    let mut out = format!(
        "state_dir          {}\ndelivered through  {}\nmissing days       {missing}\nspool              {} event(s)\ndead letters       {}\nlast pull          {last_pull}\nnext pull          {}\nCost Explorer      {} request(s) in {}, ${} ({cap})\n",
        r.state_dir,
        or_none(&r.delivered_through),
        r.spool_events,
        r.dead_letters,
        r.next_pull,
        r.ce_requests_this_month,
        r.month,
        r.ce_cost_this_month_usd,
    );
    if let Some(days) = &r.revision_days {
        out.push_str(&format!("revised days       {}\n", days.join(", ")));
    }
    for d in &r.damaged {
        let text = |key: &str| d[key].as_str().unwrap_or_default().to_string();
        out.push_str(&format!(
            "damaged            {}: {}\n",
            text("file"),
            text("problem")
        ));
    }
    out.push_str(&format!("heartbeat          {heartbeat}\n"));
    out
}

/// `status [--json]` and `status --check [--grace S]`: prints, returns the exit status.
pub fn command(config: &Config, json: bool, check: bool, grace: Duration) -> i32 {
    let now = OffsetDateTime::now_utc();
    if check {
        let heartbeat = match read_json::<Heartbeat>(&config.state_dir.join(HEARTBEAT)) {
            Ok(h) => h,
            Err(e) => {
                println!("{e}");
                return 1;
            }
        };
        return match liveness(heartbeat.as_ref(), now, grace) {
            Ok(line) => {
                println!("{line}");
                0
            }
            Err(line) => {
                println!("{line}");
                1
            }
        };
    }
    let report = match gather(config, now) {
        Ok(r) => r,
        Err(e) => {
            crate::error!("{e}");
            return 1;
        }
    };
    if json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        print!("{}", human(&report));
    }
    0
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: unreadable: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: cannot read: {}", path.display(), plain_io(&e))),
    }
}

/// The most of a line `each_line` hands over: enough for an acknowledgement.
const HEAD: usize = 32;

/// Calls `f` for each line of `path` (a missing file has none) with the line's first bytes
/// (at most `HEAD` + 1: a longer line is no acknowledgement), whether it holds more than whitespace, and
/// whether it ended with a newline. Read a buffer at a time: memory stays flat whatever the
/// file's size (a 64 MB spool, a long dead-letter file), as `status` may run in a small pod.
fn each_line(path: &Path, f: &mut dyn FnMut(&[u8], bool, bool)) -> Result<(), String> {
    let cannot = |e: std::io::Error| format!("{}: cannot read: {}", path.display(), plain_io(&e));
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(cannot(e)),
    };
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let (mut head, mut started, mut content) = (Vec::with_capacity(HEAD), false, false);
    loop {
        let chunk = reader.fill_buf().map_err(cannot)?;
        if chunk.is_empty() {
            break;
        }
        for &b in chunk {
            if b == b'\n' {
                f(&head, content, true);
                (started, content) = (false, false);
                head.clear();
                continue;
            }
            started = true;
            content |= !b.is_ascii_whitespace();
            if head.len() <= HEAD {
                head.push(b);
            }
        }
        let n = chunk.len();
        reader.consume(n);
    }
    if started {
        f(&head, content, false);
    }
    Ok(())
}

/// Lines holding more than whitespace.
fn count_lines(path: &Path) -> Result<u64, String> {
    let mut count = 0;
    each_line(path, &mut |_, content, _| count += u64::from(content))?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn beat_due(next_act: &str) -> Heartbeat {
        Heartbeat {
            pid: 1,
            acted: "2026-11-30T10:00:00Z".into(),
            next_act: next_act.into(),
            doing: "retrying the target".into(),
            stopped: false,
        }
    }

    #[test]
    fn alive_until_next_act_plus_grace() {
        let grace = Duration::from_secs(600);
        let hb = beat_due("2026-11-30T10:05:00Z");
        assert!(liveness(Some(&hb), datetime!(2026-11-30 10:15:00 UTC), grace).is_ok());
        let late = liveness(Some(&hb), datetime!(2026-11-30 10:15:01 UTC), grace).unwrap_err();
        assert_eq!(
            late,
            "the service has not acted since 2026-11-30T10:00:00Z, it was due at 2026-11-30T10:05:00Z"
        );
        assert!(liveness(None, datetime!(2026-11-30 10:00 UTC), grace).is_err());
        let stopped = Heartbeat {
            stopped: true,
            ..hb.clone()
        };
        assert!(
            liveness(Some(&stopped), datetime!(2026-11-30 10:01 UTC), grace)
                .unwrap_err()
                .contains("stopped")
        );
        assert!(
            liveness(
                Some(&beat_due("soon")),
                datetime!(2026-11-30 10:01 UTC),
                grace
            )
            .is_err()
        );
    }

    #[test]
    fn heartbeat_times_read_back_as_written() {
        let t = datetime!(2026-11-30 10:05:07.25 UTC);
        assert_eq!(
            parse_utc(&rfc3339(t)),
            Some(datetime!(2026-11-30 10:05:07 UTC))
        );
        assert_eq!(
            parse_utc("2026-11-30T10:05:07Z"),
            Some(datetime!(2026-11-30 10:05:07 UTC))
        );
        for bad in [
            "2026-11-30 10:05:07Z",
            "2026-11-30T10:05Z",
            "2026-11-30T25:00:00Z",
            "2026-11-30T10:05:07+01:00",
            "soon",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn missing_days_are_gaps_after_the_oldest_delivered_within_catchup() {
        let delivered: BTreeSet<Date> = [date!(2026 - 11 - 01), date!(2026 - 11 - 03)].into();
        assert_eq!(
            missing_days(&delivered, datetime!(2026-11-06 03:00 UTC), 2, 14),
            [
                date!(2026 - 11 - 02),
                date!(2026 - 11 - 04),
                date!(2026 - 11 - 05)
            ]
        );
        assert_eq!(
            missing_days(&delivered, datetime!(2026-11-06 03:00 UTC), 2, 2),
            [date!(2026 - 11 - 04), date!(2026 - 11 - 05)]
        );
        assert!(missing_days(&BTreeSet::new(), datetime!(2026-11-06 03:00 UTC), 2, 14).is_empty());
        assert!(
            missing_days(&delivered, datetime!(2026-11-04 01:00 UTC), 2, 14)
                == [date!(2026 - 11 - 02)]
        );
    }

    #[test]
    fn at_the_cap_the_next_pull_is_next_month() {
        let now = datetime!(2026-11-30 10:00 UTC);
        assert_eq!(next_pull(now, 2, false), datetime!(2026-12-01 02:00 UTC));
        assert_eq!(
            next_pull(datetime!(2026-11-10 10:00 UTC), 2, true),
            datetime!(2026-12-01 02:00 UTC)
        );
        assert_eq!(
            next_pull(datetime!(2026-11-10 10:00 UTC), 0, true),
            datetime!(2026-12-01 00:00 UTC)
        );
    }

    #[test]
    fn damaged_lists_what_is_found_then_every_file_kept_aside() {
        let dir = std::env::temp_dir().join(format!("sab-status-aside-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("spool")).unwrap();
        fs::create_dir_all(dir.join("revise")).unwrap();
        for name in [
            "delivered.json.corrupt-20261130T020000Z",
            "spool/2026-11-01_2026-11-01.jsonl.corrupt-20261130T020000Z",
            "revise/2026-11-01.jsonl.corrupt-20261130T020000Z-2",
            "heartbeat.json.corrupt-20261130T020000Z",
            "delivered.json",
        ] {
            fs::write(dir.join(name), "x").unwrap();
        }
        let found = vec![(dir.join("spool/a.jsonl"), "is empty".to_string())];
        let files: Vec<(String, bool)> = damaged(&dir, found)
            .into_iter()
            .map(|d| {
                (
                    d["file"].as_str().unwrap().into(),
                    d["problem"] == KEPT_ASIDE,
                )
            })
            .collect();
        assert_eq!(
            files,
            [
                ("spool/a.jsonl".into(), false),
                ("delivered.json.corrupt-20261130T020000Z".into(), true),
                ("heartbeat.json.corrupt-20261130T020000Z".into(), true),
                (
                    "revise/2026-11-01.jsonl.corrupt-20261130T020000Z-2".into(),
                    true
                ),
                (
                    "spool/2026-11-01_2026-11-01.jsonl.corrupt-20261130T020000Z".into(),
                    true
                ),
            ]
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn lines_are_counted_across_buffers() {
        let dir = std::env::temp_dir().join(format!("sab-status-lines-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        // A line longer than the read buffer, blank and whitespace-only lines, no final newline.
        let long = "x".repeat(200_000);
        let text = format!("{{}}\n\n  \t\r\n{long}\n{{}}\r\n{long}");
        fs::write(dir.join("dead-letter.jsonl"), &text).unwrap();
        assert_eq!(count_lines(&dir.join("dead-letter.jsonl")).unwrap(), 4);
        assert_eq!(count_lines(&dir.join("none.jsonl")).unwrap(), 0);
        fs::remove_dir_all(dir).unwrap();
    }
}
