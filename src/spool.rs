//! The spool: pulled-but-undelivered events in crash-safe, checked files, their acknowledgements and the dead letters.
//!
//! `spool/<first>_<last>.jsonl`: a header line `{"lines":N,"sum":"…"}` (files.rs), then one
//! structured event per line; written as `.jsonl.tmp` and renamed into place only once the
//! whole pull is written. `spool/<first>_<last>.acked`: the events the target accepted or
//! rejected for good, one a line as `<number> <tag>`, the tag a hash of the number keyed by
//! the batch header's sum: a number out of range, garbled, added by hand or left by another
//! batch carries no right tag, and is damage. `dead-letter.jsonl`: events the target
//! rejected, with status and reason, one record a line (how many were written is kept in
//! delivered.json, state.rs).
//!
//! Opening a batch checks it, its acknowledgements and its revision snapshot (snapshot.rs).
//! Bytes appended after a whole file are cut off (the file kept aside); a damaged batch or
//! snapshot is reported to the caller, who records its days to be pulled again before the
//! spool sets the files aside (`set_aside`): a crash in between only finds the damage again.

use crate::event::Event;
use crate::files::{
    Checked, Line, Lines, MAX_LINE, Sum, header, keep_aside_and_replace, move_aside, open_regular,
    read_checked, read_error, read_regular, sync_dir, write_error,
};
use crate::schedule::{format_date, parse_date};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use time::Date;

/// The spool of a state_dir (None: memory only, nothing survives a restart).
pub struct Spool {
    /// state_dir: the spool is its `spool/`, the dead letters its `dead-letter.jsonl`.
    dir: Option<PathBuf>,
    /// Batches opened and checked by `sweep` and not handed out yet (memory-only mode: every
    /// unfinished batch).
    held: Vec<Batch>,
}

/// A spooled pull: its day range and where its events are.
pub struct Batch {
    pub first: Date,
    pub last: Date,
    events: Option<PathBuf>,
    /// Lines before the first event: 1 (the header), 0 in a file of an earlier version.
    skip: usize,
    /// What tags its acknowledgements: the header's sum (None: an earlier version's batch,
    /// whose log holds plain numbers).
    key: Option<u64>,
    memory: Vec<String>,
    acked: Vec<bool>,
    ack_log: Option<File>,
}

/// A pull being written to the spool, page by page.
pub struct SpoolWriter {
    first: Date,
    last: Date,
    tmp: Option<(PathBuf, BufWriter<File>)>,
    memory: Vec<String>,
    pub bytes: u64,
    /// Lines written so far, and their sum (the header's).
    lines: usize,
    sum: Sum,
    /// What the batch leaves as last delivered for the revise window (snapshot.rs).
    pub snapshot: Option<crate::snapshot::Writer>,
    /// Per day, the highest revision the batch sends (0: first deliveries only), recorded
    /// by the state before the batch becomes visible.
    pub sent: BTreeMap<Date, u32>,
}

/// What `sweep` found in the spool.
#[derive(Default)]
pub struct Swept {
    /// Batches with nothing pending (a crash between the last acknowledgement and `finish`).
    pub done: Vec<Batch>,
    /// Batches that cannot be delivered as they are: their days must be pulled again.
    pub damaged: Vec<Damaged>,
}

/// A batch, or its revision snapshot, found damaged: `file` is the damaged one.
#[derive(Debug, Clone)]
pub struct Damaged {
    pub first: Date,
    pub last: Date,
    pub file: PathBuf,
    pub problem: String,
}

/// A file found damaged and what is wrong with it (for `status`, which repairs nothing).
pub type Finding = (PathBuf, String);

/// What checking one batch found.
struct Opened {
    first: Date,
    last: Date,
    skip: usize,
    key: Option<u64>,
    acked: Vec<bool>,
    damaged: Option<Damaged>,
}

impl Spool {
    pub fn new(state_dir: Option<&Path>) -> Spool {
        Spool {
            dir: state_dir.map(Path::to_path_buf),
            held: Vec::new(),
        }
    }

