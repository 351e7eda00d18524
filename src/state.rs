//! Delivered days, days to pull again, revisions sent, and the state_dir lock, in crash-safe,
//! checked files; holds the spool (spool.rs).
//!
//! Layout of state_dir: `delivered.json` (the days whose events were all delivered, the days
//! to pull again because their record was damaged, and how many records dead-letter.jsonl
//! holds), `sent.json` (per recent day, the highest revision any of its events may have been
//! sent with), both rewritten atomically and sealed with a checksum (files.rs), `lock`, the
//! spool's files (spool.rs) and revise/ (snapshot.rs).
//!
//! Taking the lock checks every file. Each backs another up: a damaged `delivered.json` is
//! rebuilt from `sent.json` and revise/ (a day with a mark and no batch in the spool was
//! delivered), a damaged `sent.json` from revise/, the spool's snapshots and the delivered
//! days. A damaged batch, batch snapshot or day file makes its days be pulled again (recorded
//! here first, then the file is set aside), each line going out as a revision above the
//! mark, so nothing delivered is sent again as a first delivery.

use crate::files::{
    keep_aside_and_replace, plain_io, sealed_json, unseal_json, write_atomic, write_error,
};
use crate::schedule::{format_date, parse_date};
use crate::yaml::{ConfigError, Doc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use time::Date;

use crate::spool::{Batch, Finding, Spool, SpoolWriter};

/// Days before the newest one whose revision marks sent.json keeps (more than the longest
/// revise window: a mark is what numbering continues from, and what tells a delivered day
/// when delivered.json is lost).
const MARK_DAYS: i64 = 120;

/// Where state lives: a directory, or memory only (nothing survives a restart).
pub struct State {
    dir: Option<PathBuf>,
    /// An exclusive flock on `state_dir/lock` while this process works on the state.
    lock: Option<File>,
    delivered: BTreeSet<Date>,
    /// Days whose events must be pulled and sent again: the record of what went out for them
    /// was damaged.
    again: BTreeSet<Date>,
    /// Per day, the highest revision any of its events may have been sent with (0: first
    /// deliveries only), recorded before a batch becomes visible.
    sent: BTreeMap<Date, u32>,
    /// Records appended to dead-letter.jsonl, as far as this process knows.
    dead_letters: u64,
    spool: Spool,
}

/// What the delivered days' record holds (delivered.json).
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub delivered: BTreeSet<Date>,
    pub again: BTreeSet<Date>,
    /// None: not known (an earlier version's file).
    pub dead_letters: Option<u64>,
}

/// How a sealed state file read: missing, whole, or damaged (what is wrong).
enum Read<T> {
    Missing,
    Whole(T),
    Damaged(String),
}

/// Creates state_dir if needed and checks that it can be written.
pub fn usable(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir.join("spool"))
        .and_then(|_| probe_writable(dir))
        .map_err(|e| {
            format!(
                "state_dir {}: cannot be used: {}",
                dir.display(),
                plain_io(&e)
            )
        })
}

impl State {
    /// Opens state_dir, not yet locked or read (see `acquire`). Unusable and `named` is an
    /// error; an unusable default gives memory-only state, with one warning.
    pub fn open(dir: &Path, named: bool) -> Result<State, String> {
        if let Err(e) = usable(dir) {
            if named {
                return Err(e);
            }
            crate::warn!(
                "{e}; running from memory: delivered days and undelivered events will not survive a restart (set state_dir or mount a volume there)"
            );
            return Ok(State::memory());
        }
        Ok(State::of(dir))
    }

    fn of(dir: &Path) -> State {
        State {
            dir: Some(dir.to_path_buf()),
            spool: Spool::new(Some(dir)),
            ..State::memory()
        }
    }

    pub fn memory() -> State {
        State {
            dir: None,
            lock: None,
            delivered: BTreeSet::new(),
            again: BTreeSet::new(),
            sent: BTreeMap::new(),
            dead_letters: 0,
            spool: Spool::new(None),
        }
    }

