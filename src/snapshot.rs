//! What was last delivered per line of the revise window, kept crash-safe in state_dir/revise/.
//!
//! `revise/<date>.jsonl` holds one line per billing line of a delivered day whose numbers
//! were estimated: `{"r":<revision>,"e":<estimated>,"d":<event data>}`, after a header line
//! with their count and sum (files.rs), as does a batch's snapshot. Only days inside
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
//!
//! A damaged day file is found when state_dir is locked (`check_days`): the state records its
//! day to be pulled again, then `repair_day` keeps it aside and puts back its readable lines,
//! so that the day's lines that vanished still get their zero; the pull goes out as revisions
//! above the highest sent before (sent.json, state.rs), and its new snapshot replaces the file.

use crate::event::{Data, ESTIMATED, Event, REVISION};
use crate::files::{
    Checked, Line, Lines, Sum, header, keep_aside_and_replace, read_checked, read_error, sync_dir,
    write_error,
};
use crate::revise::{Index, SLOT, Slots, Vanished, Verdict, capacity_for, window_start};
use crate::schedule::{format_date, parse_date};
use crate::summary::Totals;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
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

/// Of a stored line, only what `promote` sorts it by and what `status` and a rebuilt
/// sent.json read (the rest is skipped, not built).
#[derive(Deserialize)]
struct DayOf<'a> {
    r: u32,
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
    lines: usize,
    sum: Sum,
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
        self.lines += 1;
        self.sum.add(&text[..text.len() - 1]);
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
    /// Days with a snapshot pulled as undelivered (`once --force`), and days to pull again
    /// after damage: every line goes out again, an unchanged one of a forced day as the
    /// revision it was last delivered as (so with the same id), a changed one as its next
    /// revision, and every line of a damaged day above what may have been sent for it.
    resend: BTreeSet<Date>,
    /// Days to pull again after damage, with the highest revision that may have been sent
    /// for them: every event of theirs goes out above it.
    floors: BTreeMap<Date, u32>,
    /// Per day, the highest revision this round sends (0: first deliveries only).
    sent: BTreeMap<Date, u32>,
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

/// What a pull asks of its round (see `Round::start`).
pub struct Plan<'a> {
    pub revise_days: u32,
    /// Delivered days this many days before the last one are revised (None: none).
    pub window: Option<u32>,
    pub days: (Date, Date),
    pub delivered: &'a dyn Fn(Date) -> bool,
    /// Days whose record of what was sent was damaged: pulled again, every line above `sent`.
    pub again: &'a dyn Fn(Date) -> bool,
    /// The highest revision that may have been sent for a day (sent.json), if known.
    pub sent: &'a dyn Fn(Date) -> Option<u32>,
    /// Write the batch's snapshot and drop day files older than the window.
    pub record: bool,
}

/// A stored line's `T`: read as text (one parser per type in the binary; bytes that are not
/// UTF-8 are no line).
fn parse<'a, T: Deserialize<'a>>(line: &'a [u8]) -> Option<T> {
    serde_json::from_str(std::str::from_utf8(line).ok()?).ok()
}