    /// Removes what an interrupted pull left behind, then opens and checks every batch: the
    /// pending ones are held for `batches`, the finished ones and the damaged ones returned.
    /// With `fix`, appended bytes and damaged acknowledgement logs are repaired here (kept
    /// aside, named in one error line each); without (`status`), nothing is written and they
    /// go to `found`. Other files are left alone.
    pub fn sweep(&mut self, fix: bool, found: &mut Vec<Finding>) -> Result<Swept, String> {
        let Some(dir) = &self.dir else {
            return Ok(Swept::default());
        };
        let spool = dir.join("spool");
        if !spool.exists() && !fix {
            return Ok(Swept::default());
        }
        let entries = fs::read_dir(&spool).map_err(|e| read_error(&spool, &e))?;
        for entry in entries.flatten().filter(|_| fix) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let orphan_ack = name
                .strip_suffix(".acked")
                .is_some_and(|stem| !spool.join(format!("{stem}.jsonl")).exists());
            if name.ends_with(".jsonl.tmp") || orphan_ack || stale_snapshot(&spool, &name) {
                let _ = fs::remove_file(entry.path());
            }
        }
        let mut swept = Swept::default();
        self.held.clear();
        for path in batch_paths(&spool)? {
            let Some(opened) = check_batch(&path, fix, &mut |f| found.push(f))? else {
                continue;
            };
            if let Some(d) = opened.damaged {
                swept.damaged.push(d);
                continue;
            }
            let batch = Batch::on_disk(&path, opened);
            match batch.pending() {
                0 => swept.done.push(batch),
                _ => self.held.push(batch),
            }
        }
        Ok(swept)
    }

    /// Sets a damaged batch aside once its days are recorded to be pulled again: the damaged
    /// file is moved aside and named in one error line, the rest of the batch is removed.
    pub fn set_aside(&self, d: &Damaged) -> Result<(), String> {
        let batch = d.file.with_extension("jsonl");
        let kept = match d.file.exists() {
            true => format!("moved it to {}", move_aside(&d.file)?.display()),
            false => "nothing to keep".into(),
        };
        for other in [
            batch.clone(),
            batch.with_extension("acked"),
            batch.with_extension("revise"),
        ] {
            match fs::remove_file(&other) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(write_error(&other, &e));
                }
                _ => {}
            }
        }
        sync_dir(batch.parent().unwrap_or(Path::new(".")));
        crate::error!(
            "{}: {}; {kept}: the events of {} are pulled again and go out as revisions above any sent before",
            d.file.display(),
            d.problem,
            days(d.first, d.last)
        );
        Ok(())
    }

    /// The batches `sweep` held (memory-only mode: every unfinished one), oldest first; give
    /// back one that is not finished with `keep`.
    pub fn batches(&mut self) -> Vec<Batch> {
        std::mem::take(&mut self.held)
    }

    /// Bytes held by the spool (a disk-filling guard).
    pub fn bytes(&self) -> u64 {
        match &self.dir {
            Some(dir) => fs::read_dir(dir.join("spool"))
                .map(|es| {
                    // Files moved aside (`.corrupt-…`) are the user's to keep, not spool.
                    es.flatten()
                        .filter(|e| {
                            let name = e.file_name();
                            let name = name.to_string_lossy();
                            name.ends_with(".jsonl")
                                || name.ends_with(".acked")
                                || name.ends_with(".tmp")
                        })
                        .filter_map(|e| e.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0),
            None => self
                .held
                .iter()
                .flat_map(|b| &b.memory)
                .map(|l| l.len() as u64 + 1)
                .sum(),
        }
    }

    pub fn writer(&self, first: Date, last: Date) -> Result<SpoolWriter, String> {
        let tmp = match &self.dir {
            Some(dir) => {
                let path = dir
                    .join("spool")
                    .join(format!("{}.jsonl.tmp", batch_name(first, last)));
                let mut file = File::create(&path)
                    .map(BufWriter::new)
                    .map_err(|e| write_error(&path, &e))?;
                // Filled in by `commit`, once the lines are known.
                file.write_all(&header(0, 0))
                    .map_err(|e| write_error(&path, &e))?;
                Some((path, file))
            }
            None => None,
        };
        Ok(SpoolWriter {
            first,
            last,
            tmp,
            memory: Vec::new(),
            bytes: 0,
            lines: 0,
            sum: Sum::default(),
            snapshot: None,
            sent: BTreeMap::new(),
        })
    }

    /// Makes a fully written pull visible in the spool (header, fsync, rename, fsync the
    /// directory). A spooled batch for the same days is never replaced: its events go out first.
    pub fn commit(&mut self, writer: SpoolWriter) -> Result<Batch, String> {
        let Some((tmp, file)) = writer.tmp else {
            return Ok(Batch::in_memory(writer.first, writer.last, writer.memory));
        };
        let path = tmp.with_extension("");
        let ack = path.with_extension("acked");
        if path.exists() {
            let _ = fs::remove_file(&tmp);
            return Err(format!(
                "{} already holds events for these days that are not delivered yet; not replacing it",
                path.display()
            ));
        }
        crate::snapshot::commit(writer.snapshot, &path.with_extension("revise"))
            .inspect_err(|_| drop(fs::remove_file(&tmp)))?;
        let written = file
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| {
                f.write_all_at(&header(writer.lines, writer.sum.value()), 0)?;
                f.sync_all()
            })
            // Acknowledgements left by an older batch of these days must not apply to this one.
            .and_then(|_| match fs::remove_file(&ack) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            })
            .and_then(|_| fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(write_error(&tmp, &e));
        }
        sync_dir(path.parent().unwrap_or(Path::new(".")));
        // Just written from events: no line to check again (a third of a pull's work).
        let opened = Opened {
            first: writer.first,
            last: writer.last,
            skip: 1,
            key: Some(writer.sum.value()),
            acked: vec![false; writer.lines],
            damaged: None,
        };
        Ok(Batch::on_disk(&path, opened))
    }

    /// A batch whose days are recorded delivered (`State::finish`): its revise snapshot
    /// replaces the day files, then its files go. A snapshot found damaged now is left in
    /// place and returned, for the caller to record the batch's days to be pulled again.
    pub fn retire(&mut self, batch: Batch) -> Result<Option<Damaged>, String> {
        // Events first: a crash in between leaves an ack log with no events, swept later.
        if let (Some(path), Some(dir)) = (&batch.events, &self.dir) {
            let snapshot = path.with_extension("revise");
            if let Some(problem) = crate::snapshot::promote(&snapshot, dir)? {
                return Ok(Some(Damaged {
                    first: batch.first,
                    last: batch.last,
                    file: snapshot,
                    problem,
                }));
            }
            let _ = fs::remove_file(path);
            let _ = fs::remove_file(path.with_extension("acked"));
        }
        Ok(None)
    }

    /// Takes back a batch that still has pending events.
    pub fn keep(&mut self, batch: Batch) {
        self.held.push(batch);
    }

    /// Appends a permanently rejected event to dead-letter.jsonl, on a line of its own even
    /// after a torn last line (which the next check finds and keeps aside).
    pub fn dead_letter(&self, status: u16, reason: &str, event_json: &str) -> Result<(), String> {
        let Some(dir) = &self.dir else {
            crate::error!(
                "no state_dir, so the rejected event is kept only in this log: {event_json}"
            );
            return Ok(());
        };
        let path = dir.join("dead-letter.jsonl");
        let event: serde_json::Value =
            serde_json::from_str(event_json).unwrap_or(serde_json::Value::Null);
        let line = serde_json::json!({
            "time": crate::schedule::rfc3339(time::OffsetDateTime::now_utc()),
            "status": status,
            "reason": reason,
            "event": event,
        });
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(|e| write_error(&path, &e))?;
        let len = file.metadata().map_err(|e| read_error(&path, &e))?.len();
        let mut last = [b'\n'];
        if len > 0 {
            file.read_exact_at(&mut last, len - 1)
                .map_err(|e| read_error(&path, &e))?;
        }
        let start = if last[0] == b'\n' { "" } else { "\n" };
        file.write_all(format!("{start}{line}\n").as_bytes())
            .and_then(|_| file.sync_data())
            .map_err(|e| write_error(&path, &e))
    }

    /// Checks dead-letter.jsonl: every line a record, and at least `written` of them (how
    /// many were appended, when known). With `fix`, a damaged file is kept aside, its
    /// readable records are put back, and one error line says so. Returns the records it
    /// holds (after the fix) and what is wrong, if anything.
    pub fn check_dead_letters(
        &self,
        written: Option<u64>,
        fix: bool,
    ) -> Result<(u64, Option<Finding>), String> {
        let Some(dir) = &self.dir else {
            return Ok((0, None));
        };
        let path = dir.join("dead-letter.jsonl");
        let Some(file) = open_regular(&path)? else {
            return Ok(match written {
                Some(n) if n > 0 => (
                    0,
                    Some((
                        path,
                        format!("is gone, and {n} record(s) were written to it"),
                    )),
                ),
                _ => (0, None),
            });
        };
        let mut lines = Lines::new(BufReader::new(file));
        let (mut count, mut n, mut first_bad) = (0u64, 0u64, None);
        while let Some(line) = lines.next().map_err(|e| read_error(&path, &e))? {
            n += 1;
            match line {
                Line::Whole(l) if is_record(l) => count += 1,
                _ if first_bad.is_some() => {}
                Line::Whole(_) => {
                    first_bad = Some(format!("its line {n} is not a rejection record"))
                }
                Line::Torn(_) => first_bad = Some(format!("its last line ({n}) is cut short")),
                Line::Long => {
                    first_bad = Some(format!(
                        "its line {n} is longer than {} KiB",
                        MAX_LINE / 1024
                    ));
                }
            }
        }
        let problem = first_bad.or_else(|| match written {
            Some(w) if count < w => Some(format!(
                "holds {count} of the {w} record(s) written to it (it was cut)"
            )),
            _ => None,
        });
        let Some(problem) = problem else {
            return Ok((count, None));
        };
        if !fix {
            return Ok((count, Some((path, problem))));
        }
        // The readable records, in order, go back in place of the damaged file.
        let file = File::open(&path).map_err(|e| read_error(&path, &e))?;
        let mut lines = Lines::new(BufReader::new(file));
        let mut good = Vec::new();
        while let Some(line) = lines.next().map_err(|e| read_error(&path, &e))? {
            if let Line::Whole(l) = line
                && is_record(l)
            {
                good.extend_from_slice(l);
                good.push(b'\n');
            }
        }
        let aside = keep_aside_and_replace(&path, &good)?;
        crate::error!(
            "{}: {problem}; kept the file as {}: its {count} readable record(s) stay in dead-letter.jsonl",
            path.display(),
            aside.display()
        );
        Ok((count, None))
    }
}

