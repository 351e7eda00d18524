//! `status`: what state_dir says about the connector, the service's heartbeat, and whether it is alive.
//!
//! `status` only reads (the files heartbeat.rs writes, the state, the ledger): it takes no
//! lock and makes no request, so it answers while the service works.

use crate::config::Config;
use crate::files::plain_io;
use crate::heartbeat::{HEARTBEAT, Heartbeat, LAST_PULL, LastPull, Record};
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

/// The one time the service will act next, and why: while it waits (asleep until a pull
/// hour, backing off before a retry) the time its heartbeat names; else, working, stopped
/// or never run, the schedule's next pull (`next_pull`).
pub fn next_wake(
    heartbeat: Option<&Heartbeat>,
    next_pull: OffsetDateTime,
    now: OffsetDateTime,
) -> (OffsetDateTime, String) {
    let waiting = heartbeat
        .filter(|h| !h.stopped && h.doing != "working" && !h.doing.starts_with("starting"));
    match waiting.and_then(|h| Some((h, parse_utc(&h.next_act)?))) {
        // Its heartbeat's time is to the second: the schedule's, when it is that one.
        Some((_, at)) if at == next_pull.replace_nanosecond(0).unwrap_or(next_pull) => {
            (next_pull, "pull_hour".into())
        }
        Some((h, at)) if at >= now => {
            // The sleep after a round is a retry when it is not the pull hour's.
            let why = match h.doing.as_str() {
                "sleeping until the next pull or retry" => "a retry",
                doing => doing,
            };
            (at, why.to_string())
        }
        Some((h, _)) => (
            next_pull,
            format!(
                "pull_hour; the service was due at {} and has not acted since (status --check)",
                h.next_act
            ),
        ),
        _ => {
            let why = match heartbeat {
                Some(h) if !h.stopped && h.doing == "working" => {
                    "pull_hour, after the work now in hand"
                }
                Some(h) if !h.stopped => "pull_hour",
                _ => "pull_hour, for a service; none is running",
            };
            (next_pull, why.into())
        }
    }
}

/// The health decision: Ok(one line) while the last pull went well and the newest
/// delivered day is at most one day behind the latest due day; Err(the reason, one line)
/// once a pull failed or a whole day more is overdue (the target refusing or down for a
/// day, pulls not happening). Nothing pulled yet is healthy: nothing has gone wrong.
pub fn health(
    last_pull: Option<&LastPull>,
    delivered: &BTreeSet<Date>,
    now: OffsetDateTime,
    pull_hour: u8,
) -> Result<String, String> {
    let latest = crate::schedule::latest_due_day(now, pull_hour);
    let Some(pull) = last_pull else {
        return match delivered.last() {
            None => Ok(format!(
                "healthy: nothing pulled yet; the first pull is at {}",
                rfc3339(crate::schedule::next_pull(now, pull_hour))
            )),
            Some(d) => behind(*d, Some(*d), latest, pull_hour)
                .map(|()| format!("healthy: delivered through {}", format_date(*d))),
        };
    };
    let days = if pull.days.first == pull.days.last {
        pull.days.first.clone()
    } else {
        format!("{} to {}", pull.days.first, pull.days.last)
    };
    if let Some(e) = &pull.error {
        return Err(format!(
            "the last pull ({days}, at {}) failed: {}",
            pull.time,
            crate::log::peer(e)
        ));
    }
    // Nothing delivered yet: measured as if the day before the first pulled one were.
    let newest = delivered.last().copied();
    let baseline = newest.or_else(|| parse_date(&pull.days.first)?.previous_day());
    match baseline {
        Some(b) => behind(b, newest, latest, pull_hour).map(|()| {
            let through = newest.map_or("nothing delivered yet".into(), |d| {
                format!("delivered through {}", format_date(d))
            });
            format!(
                "healthy: the last pull ({days}, at {}) went well; {through}",
                pull.time
            )
        }),
        None => Ok(format!(
            "healthy: the last pull ({days}, at {}) went well",
            pull.time
        )),
    }
}