/// A stored line as written (`Stored`, data not built): for checking an earlier version's files.
pub fn is_stored(line: &[u8]) -> bool {
    parse::<Stored>(line).is_some()
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

/// Lines of a day file: the count its header names (it was checked when state_dir was
/// locked), or, without a header, its lines.
fn day_lines(path: &Path) -> usize {
    let Ok(file) = File::open(path) else { return 0 };
    let mut lines = Lines::new(BufReader::new(file));
    if let Ok(Some(Line::Whole(first))) = lines.next()
        && let Some(n) = header_lines(first)
    {
        return n;
    }
    let mut count = 1;
    while let Ok(Some(_)) = lines.next() {
        count += 1;
    }
    count
}

/// The line count of a header line, or None when `line` is not one.
fn header_lines(line: &[u8]) -> Option<usize> {
    crate::files::parse_header(line).map(|(lines, _)| lines)
}

/// Calls `f` for each stored line of `day` (none when the day has no snapshot), at most as
/// many as its header names. A line that is not one is left out with a warning naming the
/// file (the file was checked when state_dir was locked; a preview reads it unchecked).
fn each_stored(
    state_dir: &Path,
    day: Date,
    f: &mut dyn FnMut(Stored) -> Result<(), String>,
) -> Result<(), String> {
    let path = day_file(state_dir, day);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(read_error(&path, &e)),
    };
    let mut lines = Lines::new(BufReader::new(file));
    let mut limit = usize::MAX;
    for n in 0.. {
        let line = match lines.next().map_err(|e| read_error(&path, &e))? {
            None => break,
            _ if limit == 0 => break,
            Some(Line::Whole(l) | Line::Torn(l)) => l,
            Some(Line::Long) => &[],
        };
        if n == 0
            && let Some(count) = header_lines(line)
        {
            limit = count;
            continue;
        }
        limit -= 1;
        match parse::<Stored>(line) {
            Some(s) => f(s)?,
            // A damaged line cannot be compared: that line is treated as new if it shows up.
            None => crate::warn!(
                "{} line {}: not a snapshot line; ignored",
                path.display(),
                n + 1
            ),
        }
    }
    Ok(())
}