/// A dead-letter record: `{"time","status","reason","event"}`.
fn is_record(line: &[u8]) -> bool {
    let Ok(v) = std::str::from_utf8(line).map(serde_json::from_str::<serde_json::Value>) else {
        return false;
    };
    v.is_ok_and(|v| {
        v["time"].is_string()
            && v["status"].is_u64()
            && v["reason"].is_string()
            && v.get("event").is_some()
    })
}

/// The batch files of a spool directory, oldest first.
fn batch_paths(spool: &Path) -> Result<Vec<PathBuf>, String> {
    let mut names: Vec<String> = fs::read_dir(spool)
        .map_err(|e| read_error(spool, &e))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| batch_range(n).is_some())
        .collect();
    names.sort();
    Ok(names.into_iter().map(|n| spool.join(n)).collect())
}

/// Checks a batch, its acknowledgements and its revision snapshot. With `fix`, appended
/// bytes and damaged acknowledgements are repaired (kept aside, one error line each);
/// without, they go to `found`. None: the batch is gone.
fn check_batch(
    path: &Path,
    fix: bool,
    found: &mut dyn FnMut(Finding),
) -> Result<Option<Opened>, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (first, last) =
        batch_range(&name).ok_or_else(|| format!("{}: not a spool file", path.display()))?;
    // Parsed as `deliver` parses a line (one parser for both in the binary).
    let event =
        |l: &[u8]| std::str::from_utf8(l).is_ok_and(|t| serde_json::from_str::<Event>(t).is_ok());
    let damaged = |file: &Path, problem: String| Opened {
        first,
        last,
        skip: 0,
        key: None,
        acked: Vec::new(),
        damaged: Some(Damaged {
            first,
            last,
            file: file.to_path_buf(),
            problem,
        }),
    };
    let (total, key) = match read_checked(path, &event, &mut |_, _| ())? {
        None => return Ok(None),
        Some(Checked::Damaged(problem)) => return Ok(Some(damaged(path, problem))),
        Some(Checked::Whole { lines, extra, sum }) => {
            if let Some(end) = extra {
                cut_appended(path, end, lines, "event", fix, found)?;
            }
            (lines, sum)
        }
    };
    let acked = check_acks(&path.with_extension("acked"), total, key, fix, found)?;
    let pending = acked.iter().filter(|a| !**a).count();
    let snapshot = path.with_extension("revise");
    let stored = |l: &[u8]| crate::snapshot::is_stored(l);
    match read_checked(&snapshot, &stored, &mut |_, _| ())? {
        None if pending > 0 => {
            let problem = format!("is missing, and its batch has {pending} event(s) to send");
            return Ok(Some(damaged(&snapshot, problem)));
        }
        Some(Checked::Damaged(problem)) => return Ok(Some(damaged(&snapshot, problem))),
        Some(Checked::Whole {
            lines,
            extra: Some(end),
            ..
        }) => cut_appended(&snapshot, end, lines, "line", fix, found)?,
        _ => {}
    }
    Ok(Some(Opened {
        first,
        last,
        skip: usize::from(key.is_some()),
        key,
        acked,
        damaged: None,
    }))
}

/// A whole checked file with bytes appended after its last line (at `end`): with `fix`, the
/// file is kept aside and its whole part put back; else it goes to `found`.
fn cut_appended(
    path: &Path,
    end: u64,
    lines: usize,
    what: &str,
    fix: bool,
    found: &mut dyn FnMut(Finding),
) -> Result<(), String> {
    let len = fs::metadata(path).map_err(|e| read_error(path, &e))?.len();
    let problem = format!(
        "{} byte(s) follow its last line and are not part of it",
        len.saturating_sub(end)
    );
    if !fix {
        found((path.to_path_buf(), problem));
        return Ok(());
    }
    let mut good = fs::read(path).map_err(|e| read_error(path, &e))?;
    good.truncate(end as usize);
    let aside = keep_aside_and_replace(path, &good)?;
    crate::error!(
        "{}: {problem}; kept the file as {}: its {lines} {what}(s) are whole and stay in use",
        path.display(),
        aside.display()
    );
    Ok(())
}

/// Writes `<i> <tag>\n` (or `<i>\n`) into `out` and returns its length; by hand, as an event
/// is acknowledged once each (formatting machinery cost a delivery 1% more instructions).
fn ack_line(out: &mut [u8; 32], i: usize, tag: Option<u32>) -> usize {
    let mut digits = [0u8; 20];
    let (mut n, mut count) = (i, 0);
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for k in 0..count {
        out[k] = digits[count - 1 - k];
    }
    let mut len = count;
    if let Some(t) = tag {
        out[len] = b' ';
        for k in 0..8 {
            out[len + 1 + k] = b"0123456789abcdef"[(t >> (28 - 4 * k) & 0xf) as usize];
        }
        len += 9;
    }
    out[len] = b'\n';
    len + 1
}