    /// Takes the state_dir lock (waiting for it, or failing at once when `wait` is false)
    /// and reads the state again: another process may have delivered days meanwhile.
    pub fn acquire(&mut self, wait: bool) -> Result<(), String> {
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        if self.lock.is_none() {
            // Again each time: state_dir may have been emptied while the service slept.
            fs::create_dir_all(dir.join("spool"))
                .map_err(|e| write_error(&dir.join("spool"), &e))?;
            let path = dir.join("lock");
            // Non-blocking: a FIFO put there must not hold the open forever.
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path)
                // flock needs no write access: a lock file made by another user is fine.
                .or_else(|_| {
                    OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_NONBLOCK)
                        .open(&path)
                })
                .map_err(|e| write_error(&path, &e))?;
            let kind = file
                .metadata()
                .map_err(|e| format!("{}: cannot read: {}", path.display(), plain_io(&e)))?
                .file_type();
            if !kind.is_file() {
                return Err(format!(
                    "{}: not a regular file ({}), so state_dir cannot be locked; remove it (it is made again as an empty file)",
                    path.display(),
                    file_kind(&kind)
                ));
            }
            let mode = if wait {
                libc::LOCK_EX
            } else {
                libc::LOCK_EX | libc::LOCK_NB
            };
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), mode) } != 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EWOULDBLOCK) => {
                        return Err(format!(
                            "state_dir {} is in use by another source-aws-billing (a service delivering, or another once); try again when it is done",
                            dir.display()
                        ));
                    }
                    Some(libc::ENOLCK | libc::EOPNOTSUPP) => crate::warn!(
                        "{}: this filesystem cannot lock ({}); run only one source-aws-billing on this state_dir",
                        path.display(),
                        plain_io(&e)
                    ),
                    _ => return Err(format!("{}: cannot lock: {}", path.display(), plain_io(&e))),
                }
            }
            self.lock = Some(file);
        }
        self.load(&dir, true).map(drop)
    }

    /// Reads and checks every file of state_dir (see the module). With `fix` (the lock is
    /// held), what is damaged is repaired, each file named in one error line; without
    /// (`status`), nothing is written and what is damaged is returned.
    fn load(&mut self, dir: &Path, fix: bool) -> Result<Vec<Finding>, String> {
        let mut found = Vec::new();
        let record = read_record(dir)?;
        let sent = read_sent(dir)?;
        let swept = self.spool.sweep(fix, &mut found)?;
        let spooled = self.spool_days(&swept);
        let sent_whole = matches!(sent, Read::Whole(_));
        let sent_problem = match sent {
            Read::Whole(marks) => {
                self.sent = marks;
                None
            }
            Read::Missing => None,
            Read::Damaged(problem) => Some(problem),
        };
        if !sent_whole {
            self.sent = BTreeMap::new();
        }
        let mut save = false;
        match record {
            Read::Whole(r) => {
                save = r.dead_letters.is_none();
                self.delivered = r.delivered;
                self.again = r.again;
                self.dead_letters = r.dead_letters.unwrap_or(0);
            }
            Read::Missing => {
                self.delivered = BTreeSet::new();
                self.again = BTreeSet::new();
                self.dead_letters = 0;
            }
            Read::Damaged(problem) => {
                // Rebuilt from what backs it up: a day with a mark or a day file and no batch
                // in the spool was delivered.
                let mut delivered = BTreeSet::new();
                for day in self.sent.keys() {
                    delivered.insert(*day);
                }
                for path in crate::snapshot::day_files(dir) {
                    if let Some(day) = day_of(&path) {
                        delivered.insert(day);
                    }
                }
                self.delivered = delivered
                    .iter()
                    .copied()
                    .filter(|d| !spooled.contains(d))
                    .collect();
                self.again = BTreeSet::new();
                self.dead_letters = 0;
                let path = dir.join("delivered.json");
                if !fix {
                    found.push((path, problem));
                } else {
                    let aside = keep_aside_and_replace(&path, self.record_text().as_bytes())?;
                    let known = match (self.delivered.first(), self.delivered.last()) {
                        (Some(a), Some(b)) => format!(
                            "{} delivered day(s) are known ({} to {})",
                            self.delivered.len(),
                            format_date(*a),
                            format_date(*b)
                        ),
                        _ => "no delivered day is known".into(),
                    };
                    crate::error!(
                        "{}: {problem}; kept it as {}: rebuilt it from sent.json and revise/: {known}; days delivered before those are no longer known, so catch-up does not reach back to them (use `once --from --to` for older days)",
                        path.display(),
                        aside.display()
                    );
                }
            }
        }
        let written = (!save).then_some(self.dead_letters);
        let (count, bad) = self.spool.check_dead_letters(written, fix)?;
        found.extend(bad);
        save |= count != self.dead_letters;
        self.dead_letters = count;
        if !sent_whole {
            self.sent = rebuilt_marks(dir, &self.delivered);
            let path = dir.join("sent.json");
            match sent_problem {
                Some(problem) if !fix => found.push((path, problem)),
                Some(problem) => {
                    let aside = keep_aside_and_replace(&path, self.sent_text().as_bytes())?;
                    crate::error!(
                        "{}: {problem}; kept it as {}: rebuilt it from revise/, the spool's snapshots and delivered.json ({} day(s)); revisions sent after damage are numbered from there",
                        path.display(),
                        aside.display(),
                        self.sent.len()
                    );
                }
                // First made from the other files (an earlier version's state_dir); a new
                // one needs none until its first batch.
                None if fix && !self.sent.is_empty() => {
                    write_atomic(&path, self.sent_text().as_bytes())?
                }
                None => {}
            }
        }
        // Damaged day files and batches: their days are recorded to be pulled again first,
        // then the files are set aside (a crash in between finds the damage again).
        let days = crate::snapshot::check_days(dir, fix, &mut |p, w| found.push((p, w)))?;
        for d in &days {
            self.pull_again(d.day, d.day);
        }
        for d in &swept.damaged {
            self.pull_again(d.first, d.last);
        }
        if !fix {
            for d in days {
                found.push((d.file, d.problem));
            }
            for d in swept.damaged {
                found.push((d.file, d.problem));
            }
            return Ok(found);
        }
        if save || !days.is_empty() || !swept.damaged.is_empty() {
            self.write_record()?;
        }
        for d in &days {
            crate::snapshot::repair_day(d)?;
        }
        for d in &swept.damaged {
            self.spool.set_aside(d)?;
        }
        for batch in swept.done {
            self.finish(batch)?;
        }
        Ok(found)
    }

    /// The days of the batches in the spool (held, done or damaged).
    fn spool_days(&mut self, swept: &crate::spool::Swept) -> BTreeSet<Date> {
        let held = self.spool.batches();
        let mut days = BTreeSet::new();
        let mut add = |first, last| {
            for d in day_list(first, last) {
                days.insert(d);
            }
        };
        for b in held.iter().chain(&swept.done) {
            add(b.first, b.last);
        }
        for d in &swept.damaged {
            add(d.first, d.last);
        }
        for b in held {
            self.spool.keep(b);
        }
        days
    }

    /// Records `first..=last` to be pulled again (not delivered), in memory; `write_record` saves it.
    fn pull_again(&mut self, first: Date, last: Date) {
        let within = |d: &Date| *d >= first && *d <= last;
        self.delivered = self
            .delivered
            .iter()
            .copied()
            .filter(|d| !within(d))
            .collect();
        for d in day_list(first, last) {
            self.again.insert(d);
        }
    }

    /// The spool: its batches, writers and dead letters.
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    pub fn spool_mut(&mut self) -> &mut Spool {
        &mut self.spool
    }

    /// Makes a fully written pull visible: first the highest revision it sends per day goes
    /// to sent.json (so that numbering after a damage continues above it), then the batch.
    pub fn commit(&mut self, writer: SpoolWriter) -> Result<Batch, String> {
        let mut changed = false;
        for (day, r) in &writer.sent {
            if self.dir.is_some() && self.sent.get(day).is_none_or(|m| m < r) {
                self.sent.insert(*day, *r);
                changed = true;
            }
        }
        if changed {
            // Only recent days are kept (and days to pull again).
            let newest = self.sent.keys().next_back().copied();
            if let Some(oldest) = newest.map(|d| d - time::Duration::days(MARK_DAYS)) {
                let mut kept = BTreeMap::new();
                for (day, r) in &self.sent {
                    if *day >= oldest || self.again.contains(day) {
                        kept.insert(*day, *r);
                    }
                }
                self.sent = kept;
            }
            self.write_sent()?;
        }
        self.spool.commit(writer)
    }

    /// Appends a rejected event to dead-letter.jsonl and counts it.
    pub fn dead_letter(
        &mut self,
        status: u16,
        reason: &str,
        event_json: &str,
    ) -> Result<(), String> {
        self.spool.dead_letter(status, reason, event_json)?;
        if self.dir.is_some() {
            self.dead_letters += 1;
        }
        Ok(())
    }

    /// Saves the count of dead letters (after a delivery that rejected some and finished nothing).
    pub fn save_dead_letters(&self) -> Result<(), String> {
        self.write_record()
    }

    /// All of a batch's events are delivered or dead-lettered: record its days, then let
    /// the spool drop its files. A revision snapshot found damaged on the way makes the
    /// batch's days be pulled again.
    pub fn finish(&mut self, batch: Batch) -> Result<(), String> {
        let (first, last) = (batch.first, batch.last);
        self.mark_delivered(first, last)?;
        if let Some(damaged) = self.spool.retire(batch)? {
            self.pull_again(first, last);
            self.write_record()?;
            self.spool.set_aside(&damaged)?;
        }
        Ok(())
    }

    /// Lets other processes use state_dir (the service does this while it sleeps).
    pub fn release(&mut self) {
        self.lock = None;
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    pub fn is_delivered(&self, day: Date) -> bool {
        self.delivered.contains(&day)
    }

    /// Every day recorded as delivered.
    pub fn delivered_days(&self) -> &BTreeSet<Date> {
        &self.delivered
    }

    /// Days to pull again: the record of what went out for them was damaged.
    pub fn again_days(&self) -> &BTreeSet<Date> {
        &self.again
    }

    /// The highest revision any event of `day` may have been sent with, if known.
    pub fn sent_mark(&self, day: Date) -> Option<u32> {
        self.sent.get(&day).copied()
    }

    /// Records days as delivered (and no longer to pull again): written to a temporary file,
    /// fsynced and renamed.
    pub fn mark_delivered(&mut self, first: Date, last: Date) -> Result<(), String> {
        let (delivered, again) = (self.delivered.clone(), self.again.clone());
        for d in day_list(first, last) {
            self.delivered.insert(d);
        }
        if !self.again.is_empty() {
            self.again = again
                .iter()
                .copied()
                .filter(|d| *d < first || *d > last)
                .collect();
        }
        if let Err(e) = self.write_record() {
            (self.delivered, self.again) = (delivered, again);
            return Err(e);
        }
        Ok(())
    }

    fn write_record(&self) -> Result<(), String> {
        match &self.dir {
            Some(dir) => write_atomic(&dir.join("delivered.json"), self.record_text().as_bytes()),
            None => Ok(()),
        }
    }

    /// delivered.json's text: `{"version":2,"delivered":[…],"again":[…],"dead_letters":N,"sum":"…"}`.
    fn record_text(&self) -> String {
        sealed_json(&format!(
            "{{\"version\":2,\"delivered\":{},\"again\":{},\"dead_letters\":{}",
            day_array(&self.delivered),
            day_array(&self.again),
            self.dead_letters
        ))
    }

    fn write_sent(&self) -> Result<(), String> {
        match &self.dir {
            Some(dir) => write_atomic(&dir.join("sent.json"), self.sent_text().as_bytes()),
            None => Ok(()),
        }
    }

    /// sent.json's text: `{"version":1,"sent":{"<day>":<revision>,…},"sum":"…"}`.
    fn sent_text(&self) -> String {
        let mut marks = String::from("{");
        for (day, r) in &self.sent {
            if marks.len() > 1 {
                marks.push(',');
            }
            marks.push_str(&format!("\"{}\":{r}", format_date(*day)));
        }
        sealed_json(&format!("{{\"version\":1,\"sent\":{marks}}}"))
    }
}