/// Err when the day after `baseline` has been due for more than a day.
fn behind(baseline: Date, newest: Option<Date>, latest: Date, pull_hour: u8) -> Result<(), String> {
    let Some(owed) = baseline.next_day() else {
        return Ok(());
    };
    if latest < owed + time::Duration::days(1) {
        return Ok(());
    }
    let due = owed
        .next_day()
        .unwrap_or(owed)
        .with_hms(pull_hour.min(23), 0, 0)
        .map_or(OffsetDateTime::UNIX_EPOCH, |t| t.assume_utc());
    let newest = newest.map_or("nothing is delivered".into(), |d| {
        format!("the newest delivered day is {}", format_date(d))
    });
    Err(format!(
        "{newest}, more than a day behind: {} has been due since {}",
        format_date(owed),
        rfc3339(due)
    ))
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
    /// When the service acts next (see `next_wake`), and why.
    pub next_wake: String,
    pub next_wake_reason: String,
    pub month: String,
    /// `null` when the month's count was lost to a damaged ledger.
    pub ce_requests_this_month: Option<u64>,
    pub ce_cost_this_month_usd: Option<String>,
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
    /// Records damaged now (the ledger, last-pull.json, heartbeat.json), one line each
    /// naming the file and what is wrong; absent from the JSON when there is none. The
    /// next write keeps each aside and replaces it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub damaged_records: Vec<String>,
    /// Requests counted since the month's count was lost (`ce_requests_this_month` is null).
    #[serde(skip)]
    pub requests_since_lost: Option<u64>,
    #[serde(skip)]
    pub last_pull_damaged: bool,
    #[serde(skip)]
    pub heartbeat_damaged: bool,
}