/// The tag of acknowledgement `i` of the batch whose header sums to `key`.
fn tag(key: u64, i: usize) -> u32 {
    (crate::files::hash(&(key ^ i as u64).to_le_bytes()) >> 32) as u32
}

/// The events of a batch of `total` that its acknowledgement log (`bytes`) names, the log's
/// good lines, and what is wrong with the first bad one: each line is `<number> <tag>`
/// (`key`: the batch header's sum; None: an earlier version's batch, plain numbers), the
/// number below `total`, the line ended by a newline.
fn read_acks(bytes: &[u8], total: usize, key: Option<u64>) -> (Vec<bool>, String, Option<String>) {
    let (mut acked, mut good, mut problem) = (vec![false; total], String::new(), None);
    let mut rest = bytes;
    let mut k = 0;
    while !rest.is_empty() {
        k += 1;
        let (line, torn) = match rest.iter().position(|b| *b == b'\n') {
            Some(end) => (&rest[..end], false),
            None => (rest, true),
        };
        rest = &rest[(line.len() + 1).min(rest.len())..];
        let text = std::str::from_utf8(line).unwrap_or("");
        // Decimal as written: digits only, no leading zero.
        let number = |s: &str| {
            s.bytes().all(|b| b.is_ascii_digit())
                && !s.is_empty()
                && (s.len() == 1 || !s.starts_with('0'))
        };
        let (n, t) = text.split_once(' ').unwrap_or((text, ""));
        let parsed = match key {
            Some(_) if t.len() == 8 && number(n) => {
                n.parse::<usize>().ok().zip(u32::from_str_radix(t, 16).ok())
            }
            None if number(text) => text.parse::<usize>().ok().map(|n| (n, 0)),
            _ => None,
        };
        let bad = match parsed {
            _ if torn => Some(format!("its last line (line {k}) is cut short")),
            None => Some(format!(
                "its line {k} is not an acknowledgement: \"{}\"",
                crate::log::escape(&String::from_utf8_lossy(line), 40)
            )),
            Some((n, _)) if n >= total => Some(format!(
                "its line {k} names event {n}, and the batch holds {total}"
            )),
            Some((n, t)) if key.is_some_and(|key| tag(key, n) != t) => Some(format!(
                "its line {k} names event {n} without this batch's tag (it was not written for it)"
            )),
            Some((n, _)) => {
                acked[n] = true;
                good.push_str(text);
                good.push('\n');
                None
            }
        };
        if problem.is_none() {
            problem = bad;
        }
    }
    (acked, good, problem)
}

/// The acknowledged events of a batch of `total` (see `read_acks`). With `fix`, a damaged
/// log is kept aside and its good lines put back (the events it no longer names go out
/// again, with the ids they have: at least once, never lost); without, it goes to `found`.
fn check_acks(
    path: &Path,
    total: usize,
    key: Option<u64>,
    fix: bool,
    found: &mut dyn FnMut(Finding),
) -> Result<Vec<bool>, String> {
    let Some(bytes) = read_regular(path)? else {
        return Ok(vec![false; total]);
    };
    let (acked, good, problem) = read_acks(&bytes, total, key);
    let Some(problem) = problem else {
        return Ok(acked);
    };
    if !fix {
        found((path.to_path_buf(), problem));
        return Ok(acked);
    }
    let aside = keep_aside_and_replace(path, good.as_bytes())?;
    let named = acked.iter().filter(|a| **a).count();
    crate::error!(
        "{}: {problem}; kept it as {}: its {named} good acknowledgement(s) stay, and the events it no longer names go out again, with the ids they have",
        path.display(),
        aside.display()
    );
    Ok(acked)
}

impl SpoolWriter {
    /// Where the pull's revise snapshot is written until the batch is committed
    /// (`<batch>.revise.tmp` beside it); None in memory-only mode.
    pub fn snapshot_path(&self) -> Option<PathBuf> {
        let (tmp, _) = self.tmp.as_ref()?;
        Some(tmp.with_file_name(format!("{}.revise.tmp", batch_name(self.first, self.last))))
    }

    #[cfg(test)]
    pub fn push(&mut self, event: &Event) -> Result<(), String> {
        self.push_with(event, &event.raw_data())
    }

    /// `push` for an event whose data is already serialized (`Event::raw_data`).
    pub fn push_with(
        &mut self,
        event: &Event,
        data: &serde_json::value::RawValue,
    ) -> Result<(), String> {
        let line = event.to_json_with(data);
        self.bytes += line.len() as u64 + 1;
        self.lines += 1;
        match &mut self.tmp {
            Some((path, file)) => {
                self.sum.add(line.as_bytes());
                file.write_all(line.as_bytes())
                    .and_then(|_| file.write_all(b"\n"))
                    .map_err(|e| write_error(path, &e))
            }
            None => {
                self.memory.push(line);
                Ok(())
            }
        }
    }

    /// Drops a pull that could not be completed.
    pub fn abandon(self) {
        if let Some((path, _)) = self.tmp {
            let _ = fs::remove_file(path);
        }
    }
}

/// What `Batch::walk_pending` does with an event after its callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Acknowledge it: it needs no more sending.
    Ack,
    /// Leave it pending and go on to the next one.
    Hold,
    /// Leave it pending and stop.
    Stop,
}

impl Batch {
    fn in_memory(first: Date, last: Date, lines: Vec<String>) -> Batch {
        Batch {
            first,
            last,
            events: None,
            skip: 0,
            key: None,
            acked: vec![false; lines.len()],
            memory: lines,
            ack_log: None,
        }
    }

    /// A checked batch at `path` (its acknowledgement log is opened at the first one).
    fn on_disk(path: &Path, opened: Opened) -> Batch {
        Batch {
            first: opened.first,
            last: opened.last,
            events: Some(path.to_path_buf()),
            skip: opened.skip,
            key: opened.key,
            memory: Vec::new(),
            acked: opened.acked,
            ack_log: None,
        }
    }

    pub fn pending(&self) -> usize {
        self.acked.iter().filter(|a| !**a).count()
    }

    /// Calls `f(event_json)` for each event not yet acknowledged, in order: `Ok(true)`
    /// acknowledges it (written at once), `Ok(false)` stops, an error stops and is returned.
    #[cfg(test)]
    pub fn drain_pending(
        &mut self,
        mut f: impl FnMut(&str) -> Result<bool, String>,
    ) -> Result<(), String> {
        self.walk_pending(|_, json| {
            Ok(match f(json)? {
                true => Step::Ack,
                false => Step::Stop,
            })
        })
    }

