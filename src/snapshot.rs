//! What was last delivered per line of the revise window, kept crash-safe in state_dir/revise/.
//!
//! `revise/<date>.jsonl` holds one line per billing line of a delivered day whose numbers
//! were estimated: `{"r":<revision>,"e":<estimated>,"d":<event data>}`. Only days inside
//! the revise window are kept, so the directory holds at most `revise_days` + 1 days
//! of lines (about 260 bytes a line with two group keys).
//!
//! A pull that revises or first delivers such days writes the days' new snapshot beside
//! its spool batch (`spool/<batch>.revise`, made visible before the batch itself); when
//! the batch is finished (every event delivered or dead-lettered), the snapshot replaces
//! the day files, and only then is the batch removed. A crash before the batch is visible
//! leaves the old snapshot, so the next pull finds the same revisions again (never sent,
//! so never doubled); a crash after it leaves the batch and its snapshot, delivered and
//! promoted on the next start (never lost).

use crate::event::{Data, ESTIMATED, Event, REVISION};
use crate::files::{sync_dir, write_error};
use crate::revise::{Index, SLOT, Slots, Vanished, Verdict, capacity_for, window_start};
use crate::schedule::{format_date, parse_date};
use crate::summary::Totals;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use time::Date;

#[derive(Serialize, Deserialize)]
struct Stored {
    /// Revision last delivered (0: the first delivery).
    r: u32,
    /// Cost Explorer's Estimated flag when it was delivered.
    e: bool,
    d: Data,
    /// Routing attributes of the line (`service`, `linkedaccount`, ...), when configured.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    x: BTreeMap<String, serde_json::Value>,
}

/// Of a stored line, only what `promote` sorts it by (the rest is skipped, not built).
#[derive(Deserialize)]
struct DayOf<'a> {
    e: bool,
    #[serde(borrow)]
    d: DateOf<'a>,
}

#[derive(Deserialize)]
struct DateOf<'a> {
    #[serde(borrow)]
    date: std::borrow::Cow<'a, str>,
}

/// A snapshot being written beside a spool batch; removed when dropped uncommitted.
pub struct Writer {
    tmp: PathBuf,
    file: Option<BufWriter<File>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl Writer {
    fn record(
        &mut self,
        (data, routing): (&RawValue, &BTreeMap<String, serde_json::Value>),
        revision: u32,
        estimated: bool,
    ) -> Result<(), String> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        let line = StoredRef {
            r: revision,
            e: estimated,
            d: data,
            x: Routing(routing),
        };
        let mut text = serde_json::to_vec(&line).expect("plain strings always serialize");
        text.push(b'\n');
        file.write_all(&text)
            .map_err(|e| write_error(&self.tmp, &e))
    }
}

/// A stored line as written: `d` is the event data's JSON as the spool line has it.
#[derive(Serialize)]
struct StoredRef<'a> {
    r: u32,
    e: bool,
    d: &'a RawValue,
    #[serde(skip_serializing_if = "Routing::is_empty")]
    x: Routing<'a>,
}

/// An event's routing attributes without `estimated` and `revision`, written as a map
/// straight from the event's (no second map is built).
struct Routing<'a>(&'a BTreeMap<String, serde_json::Value>);

impl Routing<'_> {
    fn attributes(&self) -> impl Iterator<Item = (&String, &serde_json::Value)> {
        self.0
            .iter()
            .filter(|(k, _)| k.as_str() != ESTIMATED && k.as_str() != REVISION)
    }

    fn is_empty(&self) -> bool {
        self.attributes().next().is_none()
    }
}

impl Serialize for Routing<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.attributes())
    }
}

