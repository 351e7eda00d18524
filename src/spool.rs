//! The spool: pulled-but-undelivered events in crash-safe files, their acknowledgements and the dead letters.
//!
//! `spool/<first>_<last>.jsonl` (one structured event per line, renamed into place only once
//! the whole pull is written), `spool/<first>_<last>.acked` (append-only line numbers of
//! events the target accepted or rejected for good), and `dead-letter.jsonl` (events the
//! target rejected, with status and reason).

use crate::event::Event;
use crate::files::{aside_name, plain_io, sync_dir, write_atomic, write_error};
use crate::schedule::{format_date, parse_date};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use time::Date;

/// The spool of a state_dir (None: memory only, nothing survives a restart).
pub struct Spool {
    /// state_dir: the spool is its `spool/`, the dead letters its `dead-letter.jsonl`.
    dir: Option<PathBuf>,
    /// Memory-only mode: batches not finished yet, acknowledgements included.
    memory: Vec<Batch>,
}

/// A spooled pull: its day range and where its events are.
pub struct Batch {
    pub first: Date,
    pub last: Date,
    events: Option<PathBuf>,
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
    /// Lines written so far.
    lines: usize,
    /// What the batch leaves as last delivered for the revise window (snapshot.rs).
    pub snapshot: Option<crate::snapshot::Writer>,
}

impl Spool {
    pub fn new(state_dir: Option<&Path>) -> Spool {
        Spool {
            dir: state_dir.map(Path::to_path_buf),
            memory: Vec::new(),
        }
    }

    /// Removes what an interrupted pull left behind and returns the batches with nothing
    /// pending (a crash between the last acknowledgement and `finish`), for the caller to
    /// finish. Other files are left alone.
    pub fn sweep(&mut self) -> Result<Vec<Batch>, String> {
        let Some(dir) = &self.dir else {
            return Ok(Vec::new());
        };
        let spool = dir.join("spool");
        let entries = fs::read_dir(&spool)
            .map_err(|e| format!("{}: cannot read: {}", spool.display(), plain_io(&e)))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let orphan_ack = name
                .strip_suffix(".acked")
                .is_some_and(|stem| !spool.join(format!("{stem}.jsonl")).exists());
            if name.ends_with(".jsonl.tmp") || orphan_ack || stale_snapshot(&spool, &name) {
                let _ = fs::remove_file(entry.path());
            }
        }
        let (done, pending): (Vec<Batch>, Vec<Batch>) =
            self.batches()?.into_iter().partition(|b| b.pending() == 0);
        pending.into_iter().for_each(|b| self.keep(b));
        Ok(done)
    }

    /// Spooled batches, oldest first. In memory-only mode they are handed over: give back
    /// an unfinished one with `keep`.
    pub fn batches(&mut self) -> Result<Vec<Batch>, String> {
        let Some(dir) = &self.dir else {
            return Ok(std::mem::take(&mut self.memory));
        };
        let spool = dir.join("spool");
        let mut names: Vec<String> = fs::read_dir(&spool)
            .map_err(|e| format!("{}: cannot read: {}", spool.display(), plain_io(&e)))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| batch_range(n).is_some())
            .collect();
        names.sort();
        let mut batches = Vec::new();
        for name in names {
            batches.extend(Batch::open(&spool.join(name))?);
        }
        Ok(batches)
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
                .memory
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
                let file = File::create(&path).map_err(|e| write_error(&path, &e))?;
                Some((path, BufWriter::new(file)))
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
            snapshot: None,
        })
    }

    /// Makes a fully written pull visible in the spool (fsync, rename, fsync the directory).
    /// A spooled batch for the same days is never replaced: its events go out first.
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
            .and_then(|f| f.sync_all())
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
        Batch::with_acks(&path, writer.first, writer.last, writer.lines)
    }

    /// A batch whose days are recorded delivered (`State::finish`): its revise snapshot
    /// replaces the day files, then its files go.
    pub fn retire(&mut self, batch: Batch) -> Result<(), String> {
        // Events first: a crash in between leaves an ack log with no events, swept later.
        if let (Some(path), Some(dir)) = (&batch.events, &self.dir) {
            crate::snapshot::promote(&path.with_extension("revise"), dir)?;
            let _ = fs::remove_file(path);
            let _ = fs::remove_file(path.with_extension("acked"));
        }
        Ok(())
    }

    /// Takes back a batch that still has pending events (memory-only mode keeps it here;
    /// on disk it is already in the spool).
    pub fn keep(&mut self, batch: Batch) {
        if batch.events.is_none() {
            self.memory.push(batch);
        }
    }

    /// Appends a permanently rejected event to dead-letter.jsonl.
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
            .open(&path)
            .map_err(|e| write_error(&path, &e))?;
        file.write_all(format!("{line}\n").as_bytes())
            .and_then(|_| file.sync_data())
            .map_err(|e| write_error(&path, &e))
    }
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
            Some((path, file)) => file
                .write_all(line.as_bytes())
                .and_then(|_| file.write_all(b"\n"))
                .map_err(|e| write_error(path, &e)),
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