    /// Like `drain_pending`, with each event's index, and `Step::Hold` to go on without
    /// acknowledging it (a caller that decides later calls `acknowledge`).
    pub fn walk_pending(
        &mut self,
        mut f: impl FnMut(usize, &str) -> Result<Step, String>,
    ) -> Result<(), String> {
        let Some(path) = self.events.clone() else {
            for i in 0..self.memory.len() {
                if !self.acked[i] {
                    let line = self.memory[i].clone();
                    match f(i, &line)? {
                        Step::Ack => self.ack(i)?,
                        Step::Hold => {}
                        Step::Stop => break,
                    }
                }
            }
            return Ok(());
        };
        let file = File::open(&path).map_err(|e| read_error(&path, &e))?;
        // One line buffer for the whole file: a fresh one per line made musl's allocator
        // map and unmap a page for most events (a third of the delivery speed with the rest).
        let mut lines = Lines::new(BufReader::new(file));
        for n in 0..self.skip + self.acked.len() {
            let line = match lines.next().map_err(|e| read_error(&path, &e))? {
                Some(Line::Whole(l)) => l,
                _ => {
                    let what = format!("event {} is cut short", n + 1 - self.skip);
                    return Err(changed(&path, &what));
                }
            };
            let Some(i) = n.checked_sub(self.skip).filter(|i| !self.acked[*i]) else {
                continue;
            };
            let text = std::str::from_utf8(line)
                .map_err(|_| changed(&path, &format!("event {} is not UTF-8 text", i + 1)))?;
            match f(i, text)? {
                Step::Ack => self.ack(i)?,
                Step::Hold => {}
                Step::Stop => break,
            }
        }
        Ok(())
    }

    /// Acknowledges event `i` that `walk_pending` held (written at once).
    pub fn acknowledge(&mut self, i: usize) -> Result<(), String> {
        match self.acked.get(i) {
            Some(false) => self.ack(i),
            _ => Ok(()),
        }
    }

    /// `drain_pending` a group at a time (EventBridge takes up to 10 events a request):
    /// calls `f` with up to `max` pending events, in order, and acknowledges each one it
    /// marks done (`true` at its place in the list it returns); a group with one not done
    /// stops the drain, as an error does.
    pub fn drain_groups(
        &mut self,
        max: usize,
        mut f: impl FnMut(&[String]) -> Result<Vec<bool>, String>,
    ) -> Result<(), String> {
        let mut lines = self.pending_lines()?;
        loop {
            let (mut numbers, mut group) = (Vec::new(), Vec::new());
            while group.len() < max.max(1)
                && let Some(line) = lines.next()
            {
                let (i, line) = line?;
                numbers.push(i);
                group.push(line);
            }
            if group.is_empty() {
                return Ok(());
            }
            let done = f(&group)?;
            for (i, _) in numbers.iter().zip(&done).filter(|(_, d)| **d) {
                self.ack(*i)?;
            }
            if done.len() < group.len() || done.contains(&false) {
                return Ok(());
            }
        }
    }

    /// The pending events with their numbers, read and checked as `walk_pending` reads them.
    fn pending_lines(
        &self,
    ) -> Result<impl Iterator<Item = Result<(usize, String), String>> + use<>, String> {
        let acked = self.acked.clone();
        let mut next: NextLine = match &self.events {
            None => {
                let mut lines = self.memory.clone().into_iter().enumerate();
                Box::new(move || Ok(lines.next()))
            }
            Some(path) => {
                let path = path.clone();
                let file = File::open(&path).map_err(|e| read_error(&path, &e))?;
                let mut lines = Lines::new(BufReader::new(file));
                let (skip, total) = (self.skip, self.acked.len());
                let mut n = 0;
                Box::new(move || {
                    while n < skip + total {
                        let line = match lines.next().map_err(|e| read_error(&path, &e))? {
                            Some(Line::Whole(l)) => l,
                            _ => {
                                return Err(changed(
                                    &path,
                                    &format!("event {} is cut short", n + 1 - skip),
                                ));
                            }
                        };
                        n += 1;
                        let Some(i) = (n - 1).checked_sub(skip) else {
                            continue;
                        };
                        let text = std::str::from_utf8(line).map_err(|_| {
                            changed(&path, &format!("event {} is not UTF-8 text", i + 1))
                        })?;
                        return Ok(Some((i, text.to_string())));
                    }
                    Ok(None)
                })
            }
        };
        Ok(std::iter::from_fn(move || {
            loop {
                match next() {
                    Ok(Some((i, _))) if acked[i] => continue,
                    Ok(Some(found)) => return Some(Ok(found)),
                    Ok(None) => return None,
                    Err(e) => return Some(Err(e)),
                }
            }
        }))
    }

    /// Records that event `i` needs no more sending (written at once; fsynced by `sync`).
    fn ack(&mut self, i: usize) -> Result<(), String> {
        self.acked[i] = true;
        let Some(path) = &self.events else {
            return Ok(());
        };
        let log = match &mut self.ack_log {
            Some(log) => log,
            None => {
                let ack_path = path.with_extension("acked");
                let log = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&ack_path)
                    .map_err(|e| write_error(&ack_path, &e))?;
                self.ack_log.insert(log)
            }
        };
        let mut line = [0u8; 32];
        let len = ack_line(&mut line, i, self.key.map(|key| tag(key, i)));
        log.write_all(&line[..len])
            .map_err(|e| write_error(&path.with_extension("acked"), &e))
    }

    pub fn sync(&self) {
        if let Some(log) = &self.ack_log {
            let _ = log.sync_data();
        }
    }
}

/// `2022-06-13` or `2022-06-13 to 2022-06-15`.
fn days(first: Date, last: Date) -> String {
    match first == last {
        true => format_date(first),
        false => format!("{} to {}", format_date(first), format_date(last)),
    }
}

/// The next event of a batch and its number, for `pending_lines`.
type NextLine = Box<dyn FnMut() -> Result<Option<(usize, String)>, String>>;

/// A batch file that no longer reads as it was checked at open.
fn changed(path: &Path, what: &str) -> String {
    format!(
        "{}: changed since it was checked: {what}; it is checked again at the next start",
        path.display()
    )
}

/// Snapshot files a crash can leave behind: one being written, or one whose batch never
/// became visible.
fn stale_snapshot(spool: &Path, name: &str) -> bool {
    name.ends_with(".revise.tmp")
        || name
            .strip_suffix(".revise")
            .is_some_and(|stem| !spool.join(format!("{stem}.jsonl")).exists())
}