/// One pull's revision work: which delivered days it pulls again, what was last delivered
/// of them, and the snapshot it leaves for its batch.
pub struct Round {
    dir: Option<PathBuf>,
    days: BTreeSet<Date>,
    /// Days with a snapshot pulled as undelivered (`once --force`): every line goes out
    /// again, an unchanged one as the revision it was last delivered as (so with the same
    /// id), a changed one as its next revision, so the numbering continues.
    resend: BTreeSet<Date>,
    /// On disk, in an unlinked file (`FileSlots`): only one bit per line stays in memory.
    index: Option<Index<FileSlots>>,
    keep_days: u32,
    writer: Option<Writer>,
    /// The Estimated flag each revised day came back with.
    now_estimated: BTreeMap<Date, bool>,
    /// Day summaries (`summary: true`): this pull's totals, and each day's last summary revision.
    totals: Option<Totals>,
    summary_rev: BTreeMap<Date, u32>,
    /// The first day to pull: the oldest revised day, or the pull's own first day.
    pub first: Date,
}

fn revise_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("revise")
}

fn day_file(state_dir: &Path, day: Date) -> PathBuf {
    revise_dir(state_dir).join(format!("{}.jsonl", format_date(day)))
}

/// Days with a snapshot (delivered while estimated), oldest first.
fn snapshot_days(state_dir: &Path) -> BTreeSet<Date> {
    fs::read_dir(revise_dir(state_dir))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    parse_date(name.strip_suffix(".jsonl")?)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The revision index's slots. Recording: a file in state_dir, unlinked as soon as it is made
/// (nothing to clean up after a crash), whose pages live in the page cache, not in this
/// process. A preview writes nothing in state_dir: its slots are in memory when they fit in
/// `PREVIEW_MEMORY`, else in such a file in the temporary directory (in memory if there is none).
enum FileSlots {
    File(File),
    Memory(Vec<[u8; SLOT]>),
}

/// Slots a preview keeps in memory rather than in a temporary file (about 87,000 lines).
const PREVIEW_MEMORY: usize = 4 << 20;

impl FileSlots {
    fn new(state_dir: &Path, capacity: usize, record: bool) -> Result<FileSlots, String> {
        if record {
            return FileSlots::file(state_dir, capacity);
        }
        if capacity * SLOT > PREVIEW_MEMORY
            && let Ok(slots) = FileSlots::file(&std::env::temp_dir(), capacity)
        {
            return Ok(slots);
        }
        Ok(FileSlots::Memory(vec![[0; SLOT]; capacity]))
    }

    fn file(dir: &Path, capacity: usize) -> Result<FileSlots, String> {
        let path = dir.join(format!(".revise-index.{}", std::process::id()));
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| write_error(&path, &e))?;
        let _ = fs::remove_file(&path);
        file.set_len((capacity * SLOT) as u64)
            .map_err(|e| write_error(&path, &e))?;
        Ok(FileSlots::File(file))
    }
}

impl Slots for FileSlots {
    fn get(&mut self, i: usize) -> Result<[u8; SLOT], String> {
        use std::os::unix::fs::FileExt;
        let file = match self {
            FileSlots::Memory(slots) => return Ok(slots[i]),
            FileSlots::File(file) => file,
        };
        let mut slot = [0u8; SLOT];
        file.read_exact_at(&mut slot, (i * SLOT) as u64)
            .map_err(|e| {
                format!(
                    "the revision index: cannot read: {}",
                    crate::files::plain_io(&e)
                )
            })?;
        Ok(slot)
    }

    fn set(&mut self, i: usize, slot: [u8; SLOT]) -> Result<(), String> {
        use std::os::unix::fs::FileExt;
        let file = match self {
            FileSlots::Memory(slots) => {
                slots[i] = slot;
                return Ok(());
            }
            FileSlots::File(file) => file,
        };
        file.write_all_at(&slot, (i * SLOT) as u64).map_err(|e| {
            format!(
                "the revision index: cannot write: {}",
                crate::files::plain_io(&e)
            )
        })
    }
}

fn count_lines(path: &Path) -> usize {
    let Ok(file) = File::open(path) else { return 0 };
    BufReader::new(file).split(b'\n').count()
}