impl Batch {
    fn in_memory(first: Date, last: Date, lines: Vec<String>) -> Batch {
        let acked = vec![false; lines.len()];
        Batch {
            first,
            last,
            events: None,
            memory: lines,
            acked,
            ack_log: None,
        }
    }

    /// Opens a spool file and its ack log; corrupt lines are moved aside, never dropped silently.
    fn open(path: &Path) -> Result<Option<Batch>, String> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (first, last) =
            batch_range(&name).ok_or_else(|| format!("{}: not a spool file", path.display()))?;
        let file = File::open(path)
            .map_err(|e| format!("{}: cannot read: {}", path.display(), plain_io(&e)))?;
        let mut total = 0;
        let mut bad = Vec::new();
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        for i in 0.. {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("{}: cannot read: {}", path.display(), plain_io(&e)))?;
            if n == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            total = i + 1;
            if serde_json::from_slice::<Event>(&line).is_err() {
                bad.push(i);
            }
        }
        if !bad.is_empty() {
            repair(path, &bad, first, last)?;
            total -= bad.len();
            if total == 0 {
                return Ok(None);
            }
        }
        Batch::with_acks(path, first, last, total).map(Some)
    }

    /// A batch of `total` good lines at `path`, with the acknowledgements its log holds.
    fn with_acks(path: &Path, first: Date, last: Date, total: usize) -> Result<Batch, String> {
        let ack_path = path.with_extension("acked");
        let mut acked = vec![false; total];
        if let Ok(text) = fs::read(&ack_path) {
            // A torn last line (no newline) is ignored: that event is sent again.
            let complete = &text[..text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)];
            for line in complete.split(|b| *b == b'\n') {
                if let Some(i) = std::str::from_utf8(line)
                    .ok()
                    .and_then(|s| s.parse::<usize>().ok())
                    && i < total
                {
                    acked[i] = true;
                }
            }
        }
        let ack_log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&ack_path)
            .map_err(|e| write_error(&ack_path, &e))?;
        Ok(Batch {
            first,
            last,
            events: Some(path.to_path_buf()),
            memory: Vec::new(),
            acked,
            ack_log: Some(ack_log),
        })
    }

    #[cfg(test)]
    pub fn name(&self) -> String {
        batch_name(self.first, self.last)
    }

    pub fn pending(&self) -> usize {
        self.acked.iter().filter(|a| !**a).count()
    }

    /// Calls `f(event_json)` for each event not yet acknowledged, in order: `Ok(true)`
    /// acknowledges it (written at once), `Ok(false)` stops, an error stops and is returned.
    pub fn drain_pending(
        &mut self,
        mut f: impl FnMut(&str) -> Result<bool, String>,
    ) -> Result<(), String> {
        let Some(path) = self.events.clone() else {
            for i in 0..self.memory.len() {
                if !self.acked[i] {
                    let line = self.memory[i].clone();
                    if !f(&line)? {
                        break;
                    }
                    self.ack(i)?;
                }
            }
            return Ok(());
        };
        let file = File::open(&path)
            .map_err(|e| format!("{}: cannot read: {}", path.display(), plain_io(&e)))?;
        // One line buffer for the whole file: a fresh String per line made musl's allocator
        // map and unmap a page for most events (a third of the delivery speed with the rest).
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        for i in 0.. {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .map_err(|e| format!("{}: cannot read: {}", path.display(), plain_io(&e)))?;
            if n == 0 {
                break;
            }
            if line.ends_with('\n') {
                line.pop();
                if line.ends_with('\r') {
                    line.pop();
                }
            }
            if i < self.acked.len() && !self.acked[i] {
                if !f(&line)? {
                    break;
                }
                self.ack(i)?;
            }
        }
        Ok(())
    }

    /// Records that event `i` needs no more sending (written at once; fsynced by `sync`).
    fn ack(&mut self, i: usize) -> Result<(), String> {
        self.acked[i] = true;
        if let (Some(log), Some(path)) = (&mut self.ack_log, &self.events) {
            log.write_all(format!("{i}\n").as_bytes())
                .map_err(|e| write_error(&path.with_extension("acked"), &e))?;
        }
        Ok(())
    }

    pub fn sync(&self) {
        if let Some(log) = &self.ack_log {
            let _ = log.sync_data();
        }
    }
}