pub fn batch_name(first: Date, last: Date) -> String {
    format!("{}_{}", format_date(first), format_date(last))
}

/// `2022-06-11_2022-06-13.jsonl` → the range; any other name → None.
pub fn batch_range(file_name: &str) -> Option<(Date, Date)> {
    let stem = file_name.strip_suffix(".jsonl")?;
    let (a, b) = stem.split_once('_')?;
    Some((parse_date(a)?, parse_date(b)?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::Line;
    use time::macros::date;

    fn tmpdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "sab-spool-{}-{}",
            std::process::id(),
            getrandom::u64().unwrap()
        ));
        fs::create_dir_all(d.join("spool")).unwrap();
        d
    }

    /// What a new process sees: the spool of state_dir `dir`, swept (nothing damaged).
    fn opened(dir: &Path) -> Spool {
        let mut spool = Spool::new(Some(dir));
        let swept = spool.sweep(true, &mut Vec::new()).unwrap();
        assert!(swept.damaged.is_empty(), "{:?}", swept.damaged);
        spool
    }

    fn event(service: &str) -> Event {
        let line = Line::service("2022-06-13", service, "BlendedCost", "1", "USD");
        Event::sealed(line, "2022-06-14T00:00:00Z")
    }

    /// A batch of one event per service, with the (empty) revision snapshot a pull leaves.
    fn spooled(spool: &mut Spool, services: &[&str]) -> Batch {
        let mut w = spool
            .writer(date!(2022 - 06 - 13), date!(2022 - 06 - 13))
            .unwrap();
        for s in services {
            w.push(&event(s)).unwrap();
        }
        let batch = spool.commit(w).unwrap();
        if let Some(path) = &batch.events {
            fs::write(
                path.with_extension("revise"),
                header(0, Sum::default().value()),
            )
            .unwrap();
        }
        batch
    }

    /// The services of the pending events; acknowledges the first `ack` of them.
    pub(crate) fn take(batch: &mut Batch, ack: usize) -> Vec<Event> {
        let mut out = Vec::new();
        batch
            .drain_pending(|l| {
                out.push(serde_json::from_str::<Event>(l).unwrap());
                Ok(out.len() <= ack)
            })
            .unwrap();
        out
    }

    pub(crate) fn pending(batch: &mut Batch) -> Vec<String> {
        take(batch, usize::MAX)
            .into_iter()
            .map(|e| e.data.service.unwrap_or_default())
            .collect()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir.join("spool"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_batch_has_a_header_with_its_count_and_sum_and_its_lines_stay_readable() {
        let dir = tmpdir();
        let mut spool = opened(&dir);
        let batch = spooled(&mut spool, &["a", "b"]);
        let path = batch.events.clone().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("{\"lines\":2,\"sum\":\""),
            "{}",
            lines[0]
        );
        assert_eq!(lines[0].len() + 1, crate::files::HEADER_BYTES);
        for l in &lines[1..] {
            serde_json::from_str::<Event>(l).unwrap();
        }
        drop(batch);
        assert_eq!(pending(&mut opened(&dir).batches()[0]), ["a", "b"]);
        fs::remove_dir_all(dir).unwrap();
    }

    /// A damage: its name, what it does to a file's bytes, and what the check says of it.
    type Damage = (&'static str, fn(&[u8]) -> Vec<u8>, &'static str);

    #[test]
    fn a_damaged_batch_is_reported_and_set_aside_with_its_acks_and_snapshot() {
        let bad: [Damage; 6] = [
            (
                "cut at a line",
                |b| {
                    b[..b.len()
                        - 1
                        - b[..b.len() - 1]
                            .iter()
                            .rev()
                            .position(|c| *c == b'\n')
                            .unwrap()]
                        .to_vec()
                },
                "holds 2 of the 3 lines its header names (cut short)",
            ),
            (
                "cut mid-line",
                |b| b[..b.len() - 10].to_vec(),
                "holds 2 of the 3 lines its header names (its last line is cut short)",
            ),
            ("emptied", |_| Vec::new(), "is empty"),
            (
                "zero-filled",
                |b| vec![0; b.len()],
                "its line 1 is neither a header nor a readable line",
            ),
            (
                "one byte not UTF-8",
                |b| {
                    let mut b = b.to_vec();
                    b[crate::files::HEADER_BYTES + 20] = 0xff;
                    b
                },
                "its lines do not match the checksum in its header",
            ),
            (
                "a line dropped",
                |b| {
                    let t = String::from_utf8_lossy(b).into_owned();
                    let l: Vec<&str> = t.lines().collect();
                    format!("{}\n{}\n{}\n", l[0], l[1], l[3]).into_bytes()
                },
                "holds 2 of the 3 lines its header names (cut short)",
            ),
        ];
        for (what, damage, problem) in bad {
            let dir = tmpdir();
            let mut spool = opened(&dir);
            let mut batch = spooled(&mut spool, &["a", "b", "c"]);
            take(&mut batch, 1);
            let path = batch.events.clone().unwrap();
            drop(batch);
            let bytes = fs::read(&path).unwrap();
            fs::write(&path, damage(&bytes)).unwrap();
            let mut spool = Spool::new(Some(&dir));
            let swept = spool.sweep(true, &mut Vec::new()).unwrap();
            assert!(spool.batches().is_empty(), "{what}");
            assert_eq!(swept.damaged.len(), 1, "{what}");
            let d = &swept.damaged[0];
            assert_eq!(
                (d.file.clone(), d.problem.as_str()),
                (path.clone(), problem),
                "{what}"
            );
            assert_eq!(
                (d.first, d.last),
                (date!(2022 - 06 - 13), date!(2022 - 06 - 13))
            );
            spool.set_aside(d).unwrap();
            let left = names(&dir);
            assert_eq!(left.len(), 1, "{what}: {left:?}");
            assert!(
                left[0].starts_with("2022-06-13_2022-06-13.jsonl.corrupt-"),
                "{left:?}"
            );
            assert_eq!(
                fs::read(dir.join("spool").join(&left[0])).unwrap(),
                damage(&bytes)
            );
            fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn bytes_appended_to_a_whole_batch_are_cut_off_and_kept_aside() {
        let dir = tmpdir();
        let mut spool = opened(&dir);
        let batch = spooled(&mut spool, &["a", "b"]);
        let path = batch.events.clone().unwrap();
        drop(batch);
        let good = fs::read(&path).unwrap();
        let mut more = good.clone();
        more.extend_from_slice(b"{\"this is\": not an event\n");
        fs::write(&path, &more).unwrap();
        let mut batches = opened(&dir).batches();
        assert_eq!(pending(&mut batches[0]), ["a", "b"]);
        assert_eq!(fs::read(&path).unwrap(), good);
        let aside: Vec<String> = names(&dir)
            .into_iter()
            .filter(|n| n.contains(".corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(fs::read(dir.join("spool").join(&aside[0])).unwrap(), more);
        drop(batches);
        drop(opened(&dir).batches());
        assert_eq!(
            names(&dir)
                .iter()
                .filter(|n| n.contains(".corrupt-"))
                .count(),
            1,
            "a repaired file is not moved aside again"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_damaged_or_missing_snapshot_makes_its_batch_damaged() {
        for (bytes, problem) in [
            (Some(b"".to_vec()), "is empty"),
            (Some(b"{\"r\":1,\"e\"".to_vec()), "its line 1 is cut short"),
            (None, "is missing, and its batch has 2 event(s) to send"),
        ] {
            let dir = tmpdir();
            let mut spool = opened(&dir);
            let batch = spooled(&mut spool, &["a", "b"]);
            let snapshot = batch.events.clone().unwrap().with_extension("revise");
            drop(batch);
            match &bytes {
                Some(b) => fs::write(&snapshot, b).unwrap(),
                None => fs::remove_file(&snapshot).unwrap(),
            }
            let mut spool = Spool::new(Some(&dir));
            let swept = spool.sweep(true, &mut Vec::new()).unwrap();
            assert_eq!(swept.damaged.len(), 1);
            assert_eq!(
                (
                    swept.damaged[0].file.clone(),
                    swept.damaged[0].problem.as_str()
                ),
                (snapshot.clone(), problem)
            );
            spool.set_aside(&swept.damaged[0]).unwrap();
            let left = names(&dir);
            assert_eq!(left.len(), usize::from(bytes.is_some()), "{left:?}");
            fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn acked_events_are_not_pending_after_reopen_and_ids_are_kept() {
        let dir = tmpdir();
        let mut spool = opened(&dir);
        let mut batch = spooled(&mut spool, &["a", "b", "c"]);
        let ids: Vec<String> = take(&mut batch, 1).into_iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), 2, "stopped after acknowledging one");
        drop(batch);
        drop(spool);
        let mut spool = opened(&dir);
        let mut batches = spool.batches();
        assert_eq!(batches.len(), 1);
        let again: Vec<String> = take(&mut batches[0], 0).into_iter().map(|e| e.id).collect();
        assert_eq!(again, ids[1..]);
        assert_eq!(pending(&mut batches[0]), ["b", "c"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn groups_are_acknowledged_entry_by_entry_and_one_not_done_stops() {
        let dir = tmpdir();
        let mut spool = opened(&dir);
        let mut batch = spooled(&mut spool, &["a", "b", "c", "d", "e"]);
        let mut groups = Vec::new();
        batch
            .drain_groups(2, |lines| {
                let services = lines.iter().map(|l| {
                    serde_json::from_str::<Event>(l)
                        .unwrap()
                        .data
                        .service
                        .unwrap()
                });
                groups.push(services.collect::<Vec<_>>());
                // The second group: its first event is done, its second is not.
                Ok(if groups.len() == 2 {
                    vec![true, false]
                } else {
                    vec![true; lines.len()]
                })
            })
            .unwrap();
        assert_eq!(groups, [["a", "b"], ["c", "d"]]);
        drop(batch);
        drop(spool);
        let mut batches = opened(&dir).batches();
        let mut groups = Vec::new();
        batches[0]
            .drain_groups(10, |lines| {
                groups.push(lines.len());
                Ok(vec![false; lines.len()])
            })
            .unwrap();
        assert_eq!(groups, [2], "d and e, in one group");
        assert_eq!(pending(&mut batches[0]), ["d", "e"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_ack_log_names_events_of_its_batch_only_and_damage_means_send_again() {
        for (log, left, problem) in [
            ("1 T1\n0 T0\n", vec!["c"], None),
            ("", vec!["a", "b", "c"], None),
            (
                "0 T0\n1 T",
                vec!["b", "c"],
                Some("its last line (line 2) is cut short"),
            ),
            (
                "0 T0\n7 T7\n",
                vec!["b", "c"],
                Some("its line 2 names event 7, and the batch holds 3"),
            ),
            (
                "0 T0\n2\n",
                vec!["b", "c"],
                Some("its line 2 is not an acknowledgement: \"2\""),
            ),
            (
                "0 T0\n2 00000000\n",
                vec!["b", "c"],
                Some(
                    "its line 2 names event 2 without this batch's tag (it was not written for it)",
                ),
            ),
            (
                "0 T0\n\0\0\0\n",
                vec!["b", "c"],
                Some("its line 2 is not an acknowledgement: \"\\u{0}\\u{0}\\u{0}\""),
            ),
            (
                "0 T0\n01 T1\n",
                vec!["b", "c"],
                Some("its line 2 is not an acknowledgement: \"01 T1\""),
            ),
            (
                "\u{fffd}\n2 T2\n",
                vec!["a", "b"],
                Some("its line 1 is not an acknowledgement: \"\u{fffd}\""),
            ),
        ] {
            let dir = tmpdir();
            let mut spool = opened(&dir);
            let batch = spooled(&mut spool, &["a", "b", "c"]);
            let key = batch.key.unwrap();
            let ack = batch.events.clone().unwrap().with_extension("acked");
            drop(batch);
            let mut text = log.to_string();
            for i in 0..8 {
                text = text.replace(&format!("T{i}"), &format!("{:08x}", tag(key, i)));
            }
            let shown = problem.map(|p| {
                let mut p = p.to_string();
                for i in 0..8 {
                    p = p.replace(&format!("T{i}"), &format!("{:08x}", tag(key, i)));
                }
                p
            });
            fs::write(&ack, &text).unwrap();
            let mut found = Vec::new();
            let acked = check_acks(&ack, 3, Some(key), false, &mut |f| found.push(f.1)).unwrap();
            assert_eq!(found.first(), shown.as_ref(), "{log:?}");
            assert_eq!(acked.iter().filter(|a| !**a).count(), left.len(), "{log:?}");
            let mut batches = opened(&dir).batches();
            assert_eq!(pending(&mut batches[0]), left, "{log:?}");
            let aside = names(&dir)
                .into_iter()
                .filter(|n| n.contains(".acked.corrupt-"))
                .count();
            assert_eq!(aside, usize::from(problem.is_some()), "{log:?}");
            fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn acknowledgements_carry_the_tag_of_their_batch() {
        let dir = tmpdir();
        let mut spool = opened(&dir);
        let mut batch = spooled(&mut spool, &["a", "b", "c"]);
        take(&mut batch, 2);
        let key = batch.key.unwrap();
        let ack = batch.events.clone().unwrap().with_extension("acked");
        drop(batch);
        let text = fs::read_to_string(&ack).unwrap();
        assert_eq!(
            text,
            format!("0 {:08x}\n1 {:08x}\n", tag(key, 0), tag(key, 1))
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn leftovers_of_an_interrupted_pull_are_removed() {
        let dir = tmpdir();
        let spool = opened(&dir);
        let mut w = spool
            .writer(date!(2022 - 06 - 13), date!(2022 - 06 - 13))
            .unwrap();
        w.push(&event("a")).unwrap();
        drop(w);
        drop(spool);
        let mut spool = opened(&dir);
        assert!(spool.batches().is_empty());
        assert_eq!(fs::read_dir(dir.join("spool")).unwrap().count(), 0);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_spooled_batch_is_never_replaced() {
        let dir = tmpdir();
        let mut spool = opened(&dir);
        drop(spooled(&mut spool, &["a"]));
        let mut w = spool
            .writer(date!(2022 - 06 - 13), date!(2022 - 06 - 13))
            .unwrap();
        w.push(&event("again")).unwrap();
        let e = spool.commit(w).err().unwrap();
        assert!(e.contains("not delivered yet; not replacing it"), "{e}");
        assert_eq!(pending(&mut opened(&dir).batches()[0]), ["a"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn memory_only_batches_keep_their_acknowledgements() {
        let mut spool = Spool::new(None);
        let mut batch = spooled(&mut spool, &["a", "b"]);
        take(&mut batch, 1);
        spool.keep(batch);
        assert_eq!(pending(&mut spool.batches()[0]), ["b"]);
    }

    #[test]
    fn acknowledgements_of_an_older_batch_never_apply_to_a_new_one() {
        let dir = tmpdir();
        let mut spool = opened(&dir);
        fs::write(
            dir.join("spool").join("2022-06-13_2022-06-13.acked"),
            "0\n1\n",
        )
        .unwrap();
        let mut batch = spooled(&mut spool, &["a", "b"]);
        assert_eq!(pending(&mut batch), ["a", "b"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_batch_of_an_earlier_version_without_a_header_is_read_line_by_line() {
        let dir = tmpdir();
        let path = dir.join("spool").join("2022-06-13_2022-06-13.jsonl");
        let lines = format!("{}\n{}\n", event("a").to_json(), event("b").to_json());
        fs::write(&path, &lines).unwrap();
        fs::write(path.with_extension("acked"), "0\n").unwrap();
        fs::write(path.with_extension("revise"), "").unwrap();
        // An earlier version's empty snapshot is no header file: it reads as damaged.
        let mut spool = Spool::new(Some(&dir));
        assert_eq!(
            spool.sweep(true, &mut Vec::new()).unwrap().damaged[0].problem,
            "is empty"
        );
        fs::remove_file(path.with_extension("revise")).unwrap();
        fs::write(path.with_extension("revise"), "{\"r\":0,\"e\":true,\"d\":{\"vanceSource\":\"x\",\"vanceType\":\"y\",\"date\":\"2022-06-13\",\"amount\":\"1\",\"unit\":\"USD\"}}\n").unwrap();
        assert_eq!(pending(&mut opened(&dir).batches()[0]), ["b"]);
        fs::write(&path, format!("{lines}{{\"torn\n")).unwrap();
        let mut spool = Spool::new(Some(&dir));
        assert_eq!(
            spool.sweep(true, &mut Vec::new()).unwrap().damaged[0].problem,
            "its line 3 is neither a header nor a readable line"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_rejection_after_a_torn_dead_letter_starts_on_a_new_line_and_the_torn_one_is_kept_aside() {
        let dir = tmpdir();
        let spool = Spool::new(Some(&dir));
        let path = dir.join("dead-letter.jsonl");
        spool
            .dead_letter(400, "bad", &event("a").to_json())
            .unwrap();
        let first = fs::read_to_string(&path).unwrap();
        assert_eq!(spool.check_dead_letters(Some(1), false).unwrap(), (1, None));
        fs::write(&path, &first[..first.len() - 9]).unwrap();
        spool
            .dead_letter(400, "worse", &event("b").to_json())
            .unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            is_record(lines[1].as_bytes()),
            "the new record is whole: {}",
            lines[1]
        );
        let (count, found) = spool.check_dead_letters(Some(2), false).unwrap();
        assert_eq!(
            (count, found.unwrap().1),
            (1, "its line 1 is not a rejection record".into())
        );
        assert_eq!(spool.check_dead_letters(Some(2), true).unwrap(), (1, None));
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{}\n", lines[1])
        );
        // Cut at a line boundary or emptied: fewer records than were written.
        fs::write(&path, "").unwrap();
        let (count, found) = spool.check_dead_letters(Some(1), false).unwrap();
        assert_eq!(
            (count, found.unwrap().1),
            (
                0,
                "holds 0 of the 1 record(s) written to it (it was cut)".into()
            )
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_fifo_where_a_batch_or_a_dead_letter_file_should_be_is_refused_not_waited_on() {
        let dir = tmpdir();
        for name in ["spool/2022-06-13_2022-06-13.jsonl", "dead-letter.jsonl"] {
            let c = std::ffi::CString::new(dir.join(name).to_str().unwrap()).unwrap();
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        }
        let mut spool = Spool::new(Some(&dir));
        let e = spool.sweep(true, &mut Vec::new()).err().unwrap();
        assert!(
            e.ends_with("2022-06-13_2022-06-13.jsonl: cannot read: not a regular file"),
            "{e}"
        );
        let e = spool.check_dead_letters(None, true).unwrap_err();
        assert!(
            e.ends_with("dead-letter.jsonl: cannot read: not a regular file"),
            "{e}"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn snapshots_left_by_a_crash_are_stale_and_one_beside_its_batch_is_not() {
        let dir = tmpdir();
        let spool = dir.join("spool");
        assert!(stale_snapshot(&spool, "2026-11-20_2026-11-21.revise.tmp"));
        assert!(stale_snapshot(&spool, "2026-11-20_2026-11-21.revise"));
        fs::write(spool.join("2026-11-20_2026-11-21.jsonl"), "").unwrap();
        assert!(!stale_snapshot(&spool, "2026-11-20_2026-11-21.revise"));
        assert!(!stale_snapshot(&spool, "2026-11-20_2026-11-21.jsonl"));
        fs::remove_dir_all(dir).unwrap();
    }
}