/// Calls `f` for each stored line of `day` (none when the day has no snapshot).
fn each_stored(
    state_dir: &Path,
    day: Date,
    f: &mut dyn FnMut(Stored) -> Result<(), String>,
) -> Result<(), String> {
    let path = day_file(state_dir, day);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(format!(
                "{}: cannot read: {}",
                path.display(),
                crate::files::plain_io(&e)
            ));
        }
    };
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| {
            format!(
                "{}: cannot read: {}",
                path.display(),
                crate::files::plain_io(&e)
            )
        })?;
        match serde_json::from_str::<Stored>(&line) {
            Ok(s) => f(s)?,
            // A damaged line cannot be compared: that line is treated as new if it shows up.
            Err(e) => crate::warn!(
                "{} line {}: not a snapshot line ({e}); ignored",
                path.display(),
                n + 1
            ),
        }
    }
    Ok(())
}

impl Round {
    /// Plans a pull of `first..=last`: with `window` (days), the delivered days from
    /// `window` days before `last` up to `last` whose last numbers were estimated are pulled
    /// again too. A day of `first..=last` that is not `delivered` (a forced re-pull) but
    /// has a snapshot continues its numbering: each line goes out again (see `resend`). With `record`, the batch's snapshot is written and day files older than
    /// `revise_days` before `last` are dropped; without a state_dir nothing is revised or
    /// recorded.
    pub fn start(
        dir: Option<&Path>,
        revise_days: u32,
        window: Option<u32>,
        (first, last): (Date, Date),
        delivered: &dyn Fn(Date) -> bool,
        record: bool,
    ) -> Result<Round, String> {
        let mut round = Round {
            dir: dir.map(Path::to_path_buf),
            days: BTreeSet::new(),
            resend: BTreeSet::new(),
            index: None,
            keep_days: revise_days,
            writer: None,
            now_estimated: BTreeMap::new(),
            totals: None,
            summary_rev: BTreeMap::new(),
            first,
        };
        let Some(dir) = dir else {
            return Ok(round);
        };
        let oldest = window_start(last, revise_days);
        let revise_from = window.map(|w| window_start(last, w));
        for day in snapshot_days(dir) {
            if day < oldest || revise_days == 0 {
                if record {
                    let _ = fs::remove_file(day_file(dir, day));
                }
            } else if day >= first && day <= last && !delivered(day) {
                round.days.insert(day);
                round.resend.insert(day);
            } else if revise_from.is_some_and(|f| day >= f) && day <= last && delivered(day) {
                round.days.insert(day);
            }
        }
        // Counted first: the table is made once, at its final size.
        let lines: usize = round
            .days
            .iter()
            .map(|d| count_lines(&day_file(dir, *d)))
            .sum();
        let mut index = match round.days.is_empty() {
            true => None,
            false => Some(Index::new(
                FileSlots::new(dir, capacity_for(lines), record)?,
                lines,
            )),
        };
        for day in &round.days {
            each_stored(dir, *day, &mut |s| {
                if s.d.lines.is_some() {
                    round.summary_rev.insert(*day, s.r);
                    Ok(())
                } else {
                    index.as_mut().map_or(Ok(()), |i| i.insert(&s.d, s.r))
                }
            })?;
        }
        round.index = index;
        if let Some(day) = round.days.first() {
            round.first = round.first.min(*day);
        }
        Ok(round)
    }

    /// Writes the batch's snapshot to `tmp` (the spool names it) as lines are judged.
    pub fn record_to(&mut self, tmp: PathBuf) -> Result<(), String> {
        let file = File::create(&tmp).map_err(|e| write_error(&tmp, &e))?;
        self.writer = Some(Writer {
            tmp,
            file: Some(BufWriter::new(file)),
        });
        Ok(())
    }

    /// Also sends a summary event after each day's lines (`summary: true`).
    pub fn with_summary(mut self, on: bool) -> Round {
        self.totals = on.then(Totals::default);
        self
    }