/// `["2026-11-20","2026-11-21"]`.
fn day_array(days: &BTreeSet<Date>) -> String {
    let mut out = String::from("[");
    for day in days {
        if out.len() > 1 {
            out.push(',');
        }
        out.push('"');
        out.push_str(&format_date(*day));
        out.push('"');
    }
    out.push(']');
    out
}

/// A file type in words, for a line about a file that should be a regular one.
fn file_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a plain file"
    }
}

fn probe_writable(dir: &Path) -> std::io::Result<()> {
    // Named per process: two processes starting together must not remove each other's probe.
    let probe = dir.join(format!(".write-test.{}", std::process::id()));
    File::create(&probe)?.write_all(b"ok")?;
    match fs::remove_file(probe) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// What `status` reads of the state (`inspect`).
pub struct Inspection {
    /// The delivered days and the days to pull again, as the next lock would find them.
    pub record: Record,
    /// Events pending in whole spool batches.
    pub spool_events: u64,
    /// Every damaged file of the connector's, with what is wrong.
    pub damaged: Vec<Finding>,
}

/// `status`'s view of the state, read only: what the next lock would find, repairing nothing.
pub fn inspect(dir: &Path) -> Result<Inspection, String> {
    let mut state = State::of(dir);
    let damaged = state.load(dir, false)?;
    let spool_events = state
        .spool
        .batches()
        .iter()
        .map(|b| b.pending() as u64)
        .sum();
    Ok(Inspection {
        record: Record {
            delivered: state.delivered,
            again: state.again,
            dead_letters: Some(state.dead_letters),
        },
        spool_events,
        damaged,
    })
}

/// The day of a `revise/<date>.jsonl` path.
fn day_of(path: &Path) -> Option<Date> {
    parse_date(path.file_name()?.to_str()?.strip_suffix(".jsonl")?)
}

/// `first..=last`, a day at a time.
fn day_list(first: Date, last: Date) -> Vec<Date> {
    let mut days = Vec::new();
    let mut d = first;
    while d <= last {
        days.push(d);
        match d.next_day() {
            Some(next) => d = next,
            None => break,
        }
    }
    days
}

/// A sealed state file as JSON, and whether it carries a sum (checked) or none (an earlier
/// version's file, for the caller to judge).
fn read_sealed(path: &Path) -> Result<Read<(Value, bool)>, String> {
    let Some(bytes) = crate::files::read_regular(path)? else {
        return Ok(Read::Missing);
    };
    let sealed = match unseal_json(&bytes) {
        Ok(sealed) => sealed,
        Err(problem) => return Ok(Read::Damaged(problem)),
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Ok(Read::Damaged("is not UTF-8 text".into()));
    };
    Ok(match serde_json::from_str::<Value>(text) {
        Ok(v) if v.is_object() => Read::Whole((v, sealed)),
        Ok(_) => Read::Damaged("is not a valid state file (not an object)".into()),
        Err(e) => Read::Damaged(format!("is not a valid state file ({e})")),
    })
}

/// The version a sealed file must have (`sealed`), or one without a sum may have (`legacy`).
fn version_problem(v: &Value, sealed: bool, want: u64, legacy: Option<u64>) -> Option<String> {
    match (sealed, v["version"].as_u64()) {
        (true, Some(n)) if n == want => None,
        (false, n) if n.is_some() && n == legacy => None,
        (false, _) => Some("has no checksum".into()),
        (true, n) => Some(format!(
            "is version {}, which this binary does not read",
            n.map_or("?".into(), |n| n.to_string())
        )),
    }
}

/// The days of a JSON list of `YYYY-MM-DD` (a missing list: none); None when one is no day.
fn days_in(v: &Value) -> Option<BTreeSet<Date>> {
    let mut days = BTreeSet::new();
    if v.is_null() {
        return Some(days);
    }
    for d in v.as_array()? {
        days.insert(parse_date(d.as_str()?)?);
    }
    Some(days)
}

/// delivered.json: version 2 sealed, or version 1 (no sum, no again, no count) of earlier versions.
fn read_record(dir: &Path) -> Result<Read<Record>, String> {
    let (v, sealed) = match read_sealed(&dir.join("delivered.json"))? {
        Read::Whole(found) => found,
        Read::Missing => return Ok(Read::Missing),
        Read::Damaged(problem) => return Ok(Read::Damaged(problem)),
    };
    if let Some(problem) = version_problem(&v, sealed, 2, Some(1)) {
        return Ok(Read::Damaged(problem));
    }
    let (Some(delivered), Some(again)) = (days_in(&v["delivered"]), days_in(&v["again"])) else {
        return Ok(Read::Damaged("names something that is not a day".into()));
    };
    Ok(Read::Whole(Record {
        delivered,
        again,
        dead_letters: v["dead_letters"].as_u64(),
    }))
}

/// sent.json: sealed, version 1.
fn read_sent(dir: &Path) -> Result<Read<BTreeMap<Date, u32>>, String> {
    let (v, sealed) = match read_sealed(&dir.join("sent.json"))? {
        Read::Whole(found) => found,
        Read::Missing => return Ok(Read::Missing),
        Read::Damaged(problem) => return Ok(Read::Damaged(problem)),
    };
    if let Some(problem) = version_problem(&v, sealed, 1, None) {
        return Ok(Read::Damaged(problem));
    }
    let mut marks = BTreeMap::new();
    let Some(sent) = v["sent"].as_object() else {
        return Ok(Read::Damaged("has no revision marks".into()));
    };
    for (day, r) in sent {
        match (
            parse_date(day),
            r.as_u64().and_then(|r| u32::try_from(r).ok()),
        ) {
            (Some(day), Some(r)) => drop(marks.insert(day, r)),
            _ => {
                return Ok(Read::Damaged(
                    "names something that is not a day's revision".into(),
                ));
            }
        }
    }
    Ok(Read::Whole(marks))
}

/// sent.json as far as other files tell (it is missing or damaged): the highest revision the
/// day files and the spool's snapshots hold per day, and 0 for the other recent delivered days.
fn rebuilt_marks(dir: &Path, delivered: &BTreeSet<Date>) -> BTreeMap<Date, u32> {
    let mut marks = BTreeMap::new();
    if let Some(newest) = delivered.last() {
        let oldest = *newest - time::Duration::days(MARK_DAYS);
        for d in delivered {
            if *d >= oldest {
                marks.insert(*d, 0);
            }
        }
    }
    let mut files = crate::snapshot::day_files(dir);
    if let Ok(entries) = fs::read_dir(dir.join("spool")) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "revise") {
                files.push(path);
            }
        }
    }
    for path in files {
        for (day, r) in crate::snapshot::max_revisions(&path) {
            if marks.get(&day).is_none_or(|m| *m < r) {
                marks.insert(day, r);
            }
        }
    }
    marks
}