impl Round {
    /// Plans a pull of `plan.days`: with `window` (days), the delivered days from `window`
    /// days before the last one up to it whose last numbers were estimated are pulled again
    /// too. A day of the range that is not `delivered` (a forced re-pull) but has a snapshot
    /// continues its numbering: each line goes out as its next revision; a day to pull `again`
    /// goes out whole as revisions above what may have been sent for it. With `record`, the
    /// batch's snapshot is written and day files older than `revise_days` before the last day
    /// are dropped; without a state_dir nothing is revised or recorded.
    pub fn start(dir: Option<&Path>, plan: &Plan) -> Result<Round, String> {
        let (first, last) = plan.days;
        let mut round = Round {
            dir: dir.map(Path::to_path_buf),
            days: BTreeSet::new(),
            resend: BTreeSet::new(),
            floors: BTreeMap::new(),
            sent: BTreeMap::new(),
            index: None,
            keep_days: plan.revise_days,
            writer: None,
            now_estimated: BTreeMap::new(),
            totals: None,
            summary_rev: BTreeMap::new(),
            first,
        };
        let Some(dir) = dir else {
            return Ok(round);
        };
        let oldest = window_start(last, plan.revise_days);
        let revise_from = plan.window.map(|w| window_start(last, w));
        for day in snapshot_days(dir) {
            if day < oldest || plan.revise_days == 0 {
                if plan.record {
                    let _ = fs::remove_file(day_file(dir, day));
                }
            } else if day >= first && day <= last && !(plan.delivered)(day) {
                round.days.insert(day);
                round.resend.insert(day);
            } else if revise_from.is_some_and(|f| day >= f) && day <= last && (plan.delivered)(day)
            {
                round.days.insert(day);
            }
        }
        let mut day = first;
        while day <= last {
            if (plan.again)(day) {
                round.days.insert(day);
                round.resend.insert(day);
                round.floors.insert(day, (plan.sent)(day).unwrap_or(0));
            }
            match day.next_day() {
                Some(next) => day = next,
                None => break,
            }
        }
        // Counted first: the table is made once, at its final size.
        let lines: usize = round
            .days
            .iter()
            .map(|d| day_lines(&day_file(dir, *d)))
            .sum();
        let mut index = match round.days.is_empty() {
            true => None,
            false => Some(Index::new(
                FileSlots::new(dir, capacity_for(lines), plan.record)?,
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

    /// Per day, the highest revision this round sends (0: first deliveries only), for the
    /// batch to record; taken once the round is over.
    pub fn take_sent(&mut self) -> BTreeMap<Date, u32> {
        std::mem::take(&mut self.sent)
    }

    /// Notes that an event of `day` goes out as `revision` (0: a first delivery).
    fn note(&mut self, day: Option<Date>, revision: u32) {
        if let Some(day) = day
            && self.sent.get(&day).is_none_or(|m| *m < revision)
        {
            self.sent.insert(day, revision);
        }
    }

    /// Writes the batch's snapshot to `tmp` (the spool names it) as lines are judged.
    pub fn record_to(&mut self, tmp: PathBuf) -> Result<(), String> {
        let mut file = File::create(&tmp)
            .map(BufWriter::new)
            .map_err(|e| write_error(&tmp, &e))?;
        // Filled in by `into_writer`, once the lines are known.
        file.write_all(&header(0, 0))
            .map_err(|e| write_error(&tmp, &e))?;
        self.writer = Some(Writer {
            tmp,
            file: Some(file),
            lines: 0,
            sum: Sum::default(),
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
            self.note(day, 0);
            return Ok(Some(event));
        }
        let verdict = match &mut self.index {
            Some(index) => index.judge(&event.data)?,
            None => Verdict::Revise(1),
        };
        let resend = day.is_some_and(|d| self.resend.contains(&d));
        // After damage what was sent is not known: every line goes out above the mark.
        let floor = day.and_then(|d| self.floors.get(&d)).copied();
        let verdict = match (verdict, floor) {
            (Verdict::Unchanged(r), Some(f)) => Verdict::Revise((r + 1).max(f + 1)),
            (Verdict::Revise(n), Some(f)) => Verdict::Revise(n.max(f + 1)),
            (v, _) => v,
        };
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
                self.note(day, n);
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
            // A day pulled again after damage: its zero goes out above anything sent, even
            // for a line last recorded as zero (the lost record may have sent it otherwise).
            let floor = self.floors.get(&day).copied();
            each_stored(dir, day, &mut |s| {
                let estimated = now.unwrap_or(s.e);
                if s.d.lines.is_some() {
                    return Ok(()); // the day's last summary, not a line
                }
                let Some(index) = &mut self.index else {
                    return Ok(());
                };
                let n = match (index.vanished(&s.d)?, floor) {
                    (Vanished::Seen, _) => return Ok(()),
                    (Vanished::Keep(r), None) => return self.record((&s.d, &s.x), r, estimated),
                    (Vanished::Keep(r), Some(f)) => (r + 1).max(f + 1),
                    (Vanished::Revise(n), f) => f.map_or(n, |f| n.max(f + 1)),
                };
                if let Some(t) = &mut self.totals {
                    t.vanished(&s.d.date, estimated);
                }
                let data = crate::revise::zeroed(&s.d);
                self.record((&data, &s.x), n, estimated)?;
                self.note(Some(day), n);
                out(revision_event(data, s.x, estimated, n, time))
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
            let revision = match self.floors.get(&d) {
                Some(f) => Some(revision.unwrap_or(1).max(f + 1)),
                None => revision,
            };
            if revised || (day.estimated && self.keep_days > 0) {
                self.record((&data, &none), revision.unwrap_or(0), day.estimated)?;
            }
            self.note(Some(d), revision.unwrap_or(0));
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

    /// The snapshot for the batch, its header filled in and flushed, to hand to `State::commit`.
    pub fn into_writer(mut self) -> Result<Option<Writer>, String> {
        use std::os::unix::fs::FileExt;
        if let Some(w) = &mut self.writer
            && let Some(f) = &mut w.file
        {
            let head = header(w.lines, w.sum.value());
            f.flush()
                .and_then(|_| f.get_ref().write_all_at(&head, 0))
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
/// a crash: the batch and its snapshot are removed only afterwards. The snapshot is checked
/// as it is read: Ok(Some(what is wrong)) when it is damaged, and then no day file changes.
pub fn promote(snapshot: &Path, state_dir: &Path) -> Result<Option<String>, String> {
    if !snapshot.exists() {
        return Ok(None);
    }
    let dir = revise_dir(state_dir);
    fs::create_dir_all(&dir).map_err(|e| write_error(&dir, &e))?;
    // Per day: its temporary file, its lines and their sum, and whether any is still estimated.
    let mut days: BTreeMap<Date, DayWriter> = BTreeMap::new();
    let mut failed = None;
    let checked = read_checked(snapshot, &|l| is_stored(l), &mut |line, hash| {
        if failed.is_some() {
            return;
        }
        if let Err(e) = route(line, hash, state_dir, &mut days) {
            failed = Some(e);
        }
    });
    let result = (|| -> Result<Option<String>, String> {
        if let Some(e) = failed {
            return Err(e);
        }
        match checked? {
            None => return Ok(None),
            Some(Checked::Damaged(problem)) => return Ok(Some(problem)),
            Some(Checked::Whole { .. }) => {}
        }
        for (day, w) in std::mem::take(&mut days) {
            let path = day_file(state_dir, day);
            if w.estimated {
                let head = header(w.lines, w.sum.value());
                w.file
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|f| {
                        use std::os::unix::fs::FileExt;
                        f.write_all_at(&head, 0)?;
                        f.sync_all()
                    })
                    .and_then(|_| fs::rename(&w.tmp, &path))
                    .map_err(|e| write_error(&path, &e))?;
            } else {
                drop(w.file);
                let _ = fs::remove_file(&w.tmp);
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(write_error(&path, &e));
                    }
                    _ => {}
                }
            }
        }
        Ok(None)
    })();
    for w in days.into_values() {
        let _ = fs::remove_file(w.tmp);
    }
    if let Ok(None) = result {
        sync_dir(&dir);
        fs::remove_file(snapshot).map_err(|e| write_error(snapshot, &e))?;
    }
    result
}

/// A day file being written by `promote`.
struct DayWriter {
    tmp: PathBuf,
    file: BufWriter<File>,
    lines: usize,
    sum: Sum,
    estimated: bool,
}

/// Appends a line of a batch's snapshot (whose `hash` is known) to the new file of its day.
fn route(
    line: &[u8],
    hash: u64,
    state_dir: &Path,
    days: &mut BTreeMap<Date, DayWriter>,
) -> Result<(), String> {
    let Some((day, estimated)) =
        parse::<DayOf>(line).and_then(|s| Some((parse_date(&s.d.date)?, s.e)))
    else {
        return Ok(());
    };
    let w = match days.entry(day) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(v) => {
            let tmp = day_file(state_dir, day).with_extension("jsonl.tmp");
            let mut file = File::create(&tmp)
                .map(BufWriter::new)
                .map_err(|e| write_error(&tmp, &e))?;
            file.write_all(&header(0, 0))
                .map_err(|e| write_error(&tmp, &e))?;
            v.insert(DayWriter {
                tmp,
                file,
                lines: 0,
                sum: Sum::default(),
                estimated: false,
            })
        }
    };
    w.estimated |= estimated;
    w.lines += 1;
    w.sum.add_hash(hash);
    w.file
        .write_all(line)
        .and_then(|_| w.file.write_all(b"\n"))
        .map_err(|e| write_error(&w.tmp, &e))
}

/// A day file found damaged (`check_days`).
#[derive(Debug, Clone)]
pub struct DamagedDay {
    pub day: Date,
    pub file: PathBuf,
    pub problem: String,
}

/// Checks every day file in revise/: each must be whole. With `fix`, bytes appended after a
/// whole file are cut off (the file kept aside, one error line); without, they go to `found`.
/// Returns the damaged day files, for the state to record their days to pull again before
/// `repair_day` sets them aside.
pub fn check_days(
    state_dir: &Path,
    fix: bool,
    found: &mut dyn FnMut(PathBuf, String),
) -> Result<Vec<DamagedDay>, String> {
    let mut damaged = Vec::new();
    for day in snapshot_days(state_dir) {
        let path = day_file(state_dir, day);
        match read_checked(&path, &|l| is_stored(l), &mut |_, _| ())? {
            Some(Checked::Damaged(problem)) => damaged.push(DamagedDay {
                day,
                file: path,
                problem,
            }),
            Some(Checked::Whole {
                lines,
                extra: Some(end),
                ..
            }) => {
                let len = fs::metadata(&path)
                    .map_err(|e| read_error(&path, &e))?
                    .len();
                let problem = format!(
                    "{} byte(s) follow its last line and are not part of it",
                    len.saturating_sub(end)
                );
                if !fix {
                    found(path, problem);
                    continue;
                }
                let mut good = fs::read(&path).map_err(|e| read_error(&path, &e))?;
                good.truncate(end as usize);
                let aside = keep_aside_and_replace(&path, &good)?;
                crate::error!(
                    "{}: {problem}; kept the file as {}: its {lines} line(s) are whole and stay in use",
                    path.display(),
                    aside.display()
                );
            }
            _ => {}
        }
    }
    Ok(damaged)
}

/// Sets a damaged day file aside once its day is recorded to be pulled again: the file is
/// kept under its aside name and its readable lines put back (with a header), so that lines
/// which vanished since still get their zero; one error line says so.
pub fn repair_day(d: &DamagedDay) -> Result<(), String> {
    let file = File::open(&d.file).map_err(|e| read_error(&d.file, &e))?;
    let (mut good, mut lines, mut sum) = (Vec::new(), 0, Sum::default());
    let mut reader = Lines::new(BufReader::new(file));
    while let Some(line) = reader.next().map_err(|e| read_error(&d.file, &e))? {
        if let Line::Whole(line) = line
            && header_lines(line).is_none()
            && is_stored(line)
        {
            good.extend_from_slice(line);
            good.push(b'\n');
            lines += 1;
            sum.add(line);
        }
    }
    let mut text = header(lines, sum.value());
    text.extend(good);
    let aside = keep_aside_and_replace(&d.file, &text)?;
    crate::error!(
        "{}: {}; kept the file as {} and its {lines} readable line(s) in place: {} is pulled again and every line goes out as a revision above any sent before",
        d.file.display(),
        d.problem,
        aside.display(),
        format_date(d.day)
    );
    Ok(())
}

/// Per day, the highest revision the stored lines of a day file or a batch's snapshot at
/// `path` name (their readable lines; none when there is no file): what sent.json is
/// rebuilt from when it is lost.
pub fn max_revisions(path: &Path) -> BTreeMap<Date, u32> {
    let mut max = BTreeMap::new();
    let Ok(file) = File::open(path) else {
        return max;
    };
    let mut lines = Lines::new(BufReader::new(file));
    while let Ok(Some(line)) = lines.next() {
        let (Line::Whole(line) | Line::Torn(line)) = line else {
            continue;
        };
        if let Some(l) = parse::<DayOf>(line)
            && let Some(day) = parse_date(&l.d.date)
            && max.get(&day).is_none_or(|m| *m < l.r)
        {
            max.insert(day, l.r);
        }
    }
    max
}

/// The day files of revise/ (for rebuilding sent.json).
pub fn day_files(state_dir: &Path) -> Vec<PathBuf> {
    snapshot_days(state_dir)
        .into_iter()
        .map(|d| day_file(state_dir, d))
        .collect()
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
    let any_revision = |day: Date| {
        let Ok(file) = File::open(day_file(state_dir, day)) else {
            return false;
        };
        // Bytes, not text: a damaged file is `status`'s to report, not to stop at.
        let mut lines = Lines::new(BufReader::new(file));
        while let Ok(Some(line)) = lines.next() {
            if let Line::Whole(l) | Line::Torn(l) = line
                && parse::<DayOf>(l).is_some_and(|s| s.r > 0)
            {
                return true;
            }
        }
        false
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
        pull_again(dir, (first, last), lines, delivered, &[], false).0
    }

    /// `pull` with days to pull `again` after damage (with the revision marked sent for them)
    /// and day summaries when `summary`; also returns what the round marks sent per day.
    fn pull_again(
        dir: &Path,
        (first, last): (&str, &str),
        lines: &[Event],
        delivered: &[&str],
        again: &[(&str, u32)],
        summary: bool,
    ) -> (Vec<Event>, BTreeMap<Date, u32>) {
        let delivered: Vec<Date> = delivered.iter().map(|d| date(d)).collect();
        let again: BTreeMap<Date, u32> = again.iter().map(|(d, r)| (date(d), *r)).collect();
        let plan = Plan {
            revise_days: 3,
            window: Some(3),
            days: (date(first), date(last)),
            delivered: &|d| delivered.contains(&d),
            again: &|d| again.contains_key(&d),
            sent: &|d| again.get(&d).copied(),
            record: true,
        };
        let mut round = Round::start(Some(dir), &plan)
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
        let sent = round.take_sent();
        commit(round.into_writer().unwrap(), &snapshot).unwrap();
        assert_eq!(promote(&snapshot, dir).unwrap(), None);
        (out, sent)
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
        let first = sealed(pull_again(&d, (day, day), &lines, &[], &[], true).0);
        let revised_lines = [event(day, "EC2", "1.5", true), event(day, "S3", "2", true)];
        let revised = sealed(
            pull_again(
                &d,
                ("2026-11-21", "2026-11-21"),
                &revised_lines,
                &[day],
                &[],
                true,
            )
            .0,
        );
        // Forced (the day not delivered), nothing changed since the revision round.
        let forced = sealed(pull_again(&d, (day, day), &revised_lines, &[], &[], true).0);
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
            let plan = Plan {
                revise_days: 3,
                window: Some(3),
                days: (date("2026-11-21"), date("2026-11-21")),
                delivered: &|d| d == date("2026-11-20"),
                again: &|_| false,
                sent: &|_| None,
                record: true,
            };
            let mut round = Round::start(Some(&d), &plan).unwrap();
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

    fn day_text(d: &Path, day: &str) -> String {
        fs::read_to_string(day_file(d, date(day))).unwrap()
    }

    #[test]
    fn day_files_have_a_header_and_a_round_marks_the_highest_revision_it_sends() {
        let d = dir();
        let (_, sent) = pull_again(
            &d,
            ("2026-11-20", "2026-11-20"),
            &[
                event("2026-11-20", "EC2", "1", true),
                event("2026-11-20", "S3", "2", true),
            ],
            &[],
            &[],
            false,
        );
        assert_eq!(sent, BTreeMap::from([(date("2026-11-20"), 0)]));
        let text = day_text(&d, "2026-11-20");
        assert!(text.starts_with("{\"lines\":2,\"sum\":\""), "{text}");
        assert_eq!(
            check_days(&d, false, &mut |p, w| panic!("{p:?}: {w}"))
                .unwrap()
                .len(),
            0
        );
        let (_, sent) = pull_again(
            &d,
            ("2026-11-21", "2026-11-21"),
            &[
                event("2026-11-20", "EC2", "1.5", true),
                event("2026-11-21", "EC2", "3", false),
            ],
            &["2026-11-20"],
            &[],
            false,
        );
        assert_eq!(
            sent,
            BTreeMap::from([(date("2026-11-20"), 1), (date("2026-11-21"), 0)])
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_day_pulled_again_goes_out_whole_above_the_mark_and_its_vanished_lines_get_their_zero() {
        let d = dir();
        pull(
            &d,
            "2026-11-20",
            "2026-11-20",
            &[
                event("2026-11-20", "EC2", "1", true),
                event("2026-11-20", "S3", "2", true),
                event("2026-11-20", "Zero", "0", true),
            ],
            &[],
        );
        // The record says revision 0 everywhere; a lost batch may have sent up to 4.
        let (out, sent) = pull_again(
            &d,
            ("2026-11-20", "2026-11-20"),
            &[event("2026-11-20", "EC2", "1", true)],
            &[],
            &[("2026-11-20", 4)],
            false,
        );
        let mut got = summary(&out);
        got.sort();
        assert_eq!(
            got,
            [
                ("2026-11-20".into(), "EC2".into(), "1".into(), Some(5)),
                ("2026-11-20".into(), "S3".into(), "0".into(), Some(5)),
                ("2026-11-20".into(), "Zero".into(), "0".into(), Some(5)),
            ]
        );
        assert_eq!(sent, BTreeMap::from([(date("2026-11-20"), 5)]));
        // A day pulled again with no record at all: every line above the mark.
        let (out, _) = pull_again(
            &d,
            ("2026-11-22", "2026-11-22"),
            &[event("2026-11-22", "EC2", "7", false)],
            &[],
            &[("2026-11-22", 0)],
            false,
        );
        assert_eq!(
            summary(&out),
            [("2026-11-22".into(), "EC2".into(), "7".into(), Some(1))]
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_damaged_day_file_is_found_and_repaired_with_its_readable_lines() {
        let d = dir();
        pull(
            &d,
            "2026-11-20",
            "2026-11-20",
            &[
                event("2026-11-20", "EC2", "1", true),
                event("2026-11-20", "S3", "2", true),
            ],
            &[],
        );
        let path = day_file(&d, date("2026-11-20"));
        let good = fs::read(&path).unwrap();
        // Appended bytes: cut off, the whole part stays.
        let mut more = good.clone();
        more.extend_from_slice(b"\0\0\0");
        fs::write(&path, &more).unwrap();
        let mut found = Vec::new();
        assert!(
            check_days(&d, false, &mut |p, w| found.push((p, w)))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            found,
            [(
                path.clone(),
                "3 byte(s) follow its last line and are not part of it".to_string()
            )]
        );
        assert!(check_days(&d, true, &mut |_, _| ()).unwrap().is_empty());
        assert_eq!(fs::read(&path).unwrap(), good);
        // A line cut in the middle: damaged; the readable line is put back under a new header.
        let cut = &good[..good.len() - 20];
        fs::write(&path, cut).unwrap();
        let damaged = check_days(&d, true, &mut |_, _| ()).unwrap();
        assert_eq!(damaged.len(), 1);
        assert_eq!(
            damaged[0].problem,
            "holds 1 of the 2 lines its header names (its last line is cut short)"
        );
        repair_day(&damaged[0]).unwrap();
        assert!(
            check_days(&d, false, &mut |p, w| panic!("{p:?}: {w}"))
                .unwrap()
                .is_empty()
        );
        let text = day_text(&d, "2026-11-20");
        assert!(text.starts_with("{\"lines\":1,"), "{text}");
        assert!(text.contains("EC2") && !text.contains("S3"), "{text}");
        let aside: Vec<_> = fs::read_dir(revise_dir(&d))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
            .collect();
        assert_eq!(aside.len(), 2);
        // Not UTF-8, emptied, zero-filled: damaged, never read as "nothing there".
        for bad in [vec![0xff; 40], Vec::new(), vec![0; good.len()]] {
            fs::write(&path, &bad).unwrap();
            assert_eq!(
                check_days(&d, false, &mut |_, _| ()).unwrap().len(),
                1,
                "{bad:?}"
            );
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_damaged_batch_snapshot_is_not_promoted_and_a_file_of_an_earlier_version_is() {
        let d = dir();
        pull(
            &d,
            "2026-11-20",
            "2026-11-20",
            &[event("2026-11-20", "EC2", "1", true)],
            &[],
        );
        let before = fs::read(day_file(&d, date("2026-11-20"))).unwrap();
        let snapshot = d.join("spool").join("2026-11-20_2026-11-20.revise");
        let line = String::from_utf8(before[crate::files::HEADER_BYTES..].to_vec()).unwrap();
        let changed = line.replace("\"r\":0", "\"r\":7");
        let mut one = Sum::default();
        one.add(line.trim_end().as_bytes());
        let mut text = header(1, one.value());
        text.extend_from_slice(changed.as_bytes());
        fs::write(&snapshot, &text).unwrap();
        assert_eq!(
            promote(&snapshot, &d).unwrap().as_deref(),
            Some("its lines do not match the checksum in its header")
        );
        assert_eq!(fs::read(day_file(&d, date("2026-11-20"))).unwrap(), before);
        assert!(snapshot.exists(), "left for the caller to set aside");
        // An earlier version's snapshot: no header, every line readable.
        fs::write(&snapshot, &changed).unwrap();
        assert_eq!(promote(&snapshot, &d).unwrap(), None);
        let promoted = day_text(&d, "2026-11-20");
        assert!(
            promoted.starts_with("{\"lines\":1,") && promoted.contains("\"r\":7"),
            "{promoted}"
        );
        assert_eq!(
            max_revisions(&day_file(&d, date("2026-11-20"))),
            BTreeMap::from([(date("2026-11-20"), 7)])
        );
        fs::remove_dir_all(&d).unwrap();
    }
}