    /// Decides about a pulled line (already made an event): `Some` is the event to send,
    /// a first delivery or a revision; `None` leaves it out (an unchanged line, or one of a
    /// day that is `delivered` and not revised).
    pub fn judge(&mut self, event: Event, delivered: bool) -> Result<Option<Event>, String> {
        let data = event.raw_data();
        self.judge_with(event, &data, delivered)
    }

    /// `judge` for an event whose data is already serialized (`data`, as the spool line
    /// will hold it): recorded as it is, not serialized again.
    pub fn judge_with(
        &mut self,
        mut event: Event,
        data: &RawValue,
        delivered: bool,
    ) -> Result<Option<Event>, String> {
        let day = parse_date(&event.data.date);
        let revised = day.is_some_and(|d| self.days.contains(&d));
        let estimated = event.estimated();
        if let (true, Some(day)) = (revised, day) {
            self.now_estimated.insert(day, estimated);
        }
        if !revised {
            if delivered {
                return Ok(None);
            }
            if estimated && self.keep_days > 0 {
                self.record_raw((data, &event.extensions), 0, estimated)?;
            }
            if let Some(t) = &mut self.totals {
                t.add(&event.data, estimated, true)?;
            }
            return Ok(Some(event));
        }
        let verdict = match &mut self.index {
            Some(index) => index.judge(&event.data)?,
            None => Verdict::Revise(1),
        };
        let resend = day.is_some_and(|d| self.resend.contains(&d));
        if let Some(t) = &mut self.totals {
            t.add(
                &event.data,
                estimated,
                matches!(verdict, Verdict::Revise(_)),
            )?;
        }
        match verdict {
            Verdict::Unchanged(r) => {
                self.record_raw((data, &event.extensions), r, estimated)?;
                if !resend {
                    return Ok(None);
                }
                // Forced: sent again as it was last delivered, so with the same id.
                if r > 0 {
                    event.set_revision(r);
                }
                Ok(Some(event))
            }
            Verdict::Revise(n) => {
                self.record_raw((data, &event.extensions), n, estimated)?;
                event.set_revision(n);
                Ok(Some(event))
            }
        }
    }

    /// After the pull: a zero-amount revision for each line of a revised day that the
    /// pull no longer brought, then the day summaries (`summary: true`).
    pub fn vanished(
        &mut self,
        time: &str,
        out: &mut dyn FnMut(Event) -> Result<(), String>,
    ) -> Result<(), String> {
        let dir = self.dir.clone();
        for day in self.days.clone() {
            let Some(dir) = &dir else { break };
            // A day that came back final makes its vanished lines final too.
            let now = self.now_estimated.get(&day).copied();
            each_stored(dir, day, &mut |s| {
                let estimated = now.unwrap_or(s.e);
                if s.d.lines.is_some() {
                    return Ok(()); // the day's last summary, not a line
                }
                let Some(index) = &mut self.index else {
                    return Ok(());
                };
                match index.vanished(&s.d)? {
                    Vanished::Seen => Ok(()),
                    Vanished::Keep(r) => self.record((&s.d, &s.x), r, estimated),
                    Vanished::Revise(n) => {
                        if let Some(t) = &mut self.totals {
                            t.vanished(&s.d.date, estimated);
                        }
                        let data = crate::revise::zeroed(&s.d);
                        self.record((&data, &s.x), n, estimated)?;
                        out(revision_event(data, s.x, estimated, n, time))
                    }
                }
            })?;
        }
        self.summaries(time, out)
    }