/// The config key this module reads: `state_dir`.
pub const KEYS: [&str; 1] = ["state_dir"];
pub const DEFAULT_DIR: &str = "/vance/data";

/// The config's `state_dir`, else CONNECTOR_STATE_DIR, else the default; and whether the
/// user chose it.
pub fn dir_setting(
    file: &Doc,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(PathBuf, bool), ConfigError> {
    match file.string("state_dir")? {
        Some(d) if !d.is_empty() => Ok((PathBuf::from(d), true)),
        Some(_) => Err(ConfigError(format!(
            "{}: state_dir: expected a directory path, found \"\"",
            file.name
        ))),
        None => Ok(match env("CONNECTOR_STATE_DIR").filter(|d| !d.is_empty()) {
            Some(d) => (PathBuf::from(d), true),
            None => (PathBuf::from(DEFAULT_DIR), false),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Line};
    use crate::files::{Sum, header};
    use crate::spool::tests::{pending, take};
    use time::macros::date;

    const DAY: Date = date!(2022 - 06 - 13);

    fn tmpdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "sab-state-{}-{}",
            std::process::id(),
            getrandom::u64().unwrap()
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// What a new process sees: state_dir opened, locked and read.
    fn locked(dir: &Path) -> State {
        let mut state = State::open(dir, true).unwrap();
        state.acquire(false).unwrap();
        state
    }

    fn event(service: &str) -> Event {
        let line = Line::service("2022-06-13", service, "BlendedCost", "1", "USD");
        Event::sealed(line, "2022-06-14T00:00:00Z")
    }

    /// A batch of `DAY` as a pull commits it: sent marks first, an (empty) snapshot beside it.
    fn spooled(state: &mut State, services: &[&str]) -> Batch {
        let mut w = state.spool().writer(DAY, DAY).unwrap();
        for s in services {
            w.push(&event(s)).unwrap();
        }
        w.sent.insert(DAY, 0);
        let batch = state.commit(w).unwrap();
        let snapshot = state
            .dir()
            .unwrap()
            .join("spool/2022-06-13_2022-06-13.revise");
        fs::write(snapshot, header(0, Sum::default().value())).unwrap();
        batch
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_corrupt_delivered_file_is_kept_aside_and_rebuilt_from_the_sent_marks() {
        let dir = tmpdir();
        let mut state = locked(&dir);
        let batch = spooled(&mut state, &["a"]);
        state.finish(batch).unwrap();
        state
            .mark_delivered(date!(2022 - 06 - 10), date!(2022 - 06 - 10))
            .unwrap();
        drop(state);
        let text = fs::read_to_string(dir.join("delivered.json")).unwrap();
        assert!(text.starts_with("{\"version\":2,\"delivered\":[\"2022-06-10\",\"2022-06-13\"],\"again\":[],\"dead_letters\":0,\"sum\":\""), "{text}");
        for damage in [
            "{not json",
            "",
            "\0\0\0\0",
            &text.replace("06-10", "06-11"),
            &text[..text.len() - 4],
        ] {
            fs::write(dir.join("delivered.json"), damage).unwrap();
            let state = locked(&dir);
            // 2022-06-10 was marked by hand, not sent by a batch: no mark tells it.
            assert_eq!(
                state.delivered_days().iter().copied().collect::<Vec<_>>(),
                [DAY],
                "{damage:?}"
            );
            drop(state);
            let kept: Vec<String> = names(&dir)
                .into_iter()
                .filter(|n| n.starts_with("delivered.json.corrupt-"))
                .collect();
            assert_eq!(kept.len(), 1, "{damage:?}");
            assert_eq!(fs::read_to_string(dir.join(&kept[0])).unwrap(), damage);
            fs::remove_file(dir.join(&kept[0])).unwrap();
            fs::write(dir.join("delivered.json"), &text).unwrap();
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_earlier_versions_delivered_file_is_read_and_rewritten_sealed() {
        let dir = tmpdir();
        fs::write(
            dir.join("delivered.json"),
            "{\"version\":1,\"delivered\":[\"2022-06-13\"]}\n",
        )
        .unwrap();
        let state = locked(&dir);
        assert!(state.is_delivered(DAY));
        assert!(!names(&dir).iter().any(|n| n.contains(".corrupt-")));
        let text = fs::read(dir.join("delivered.json")).unwrap();
        assert_eq!(unseal_json(&text), Ok(true));
        // sent.json is made from what is known: the delivered day, first deliveries.
        assert_eq!(state.sent_mark(DAY), Some(0));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_damaged_sent_file_is_rebuilt_from_the_day_files_and_delivered_days() {
        let dir = tmpdir();
        let mut state = locked(&dir);
        let batch = spooled(&mut state, &["a"]);
        state.finish(batch).unwrap();
        drop(state);
        fs::create_dir_all(dir.join("revise")).unwrap();
        let line = b"{\"r\":4,\"e\":true,\"d\":{\"vanceSource\":\"x\",\"vanceType\":\"y\",\"date\":\"2022-06-12\",\"amount\":\"1\",\"unit\":\"USD\"}}\n";
        let mut sum = Sum::default();
        sum.add(&line[..line.len() - 1]);
        let mut day = header(1, sum.value());
        day.extend_from_slice(line);
        fs::write(dir.join("revise/2022-06-12.jsonl"), day).unwrap();
        fs::write(
            dir.join("sent.json"),
            "{\"version\":1,\"sent\":{\"2022-06-13\":9}}",
        )
        .unwrap();
        let state = locked(&dir);
        assert_eq!(state.sent_mark(DAY), Some(0));
        assert_eq!(state.sent_mark(date!(2022 - 06 - 12)), Some(4));
        assert!(
            names(&dir)
                .iter()
                .any(|n| n.starts_with("sent.json.corrupt-"))
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_commit_records_the_revisions_it_sends_before_the_batch_is_visible_and_keeps_the_highest() {
        let dir = tmpdir();
        let mut state = locked(&dir);
        for (r, want) in [(3, 3), (1, 3)] {
            let mut w = state.spool().writer(DAY, DAY).unwrap();
            w.push(&event("a")).unwrap();
            w.sent.insert(DAY, r);
            let batch = state.commit(w).unwrap();
            assert_eq!(state.sent_mark(DAY), Some(want));
            state.finish(batch).unwrap();
        }
        drop(state);
        assert_eq!(locked(&dir).sent_mark(DAY), Some(3));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn finishing_records_days_and_removes_the_spool() {
        let dir = tmpdir();
        let mut state = locked(&dir);
        let batch = spooled(&mut state, &["a"]);
        state.finish(batch).unwrap();
        drop(state);
        let mut state = locked(&dir);
        assert!(state.is_delivered(DAY));
        assert_eq!(state.delivered_days().last().copied(), Some(DAY));
        assert!(state.spool_mut().batches().is_empty());
        assert_eq!(names(&dir.join("spool")), Vec::<String>::new());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn one_process_at_a_time_and_a_release_lets_the_next_in() {
        let dir = tmpdir();
        let mut first = locked(&dir);
        let mut second = State::open(&dir, true).unwrap();
        let e = second.acquire(false).unwrap_err();
        assert!(e.contains("is in use by another source-aws-billing"), "{e}");
        first.mark_delivered(DAY, DAY).unwrap();
        first.release();
        second.acquire(false).unwrap();
        assert!(second.is_delivered(DAY), "re-read after the lock");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_fully_acknowledged_batch_is_finished_and_a_pending_one_kept_on_reopen() {
        let dir = tmpdir();
        let mut state = locked(&dir);
        let mut done = spooled(&mut state, &["a"]);
        take(&mut done, usize::MAX);
        drop(done); // crashed before finish
        drop(state);
        let mut state = locked(&dir);
        assert!(state.is_delivered(DAY));
        assert!(state.spool_mut().batches().is_empty());
        // A --force re-send of a delivered day stays until its events are out.
        let forced = spooled(&mut state, &["b"]);
        drop(forced);
        drop(state);
        let mut state = locked(&dir);
        assert_eq!(pending(&mut state.spool_mut().batches()[0]), ["b"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_damaged_batch_is_set_aside_and_its_days_recorded_to_pull_again_even_when_delivered() {
        let dir = tmpdir();
        let mut state = locked(&dir);
        // A forced re-send of a delivered day, damaged in the spool.
        state.mark_delivered(DAY, DAY).unwrap();
        drop(spooled(&mut state, &["a", "b"]));
        drop(state);
        let path = dir.join("spool").join("2022-06-13_2022-06-13.jsonl");
        fs::write(&path, "garbage\n{\"torn\n").unwrap();
        let mut state = locked(&dir);
        assert!(state.spool_mut().batches().is_empty());
        assert!(!state.is_delivered(DAY));
        assert_eq!(
            state.again_days().iter().copied().collect::<Vec<_>>(),
            [DAY]
        );
        assert_eq!(
            state.sent_mark(DAY),
            Some(0),
            "numbering goes on above the batch's"
        );
        drop(state);
        let state = locked(&dir);
        assert!(
            !state.is_delivered(DAY) && state.again_days().contains(&DAY),
            "recorded"
        );
        assert!(!path.exists());
        let aside = names(&dir.join("spool"));
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert!(aside[0].contains(".jsonl.corrupt-"));
        assert_eq!(state.spool().bytes(), 0, "files kept aside are not spool");
        // Once a pull of the day is finished, it is delivered and no longer to pull again.
        let mut state = state;
        let batch = spooled(&mut state, &["a", "b"]);
        state.finish(batch).unwrap();
        assert!(state.is_delivered(DAY) && state.again_days().is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_damaged_snapshot_found_when_finishing_makes_the_days_be_pulled_again() {
        let dir = tmpdir();
        let mut state = locked(&dir);
        let mut batch = spooled(&mut state, &["a"]);
        take(&mut batch, usize::MAX);
        let snapshot = dir.join("spool/2022-06-13_2022-06-13.revise");
        fs::write(&snapshot, "{\"lines\":3,\"sum\":\"0000000000000000\"}\n").unwrap();
        state.finish(batch).unwrap();
        assert!(!state.is_delivered(DAY) && state.again_days().contains(&DAY));
        let left = names(&dir.join("spool"));
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(
            left[0].starts_with("2022-06-13_2022-06-13.revise.corrupt-"),
            "{left:?}"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rejections_are_counted_and_a_cut_dead_letter_file_is_named() {
        let dir = tmpdir();
        let mut state = locked(&dir);
        let batch = spooled(&mut state, &["a"]);
        state.dead_letter(400, "no", &event("a").to_json()).unwrap();
        state.dead_letter(400, "no", &event("b").to_json()).unwrap();
        state.finish(batch).unwrap();
        drop(state);
        let (found, _) = (inspect(&dir).unwrap().damaged, ());
        assert!(found.is_empty(), "{found:?}");
        let path = dir.join("dead-letter.jsonl");
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, &text[..text.find('\n').unwrap() + 1]).unwrap();
        let found = inspect(&dir).unwrap().damaged;
        assert_eq!(
            found,
            [(
                path.clone(),
                "holds 1 of the 2 record(s) written to it (it was cut)".to_string()
            )]
        );
        drop(locked(&dir));
        assert!(
            inspect(&dir).unwrap().damaged.is_empty(),
            "named once, then counted as it is"
        );
        assert!(
            names(&dir)
                .iter()
                .any(|n| n.starts_with("dead-letter.jsonl.corrupt-"))
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_named_state_dir_that_cannot_be_used_is_an_error() {
        let file = tmpdir().join("plain-file");
        fs::write(&file, "x").unwrap();
        let e = State::open(&file, true).err().unwrap();
        assert!(
            e.starts_with(&format!("state_dir {}: cannot be used", file.display())),
            "{e}"
        );
        assert!(State::open(&file, false).unwrap().dir().is_none());
        fs::remove_dir_all(file.parent().unwrap()).unwrap();
    }
}