/// A record's value, its damage noted in `damaged`.
fn record<T>(read: Record<T>, damaged: &mut Vec<String>) -> (Option<T>, bool) {
    match read {
        Record::Absent => (None, false),
        Record::Good(t) => (Some(t), false),
        Record::Damaged(line) => {
            damaged.push(line);
            (None, true)
        }
    }
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
    let mut records = Vec::new();
    let ledger = spend::read(dir, &month)?;
    if let Some(d) = &ledger.damage {
        records.push(format!("{}: {d}", dir.join(spend::FILE).display()));
    }
    let (requests, lost) = spend::this_month(ledger.tally.as_ref(), &month);
    let max = config.max_monthly_requests;
    let at_cap = max > 0 && (lost || requests >= max);
    let next = next_pull(now, config.pull_hour, at_cap);
    let (last_pull, last_pull_damaged) =
        record(crate::heartbeat::read(&dir.join(LAST_PULL))?, &mut records);
    let (heartbeat, heartbeat_damaged) =
        record(crate::heartbeat::read(&dir.join(HEARTBEAT))?, &mut records);
    let (wake, why) = next_wake(heartbeat.as_ref(), next, now);
    Ok(Report {
        state_dir: dir.display().to_string(),
        delivered_through: delivered.last().map(|d| format_date(*d)),
        missing_days: missing.into_iter().map(format_date).collect(),
        spool_events: state.spool_events,
        dead_letters: count_lines(&dir.join("dead-letter.jsonl"))?,
        last_pull,
        next_pull: rfc3339(next),
        next_wake: rfc3339(wake),
        next_wake_reason: why,
        ce_cost_this_month_usd: (!lost).then(|| spend::cost_usd(requests)),
        ce_requests_this_month: (!lost).then_some(requests),
        month,
        max_monthly_requests: max,
        revision_days: revision_days(config, now),
        damaged: damaged(dir, state.damaged),
        heartbeat,
        damaged_records: records,
        requests_since_lost: lost.then_some(requests),
        last_pull_damaged,
        heartbeat_damaged,
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
        None if r.last_pull_damaged => "damaged (written anew at the next pull)".to_string(),
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
        None if r.heartbeat_damaged => {
            "damaged (written anew when the service next acts)".to_string()
        }
        None => "none (no service has run on this state_dir)".to_string(),
        Some(h) if h.stopped => format!("stopped at {} (pid {})", h.acted, h.pid),
        Some(h) => format!("acted at {}, {} (pid {})", h.acted, h.doing, h.pid),
    };
    let spend = match (r.ce_requests_this_month, &r.ce_cost_this_month_usd) {
        (Some(n), Some(usd)) => format!("{n} request(s) in {}, ${usd} ({cap})", r.month),
        _ => format!(
            "count of {} lost to a damaged ledger, {} request(s) since ({cap}, taken as reached until the month ends)",
            r.month,
            r.requests_since_lost.unwrap_or(0)
        ),
    };
    let mut out = format!(
        "state_dir          {}\ndelivered through  {}\nmissing days       {missing}\nspool              {} event(s)\ndead letters       {}\nlast pull          {last_pull}\nnext               {} ({})\nCost Explorer      {spend}\n",
        r.state_dir,
        or_none(&r.delivered_through),
        r.spool_events,
        r.dead_letters,
        r.next_wake,
        r.next_wake_reason,
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
    for line in &r.damaged_records {
        out.push_str(&format!("damaged            {line}\n"));
    }
    out
}

/// `status [--json]`, `status --check [--grace S]` and `status --healthy`: prints,
/// returns the exit status.
pub fn command(config: &Config, json: bool, check: bool, healthy: bool, grace: Duration) -> i32 {
    let now = OffsetDateTime::now_utc();
    if let Err(line) = existing(&config.state_dir) {
        if check {
            println!("{line}");
        } else {
            crate::error!("{line}");
        }
        return 1;
    }
    if healthy {
        let dir = config.state_dir.as_path();
        // A damaged record of the last pull tells nothing: the delivered days still do.
        let read = crate::heartbeat::read::<LastPull>(&dir.join(LAST_PULL))
            .map(|r| match r {
                Record::Good(pull) => Some(pull),
                _ => None,
            })
            .and_then(|pull| Ok((pull, crate::state::inspect(dir)?.record.delivered)));
        let verdict = read
            .and_then(|(pull, delivered)| health(pull.as_ref(), &delivered, now, config.pull_hour));
        return match verdict {
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
    if check {
        let heartbeat = match crate::heartbeat::read::<Heartbeat>(&config.state_dir.join(HEARTBEAT))
        {
            Ok(Record::Absent) => None,
            Ok(Record::Good(h)) => Some(h),
            // Whether the service is alive cannot be told: a probe that fails restarts it,
            // and the service writes a heartbeat as soon as it starts.
            Ok(Record::Damaged(line)) => {
                println!(
                    "{line}: whether the service is alive cannot be told (the service writes a new heartbeat when it next acts; a restart writes one at once)"
                );
                return 1;
            }
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

/// state_dir is a directory, or the line that says what it is instead.
fn existing(dir: &Path) -> Result<(), String> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("state_dir {}: not a directory", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "state_dir {} does not exist: no source-aws-billing has run with it (is state_dir set as for the service?)",
            dir.display()
        )),
        Err(e) => Err(format!(
            "state_dir {}: cannot read: {}",
            dir.display(),
            plain_io(&e)
        )),
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

    fn pull(first: &str, last: &str, error: Option<&str>) -> LastPull {
        LastPull {
            time: "2026-11-30T02:00:01Z".into(),
            days: crate::heartbeat::Days {
                first: first.into(),
                last: last.into(),
            },
            ok: error.is_none(),
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn unhealthy_after_a_failed_pull_healthy_again_after_a_good_one() {
        let now = datetime!(2026-11-30 03:00 UTC);
        let delivered: BTreeSet<Date> = [date!(2026 - 11 - 28)].into();
        let failed = pull(
            "2026-11-29",
            "2026-11-29",
            Some("AccessDenied\u{1b}[2J: no"),
        );
        assert_eq!(
            health(Some(&failed), &delivered, now, 2),
            Err("the last pull (2026-11-29, at 2026-11-30T02:00:01Z) failed: AccessDenied\\u{1b}[2J: no".into())
        );
        let good = pull("2026-11-29", "2026-11-29", None);
        let delivered: BTreeSet<Date> = [date!(2026 - 11 - 29)].into();
        assert_eq!(
            health(Some(&good), &delivered, now, 2),
            Ok("healthy: the last pull (2026-11-29, at 2026-11-30T02:00:01Z) went well; delivered through 2026-11-29".into())
        );
    }

    #[test]
    fn unhealthy_once_a_day_more_than_one_is_overdue() {
        let good = pull("2026-11-28", "2026-11-28", None);
        let delivered: BTreeSet<Date> = [date!(2026 - 11 - 27)].into();
        // 2026-11-28 was pulled and waits in the spool; 2026-11-29 is due at 11-30 02:00.
        assert!(health(Some(&good), &delivered, datetime!(2026-11-30 01:59 UTC), 2).is_ok());
        assert_eq!(
            health(Some(&good), &delivered, datetime!(2026-11-30 02:00 UTC), 2),
            Err("the newest delivered day is 2026-11-27, more than a day behind: 2026-11-28 has been due since 2026-11-29T02:00:00Z".into())
        );
        // Nothing delivered since the first pull: the same measure from that day.
        let none = BTreeSet::new();
        assert!(health(Some(&good), &none, datetime!(2026-11-30 01:00 UTC), 2).is_ok());
        let late = health(Some(&good), &none, datetime!(2026-11-30 03:00 UTC), 2).unwrap_err();
        assert!(
            late.starts_with("nothing is delivered, more than a day behind: 2026-11-28 "),
            "{late}"
        );
        // Nothing pulled yet: nothing has gone wrong.
        assert_eq!(
            health(None, &none, datetime!(2026-11-30 01:00 UTC), 2),
            Ok("healthy: nothing pulled yet; the first pull is at 2026-11-30T02:00:00Z".into())
        );
    }

    #[test]
    fn the_one_next_time_is_the_heartbeats_while_the_service_waits() {
        let now = datetime!(2026-11-30 10:00 UTC);
        let pull_at = datetime!(2026-12-01 02:00 UTC);
        let beat = |doing: &str, next: &str, stopped| Heartbeat {
            pid: 1,
            acted: "2026-11-30T09:59:00Z".into(),
            next_act: next.into(),
            doing: doing.into(),
            stopped,
        };
        let asleep = beat(
            "sleeping until the next pull or retry",
            "2026-12-01T02:00:00Z",
            false,
        );
        assert_eq!(
            next_wake(Some(&asleep), pull_at, now),
            (pull_at, "pull_hour".into())
        );
        let retry = beat(
            "sleeping until the next pull or retry",
            "2026-11-30T11:00:00Z",
            false,
        );
        assert_eq!(
            next_wake(Some(&retry), pull_at, now),
            (datetime!(2026-11-30 11:00 UTC), "a retry".into())
        );
        let target = beat("retrying the target", "2026-11-30T10:00:30Z", false);
        assert_eq!(
            next_wake(Some(&target), pull_at, now),
            (
                datetime!(2026-11-30 10:00:30 UTC),
                "retrying the target".into()
            )
        );
        let working = beat("working", "2026-11-30T10:02:00Z", false);
        assert_eq!(next_wake(Some(&working), pull_at, now).0, pull_at);
        let stopped = beat("stopped", "2026-11-30T09:59:00Z", true);
        assert_eq!(
            next_wake(Some(&stopped), pull_at, now),
            (pull_at, "pull_hour, for a service; none is running".into())
        );
        assert_eq!(next_wake(None, pull_at, now).0, pull_at);
        // A service that stopped acting (killed, hung) wakes at no time of its own.
        let late = beat("retrying the target", "2026-11-30T09:00:00Z", false);
        assert_eq!(
            next_wake(Some(&late), pull_at, now),
            (
                pull_at,
                "pull_hour; the service was due at 2026-11-30T09:00:00Z and has not acted since (status --check)".into()
            )
        );
    }
}