    /// One summary per day of the pull whose lines go out: a first one for a new day,
    /// the next revision of it for a revised day where something changed.
    fn summaries(
        &mut self,
        time: &str,
        out: &mut dyn FnMut(Event) -> Result<(), String>,
    ) -> Result<(), String> {
        let Some(totals) = self.totals.take() else {
            return Ok(());
        };
        let none = BTreeMap::new();
        for (date, day) in &totals.days {
            let Some(d) = parse_date(date) else { continue };
            let revised = self.days.contains(&d);
            let last = self.summary_rev.get(&d).copied();
            let data = crate::summary::data(date, day);
            let revision = match (revised, day.changed) {
                // Forced and unchanged: sent again as it was last delivered (the same id).
                (true, false) if self.resend.contains(&d) => last,
                (true, false) => {
                    // Nothing changed: the last summary stands and is kept as it was.
                    if let Some(r) = last {
                        self.record((&data, &none), r, day.estimated)?;
                    }
                    continue;
                }
                (true, true) => last.map(|r| r + 1),
                (false, _) => None,
            };
            if revised || (day.estimated && self.keep_days > 0) {
                self.record((&data, &none), revision.unwrap_or(0), day.estimated)?;
            }
            out(crate::summary::event(data, revision, time.to_string()))?;
        }
        Ok(())
    }

    fn record(
        &mut self,
        (data, routing): (&Data, &BTreeMap<String, serde_json::Value>),
        revision: u32,
        estimated: bool,
    ) -> Result<(), String> {
        if self.writer.is_none() {
            return Ok(());
        }
        let data = serde_json::value::to_raw_value(data).expect("plain strings always serialize");
        self.record_raw((&data, routing), revision, estimated)
    }

    fn record_raw(
        &mut self,
        line: (&RawValue, &BTreeMap<String, serde_json::Value>),
        revision: u32,
        estimated: bool,
    ) -> Result<(), String> {
        match &mut self.writer {
            Some(w) => w.record(line, revision, estimated),
            None => Ok(()),
        }
    }

    /// The snapshot for the batch, flushed, to hand to `State::commit`.
    pub fn into_writer(mut self) -> Result<Option<Writer>, String> {
        if let Some(w) = &mut self.writer
            && let Some(f) = &mut w.file
        {
            f.flush()
                .and_then(|_| f.get_ref().sync_all())
                .map_err(|e| write_error(&w.tmp, &e))?;
        }
        Ok(self.writer.take())
    }
}

fn revision_event(
    data: Data,
    mut extensions: BTreeMap<String, serde_json::Value>,
    estimated: bool,
    revision: u32,
    time: &str,
) -> Event {
    extensions.insert(ESTIMATED.into(), estimated.into());
    extensions.insert(REVISION.into(), revision.into());
    Event {
        specversion: "1.0".into(),
        // Set as it goes out (`Event::seal`), from its content.
        id: String::new(),
        source: crate::event::SOURCE.into(),
        kind: crate::event::TYPE.into(),
        datacontenttype: "application/json".into(),
        time: time.into(),
        extensions,
        data,
    }
}

/// Makes a batch's snapshot visible as `target`, before the batch is.
pub fn commit(writer: Option<Writer>, target: &Path) -> Result<(), String> {
    let Some(mut writer) = writer else {
        return Ok(());
    };
    writer.file = None;
    fs::rename(&writer.tmp, target).map_err(|e| {
        let _ = fs::remove_file(&writer.tmp);
        write_error(target, &e)
    })
}