/// Keeps a spool file with bad lines under an aside name and puts back only the good lines
/// (none left: no batch, so its days stay undelivered). Each step leaves a usable spool.
fn repair(path: &Path, bad: &[usize], first: Date, last: Date) -> Result<(), String> {
    let text =
        fs::read(path).map_err(|e| format!("{}: cannot read: {}", path.display(), plain_io(&e)))?;
    let good: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(i, l)| !bad.contains(i) && !l.is_empty())
        .map(|(_, l)| l)
        .collect();
    // Acknowledgements count lines of the old file: drop them first (at worst, events go again).
    let ack = path.with_extension("acked");
    if let Err(e) = fs::remove_file(&ack)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(write_error(&ack, &e));
    }
    let aside = aside_name(path);
    fs::hard_link(path, &aside)
        .or_else(|_| fs::copy(path, &aside).map(|_| ()))
        .map_err(|e| write_error(&aside, &e))?;
    if good.is_empty() {
        fs::remove_file(path).map_err(|e| write_error(path, &e))?;
    } else {
        let mut out = good.join(&b'\n');
        out.push(b'\n');
        write_atomic(path, &out)?;
    }
    crate::error!(
        "{}: {} unreadable line(s) (line {}); kept the file as {} and {} good event(s) in the spool; the unreadable events can be pulled again with: source-aws-billing once --from {} --to {} --force",
        path.display(),
        bad.len(),
        bad.iter()
            .map(|i| (i + 1).to_string())
            .collect::<Vec<_>>()
            .join(", "),
        aside.display(),
        good.len(),
        format_date(first),
        format_date(last)
    );
    Ok(())
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
fn batch_range(file_name: &str) -> Option<(Date, Date)> {
    let stem = file_name.strip_suffix(".jsonl")?;
    let (a, b) = stem.split_once('_')?;
    Some((parse_date(a)?, parse_date(b)?))
}

#[cfg(test)]
mod tests {
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

    /// What a new process sees: the spool of state_dir `dir`, swept.
    fn opened(dir: &Path) -> Spool {
        let mut spool = Spool::new(Some(dir));
        spool.sweep().unwrap();
        spool
    }

    fn event(service: &str) -> Event {
        let line = Line::service("2022-06-13", service, "BlendedCost", "1", "USD");
        Event::sealed(line, "2022-06-14T00:00:00Z")
    }

    fn spooled(spool: &mut Spool, services: &[&str]) -> Batch {
        let mut w = spool
            .writer(date!(2022 - 06 - 13), date!(2022 - 06 - 13))
            .unwrap();
        for s in services {
            w.push(&event(s)).unwrap();
        }
        spool.commit(w).unwrap()
    }

    /// The services of the pending events; acknowledges the first `ack` of them.
    fn take(batch: &mut Batch, ack: usize) -> Vec<Event> {
        let mut out = Vec::new();
        batch
            .drain_pending(|l| {
                out.push(serde_json::from_str::<Event>(l).unwrap());
                Ok(out.len() <= ack)
            })
            .unwrap();
        out
    }

    fn pending(batch: &mut Batch) -> Vec<String> {
        take(batch, usize::MAX)
            .into_iter()
            .map(|e| e.data.service.unwrap_or_default())
            .collect()
    }

    #[test]
    fn a_torn_spool_line_is_moved_aside_not_dropped() {
        let dir = tmpdir();
        let mut spool = opened(&dir);
        let batch = spooled(&mut spool, &["a", "b"]);
        let path = dir.join("spool").join(format!("{}.jsonl", batch.name()));
        drop(batch);
        let text = fs::read_to_string(&path).unwrap();
        let (first, rest) = text.split_once('\n').unwrap();
        fs::write(&path, format!("{first}\n{{\"torn\n{rest}")).unwrap();
        drop(spool);
        let mut batches = opened(&dir).batches().unwrap();
        assert_eq!(pending(&mut batches[0]), ["a", "b"]);
        let aside = || {
            fs::read_dir(dir.join("spool"))
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
                .count()
        };
        assert_eq!(aside(), 1);
        drop(batches);
        drop(opened(&dir).batches().unwrap());
        assert_eq!(aside(), 1, "a repaired file is not moved aside again");
        fs::remove_dir_all(dir).unwrap();
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
        let mut batches = spool.batches().unwrap();
        assert_eq!(batches.len(), 1);
        let again: Vec<String> = take(&mut batches[0], 0).into_iter().map(|e| e.id).collect();
        assert_eq!(again, ids[1..]);
        assert_eq!(pending(&mut batches[0]), ["b", "c"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_ack_line_means_send_again() {
        let dir = tmpdir();
        let mut spool = opened(&dir);
        let batch = spooled(&mut spool, &["a", "b"]);
        fs::write(
            dir.join("spool").join(format!("{}.acked", batch.name())),
            "0\n1",
        )
        .unwrap();
        drop(batch);
        drop(spool);
        assert_eq!(pending(&mut opened(&dir).batches().unwrap()[0]), ["b"]);
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
        assert!(spool.batches().unwrap().is_empty());
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
        assert_eq!(pending(&mut spool.batches().unwrap()[0]), ["a"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn memory_only_batches_keep_their_acknowledgements() {
        let mut spool = Spool::new(None);
        let mut batch = spooled(&mut spool, &["a", "b"]);
        take(&mut batch, 1);
        spool.keep(batch);
        assert_eq!(pending(&mut spool.batches().unwrap()[0]), ["b"]);
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