/// A finished batch's snapshot replaces the day files it covers: a day whose lines are
/// estimated gets its new file; a day that is final no longer has one. Repeatable after
/// a crash: the batch and its snapshot are removed only afterwards.
pub fn promote(snapshot: &Path, state_dir: &Path) -> Result<(), String> {
    let file = match File::open(snapshot) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(write_error(snapshot, &e)),
    };
    let dir = revise_dir(state_dir);
    fs::create_dir_all(&dir).map_err(|e| write_error(&dir, &e))?;
    // Per day: its temporary file and whether any line is still estimated.
    let mut days: BTreeMap<Date, (PathBuf, BufWriter<File>, bool)> = BTreeMap::new();
    let result = (|| -> Result<(), String> {
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        loop {
            line.clear();
            if reader
                .read_line(&mut line)
                .map_err(|e| write_error(snapshot, &e))?
                == 0
            {
                break;
            }
            let line = line.trim_end_matches('\n');
            let Ok(stored) = serde_json::from_str::<DayOf>(line) else {
                continue;
            };
            let Some(day) = parse_date(&stored.d.date) else {
                continue;
            };
            let (tmp, w, estimated) = match days.entry(day) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    let tmp = day_file(state_dir, day).with_extension("jsonl.tmp");
                    let f = File::create(&tmp).map_err(|e| write_error(&tmp, &e))?;
                    v.insert((tmp, BufWriter::new(f), false))
                }
            };
            *estimated |= stored.e;
            w.write_all(line.as_bytes())
                .and_then(|_| w.write_all(b"\n"))
                .map_err(|e| write_error(tmp, &e))?;
        }
        for (day, (tmp, w, estimated)) in std::mem::take(&mut days) {
            let path = day_file(state_dir, day);
            if estimated {
                w.into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|f| f.sync_all())
                    .and_then(|_| fs::rename(&tmp, &path))
                    .map_err(|e| write_error(&path, &e))?;
            } else {
                drop(w);
                let _ = fs::remove_file(&tmp);
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(write_error(&path, &e));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    })();
    for (tmp, _, _) in days.into_values() {
        let _ = fs::remove_file(tmp);
    }
    result?;
    sync_dir(&dir);
    fs::remove_file(snapshot).map_err(|e| write_error(snapshot, &e))
}

/// Delivered days with estimated numbers inside the last `days` days up to `last` (for `revise`).
pub fn revisable(state_dir: &Path, last: Date, days: u32) -> BTreeSet<Date> {
    let oldest = window_start(last, days);
    snapshot_days(state_dir)
        .into_iter()
        .filter(|d| *d >= oldest && *d <= last)
        .collect()
}

/// Days of [`revisable`] of which at least one line went out as a revision (for `status`):
/// reads the day files a line at a time, writes nothing and takes no lock.
pub fn revised(state_dir: &Path, last: Date, days: u32) -> BTreeSet<Date> {
    #[derive(Deserialize)]
    struct Revision {
        r: u32,
    }
    let any_revision = |day: Date| {
        let Ok(file) = File::open(day_file(state_dir, day)) else {
            return false;
        };
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .any(|l| serde_json::from_str::<Revision>(&l).is_ok_and(|s| s.r > 0))
    };
    match days {
        0 => BTreeSet::new(),
        _ => revisable(state_dir, last, days)
            .into_iter()
            .filter(|d| any_revision(*d))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Line;

    fn event(date: &str, service: &str, amount: &str, estimated: bool) -> Event {
        let mut line = Line::service(date, service, "BlendedCost", amount, "USD");
        line.estimated = estimated;
        Event::sealed(line, "2026-11-25T02:00:00Z")
    }

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "snapshot-{}-{}",
            std::process::id(),
            getrandom::u64().unwrap()
        ));
        fs::create_dir_all(d.join("spool")).unwrap();
        d
    }

    fn date(s: &str) -> Date {
        parse_date(s).unwrap()
    }

    /// One pull of `first..=last` through a Round, committed and promoted as a finished batch.
    fn pull(
        dir: &Path,
        first: &str,
        last: &str,
        lines: &[Event],
        delivered: &[&str],
    ) -> Vec<Event> {
        pull_with(dir, (first, last), lines, delivered, false)
    }

    /// `pull`, with day summaries when `summary`.
    fn pull_with(
        dir: &Path,
        (first, last): (&str, &str),
        lines: &[Event],
        delivered: &[&str],
        summary: bool,
    ) -> Vec<Event> {
        let delivered: Vec<Date> = delivered.iter().map(|d| date(d)).collect();
        let mut round = Round::start(
            Some(dir),
            3,
            Some(3),
            (date(first), date(last)),
            &|d| delivered.contains(&d),
            true,
        )
        .unwrap()
        .with_summary(summary);
        let name = format!("{}_{last}", format_date(round.first));
        round
            .record_to(dir.join("spool").join(format!("{name}.revise.tmp")))
            .unwrap();
        let mut out = Vec::new();
        for e in lines {
            let is_delivered = delivered.contains(&date(&e.data.date));
            out.extend(round.judge(e.clone(), is_delivered).unwrap());
        }
        round
            .vanished("t", &mut |e| {
                out.push(e);
                Ok(())
            })
            .unwrap();
        let snapshot = dir.join("spool").join(format!("{name}.revise"));
        commit(round.into_writer().unwrap(), &snapshot).unwrap();
        promote(&snapshot, dir).unwrap();
        out
    }

    fn summary(events: &[Event]) -> Vec<(String, String, String, Option<u32>)> {
        events
            .iter()
            .map(|e| {
                (
                    e.data.date.clone(),
                    e.data.service.clone().unwrap_or_default(),
                    e.data.amount.clone(),
                    e.revision(),
                )
            })
            .collect()
    }

    #[test]
    fn estimated_days_are_revised_until_final_then_forgotten() {
        let d = dir();
        let first = pull(
            &d,
            "2026-11-20",
            "2026-11-20",
            &[
                event("2026-11-20", "EC2", "1", true),
                event("2026-11-20", "S3", "2", true),
            ],
            &[],
        );
        assert_eq!(
            first.iter().map(|e| e.revision()).collect::<Vec<_>>(),
            [None, None]
        );
        assert!(day_file(&d, date("2026-11-20")).exists());
        // Next day: EC2 changed, S3 gone, Lambda new; the new day is a first delivery.
        let next = pull(
            &d,
            "2026-11-21",
            "2026-11-21",
            &[
                event("2026-11-20", "EC2", "1.5", true),
                event("2026-11-20", "Lambda", "0.1", true),
                event("2026-11-21", "EC2", "3", false),
            ],
            &["2026-11-20"],
        );
        let mut got = summary(&next);
        got.sort();
        assert_eq!(
            got,
            [
                ("2026-11-20".into(), "EC2".into(), "1.5".into(), Some(1)),
                ("2026-11-20".into(), "Lambda".into(), "0.1".into(), Some(1)),
                ("2026-11-20".into(), "S3".into(), "0".into(), Some(1)),
                ("2026-11-21".into(), "EC2".into(), "3".into(), None),
            ]
        );
        // 2026-11-21 was final when delivered: it is never revised, so it has no file.
        assert!(!day_file(&d, date("2026-11-21")).exists());
        // Unchanged, except EC2 again; S3 stays gone (no second zero), and now the day is final.
        let third = pull(
            &d,
            "2026-11-22",
            "2026-11-22",
            &[
                event("2026-11-20", "EC2", "1.75", false),
                event("2026-11-20", "Lambda", "0.1", false),
            ],
            &["2026-11-20", "2026-11-21"],
        );
        assert_eq!(
            summary(&third),
            [("2026-11-20".into(), "EC2".into(), "1.75".into(), Some(2))]
        );
        assert!(
            !day_file(&d, date("2026-11-20")).exists(),
            "a final day stops being revised"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_forced_day_resends_what_is_unchanged_as_it_was_so_with_the_same_ids() {
        let d = dir();
        let sealed = |events: Vec<Event>| -> Vec<(String, Option<u32>, String)> {
            let mut out: Vec<_> = events
                .into_iter()
                .map(|mut e| {
                    let service = crate::breakdown::GroupBy::Dimension("SERVICE");
                    e.seal(&e.raw_data(), &[service], None);
                    let what = e.data.service.clone().unwrap_or(e.kind.clone());
                    (what, e.revision(), e.id)
                })
                .collect();
            out.sort();
            out
        };
        let day = "2026-11-20";
        let lines = [event(day, "EC2", "1", true), event(day, "S3", "2", true)];
        let first = sealed(pull_with(&d, (day, day), &lines, &[], true));
        let revised_lines = [event(day, "EC2", "1.5", true), event(day, "S3", "2", true)];
        let revised = sealed(pull_with(
            &d,
            ("2026-11-21", "2026-11-21"),
            &revised_lines,
            &[day],
            true,
        ));
        // Forced (the day not delivered), nothing changed since the revision round.
        let forced = sealed(pull_with(&d, (day, day), &revised_lines, &[], true));
        let ec2 = |list: &[(String, Option<u32>, String)]| {
            list.iter().find(|(s, _, _)| s == "EC2").cloned().unwrap()
        };
        assert_eq!(ec2(&forced), ec2(&revised), "revision 1 again, with its id");
        let s3 = |list: &[(String, Option<u32>, String)]| {
            list.iter().find(|(s, _, _)| s == "S3").cloned().unwrap()
        };
        assert_eq!(
            s3(&forced),
            s3(&first),
            "the first delivery again, with its id"
        );
        let summary = |list: &[(String, Option<u32>, String)]| {
            list.iter()
                .find(|(s, _, _)| s == crate::summary::TYPE)
                .cloned()
                .unwrap()
        };
        assert_eq!(summary(&forced).1, Some(1));
        assert_eq!(summary(&forced), summary(&revised), "the day's summary too");
        assert_eq!(forced.len(), 3, "{forced:?}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn days_older_than_the_window_are_dropped_and_not_revised() {
        let d = dir();
        pull(
            &d,
            "2026-11-10",
            "2026-11-10",
            &[event("2026-11-10", "EC2", "1", true)],
            &[],
        );
        assert!(day_file(&d, date("2026-11-10")).exists());
        let later = pull(
            &d,
            "2026-11-20",
            "2026-11-20",
            &[event("2026-11-20", "EC2", "1", true)],
            &["2026-11-10"],
        );
        assert_eq!(
            summary(&later),
            [("2026-11-20".into(), "EC2".into(), "1".into(), None)]
        );
        assert!(!day_file(&d, date("2026-11-10")).exists());
        assert_eq!(snapshot_days(&d).len(), 1);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_uncommitted_snapshot_leaves_the_old_one_and_removes_its_file() {
        let d = dir();
        pull(
            &d,
            "2026-11-20",
            "2026-11-20",
            &[event("2026-11-20", "EC2", "1", true)],
            &[],
        );
        let before = fs::read(day_file(&d, date("2026-11-20"))).unwrap();
        {
            let mut round = Round::start(
                Some(&d),
                3,
                Some(3),
                (date("2026-11-21"), date("2026-11-21")),
                &|d| d == date("2026-11-20"),
                true,
            )
            .unwrap();
            let tmp = d.join("spool").join("2026-11-20_2026-11-21.revise.tmp");
            round.record_to(tmp.clone()).unwrap();
            assert!(tmp.exists());
            assert_eq!(round.first, date("2026-11-20"));
            let sent = round
                .judge(event("2026-11-20", "EC2", "2", true), true)
                .unwrap();
            assert_eq!(sent.and_then(|e| e.revision()), Some(1));
            // Dropped here, as a failed pull drops it.
        }
        assert_eq!(fs::read(day_file(&d, date("2026-11-20"))).unwrap(), before);
        assert!(fs::read_dir(d.join("spool")).unwrap().next().is_none());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn preview_slots_stay_out_of_state_dir_small_or_large() {
        let nowhere = Path::new("/nonexistent/state");
        assert!(
            FileSlots::new(nowhere, 16, true).is_err(),
            "recording uses state_dir"
        );
        for capacity in [16, PREVIEW_MEMORY / SLOT * 2] {
            let mut slots = FileSlots::new(nowhere, capacity, false).unwrap();
            assert_eq!(
                matches!(slots, FileSlots::Memory(_)),
                capacity == 16,
                "small in memory, large in a temporary file"
            );
            slots.set(capacity - 1, [7; SLOT]).unwrap();
            assert_eq!(slots.get(capacity - 1).unwrap(), [7; SLOT]);
            assert_eq!(slots.get(0).unwrap(), [0; SLOT]);
        }
    }
}
