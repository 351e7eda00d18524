//! Delivered days and the spool of pulled-but-undelivered events, in crash-safe files.
//!
//! Layout of state_dir: `delivered.json` (the days whose events were all delivered,
//! rewritten atomically), `spool/<first>_<last>.jsonl` (one structured event per line,
//! renamed into place only once the whole pull is written), `spool/<first>_<last>.acked`
//! (append-only line numbers of events the target accepted or rejected for good), and
//! `dead-letter.jsonl` (events the target rejected, with status and reason).

use crate::config::plain_io;
use crate::event::Event;
use crate::schedule::{format_date, parse_date};
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use time::Date;

/// Where state lives: a directory, or memory only (nothing survives a restart).
pub struct State {
    dir: Option<PathBuf>,
    /// An exclusive flock on `state_dir/lock` while this process works on the state.
    lock: Option<File>,
    delivered: BTreeSet<Date>,
    /// Memory-only mode: batches not finished yet, acknowledgements included.
    memory_spool: Vec<Batch>,
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
    /// What the batch leaves as last delivered for the revise window (snapshot.rs).
    pub snapshot: Option<crate::snapshot::Writer>,
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
        Ok(State {
            dir: Some(dir.to_path_buf()),
            lock: None,
            delivered: BTreeSet::new(),
            memory_spool: Vec::new(),
        })
    }

    pub fn memory() -> State {
        State {
            dir: None,
            lock: None,
            delivered: BTreeSet::new(),
            memory_spool: Vec::new(),
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
            let mut options = OpenOptions::new();
            let file = options
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                // flock needs no write access: a lock file made by another user is fine.
                .or_else(|_| File::open(&path))
                .map_err(|e| write_error(&path, &e))?;
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
        self.delivered = self.read_delivered()?;
        self.sweep_spool()
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

    pub fn last_delivered(&self) -> Option<Date> {
        self.delivered.last().copied()
    }

    fn read_delivered(&self) -> Result<BTreeSet<Date>, String> {
        let Some(dir) = &self.dir else {
            return Ok(self.delivered.clone());
        };
        let path = dir.join("delivered.json");
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
            Err(e) => return Err(format!("{}: cannot read: {}", path.display(), plain_io(&e))),
        };
        #[derive(serde::Deserialize)]
        struct Delivered {
            delivered: Vec<String>,
        }
        let parsed = serde_json::from_slice::<Delivered>(&bytes)
            .ok()
            .and_then(|d| {
                d.delivered
                    .iter()
                    .map(|s| parse_date(s))
                    .collect::<Option<BTreeSet<Date>>>()
            });
        match parsed {
            Some(days) => Ok(days),
            None => {
                let aside = move_aside(&path)?;
                crate::error!(
                    "{} is not a valid state file; moved it to {}: days delivered before are no longer known, so the service catches up from yesterday only (use `once --from --to` for older days)",
                    path.display(),
                    aside.display()
                );
                Ok(BTreeSet::new())
            }
        }
    }

    /// Records days as delivered: written to a temporary file, fsynced and renamed.
    pub fn mark_delivered(&mut self, first: Date, last: Date) -> Result<(), String> {
        let mut days = self.delivered.clone();
        let mut d = first;
        while d <= last {
            days.insert(d);
            match d.next_day() {
                Some(next) => d = next,
                None => break,
            }
        }
        if let Some(dir) = &self.dir {
            let list: Vec<String> = days.iter().map(|d| format_date(*d)).collect();
            let json = serde_json::json!({ "version": 1, "delivered": list }).to_string();
            write_atomic(&dir.join("delivered.json"), format!("{json}\n").as_bytes())?;
        }
        self.delivered = days;
        Ok(())
    }

    /// Removes what an interrupted pull left behind and finishes batches with nothing pending
    /// (a crash between the last acknowledgement and `finish`). Other files are left alone.
    fn sweep_spool(&mut self) -> Result<(), String> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let spool = dir.join("spool");
        let entries = fs::read_dir(&spool)
            .map_err(|e| format!("{}: cannot read: {}", spool.display(), plain_io(&e)))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let orphan_ack = name
                .strip_suffix(".acked")
                .is_some_and(|stem| !spool.join(format!("{stem}.jsonl")).exists());
            if name.ends_with(".jsonl.tmp") || orphan_ack || crate::snapshot::stale(&spool, &name) {
                let _ = fs::remove_file(entry.path());
            }
        }
        for batch in self.batches()? {
            if batch.pending() == 0 {
                self.finish(batch)?;
            }
        }
        Ok(())
    }

    /// Spooled batches, oldest first. In memory-only mode they are handed over: give back
    /// an unfinished one with `keep`.
    pub fn batches(&mut self) -> Result<Vec<Batch>, String> {
        let Some(dir) = &self.dir else {
            return Ok(std::mem::take(&mut self.memory_spool));
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
    pub fn spool_bytes(&self) -> u64 {
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
                .memory_spool
                .iter()
                .flat_map(|b| &b.memory)
                .map(|l| l.len() as u64 + 1)
                .sum(),
        }
    }

    pub fn spool_writer(&self, first: Date, last: Date) -> Result<SpoolWriter, String> {
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
        crate::snapshot::commit(writer.snapshot, &path)
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
        Batch::open(&path)?
            .ok_or_else(|| format!("{}: vanished after it was written", path.display()))
    }

    /// All of a batch's events are delivered or dead-lettered: record its days, drop its files.
    pub fn finish(&mut self, batch: Batch) -> Result<(), String> {
        self.mark_delivered(batch.first, batch.last)?;
        // Events first: a crash in between leaves an ack log with no events, swept later.
        if let Some(path) = &batch.events {
            crate::snapshot::promote(path)?;
            let _ = fs::remove_file(path);
            let _ = fs::remove_file(path.with_extension("acked"));
        }
        Ok(())
    }

    /// Takes back a batch that still has pending events (memory-only mode keeps it here;
    /// on disk it is already in the spool).
    pub fn keep(&mut self, batch: Batch) {
        if batch.events.is_none() {
            self.memory_spool.push(batch);
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
    pub fn push(&mut self, event: &Event) -> Result<(), String> {
        let line = event.to_json();
        self.bytes += line.len() as u64 + 1;
        match &mut self.tmp {
            Some((path, file)) => writeln!(file, "{line}").map_err(|e| write_error(path, &e)),
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
        for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
            let line =
                line.map_err(|e| format!("{}: cannot read: {}", path.display(), plain_io(&e)))?;
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
        Ok(Some(Batch {
            first,
            last,
            events: Some(path.to_path_buf()),
            memory: Vec::new(),
            acked,
            ack_log: Some(ack_log),
        }))
    }

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
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line =
                line.map_err(|e| format!("{}: cannot read: {}", path.display(), plain_io(&e)))?;
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

pub fn batch_name(first: Date, last: Date) -> String {
    format!("{}_{}", format_date(first), format_date(last))
}

/// `2022-06-11_2022-06-13.jsonl` → the range; any other name → None.
fn batch_range(file_name: &str) -> Option<(Date, Date)> {
    let stem = file_name.strip_suffix(".jsonl")?;
    let (a, b) = stem.split_once('_')?;
    Some((parse_date(a)?, parse_date(b)?))
}

/// Renames a damaged file to `<name>.corrupt-<UTC timestamp>` beside it.
fn move_aside(path: &Path) -> Result<PathBuf, String> {
    let aside = aside_name(path);
    fs::rename(path, &aside).map_err(|e| write_error(&aside, &e))?;
    Ok(aside)
}

/// `<name>.corrupt-<UTC timestamp>` beside `path`.
fn aside_name(path: &Path) -> PathBuf {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    PathBuf::from(format!("{}.corrupt-{stamp}", path.display()))
}

/// Temp file, fsync, rename, fsync the directory: a crash leaves the old or the new file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let result = File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .and_then(|_| fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(write_error(path, &e));
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")));
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
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

pub(crate) fn write_error(path: &Path, e: &std::io::Error) -> String {
    let why = match e.raw_os_error() {
        Some(libc::EFBIG) => "file too large (file size limit reached)".to_string(),
        _ => plain_io(e),
    };
    format!(
        "cannot write {}: {why}; the previous state is intact",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Line};
    use time::macros::date;

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
        Event::new(line, crate::event::new_id(), "2022-06-14T00:00:00Z".into())
    }

    fn spool(state: &mut State, services: &[&str]) -> Batch {
        let mut w = state
            .spool_writer(date!(2022 - 06 - 13), date!(2022 - 06 - 13))
            .unwrap();
        for s in services {
            w.push(&event(s)).unwrap();
        }
        state.commit(w).unwrap()
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
    fn acked_events_are_not_pending_after_reopen_and_ids_are_kept() {
        let dir = tmpdir();
        let mut state = locked(&dir);
        let mut batch = spool(&mut state, &["a", "b", "c"]);
        let ids: Vec<String> = take(&mut batch, 1).into_iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), 2, "stopped after acknowledging one");
        drop(batch);
        drop(state);
        let mut state = locked(&dir);
        let mut batches = state.batches().unwrap();
        assert_eq!(batches.len(), 1);
        let again: Vec<String> = take(&mut batches[0], 0).into_iter().map(|e| e.id).collect();
        assert_eq!(again, ids[1..]);
        assert_eq!(pending(&mut batches[0]), ["b", "c"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn finishing_records_days_and_removes_the_spool() {
        let dir = tmpdir();
        let mut state = locked(&dir);
        let batch = spool(&mut state, &["a"]);
        state.finish(batch).unwrap();
        drop(state);
        let mut state = locked(&dir);
        assert!(state.is_delivered(date!(2022 - 06 - 13)));
        assert_eq!(state.last_delivered(), Some(date!(2022 - 06 - 13)));
        assert!(state.batches().unwrap().is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_ack_line_means_send_again() {
        let dir = tmpdir();
        let mut state = locked(&dir);
        let batch = spool(&mut state, &["a", "b"]);
        fs::write(
            dir.join("spool").join(format!("{}.acked", batch.name())),
            "0\n1",
        )
        .unwrap();
        drop(batch);
        drop(state);
        assert_eq!(pending(&mut locked(&dir).batches().unwrap()[0]), ["b"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn corrupt_files_are_moved_aside_not_dropped() {
        let dir = tmpdir();
        fs::write(dir.join("delivered.json"), "{not json").unwrap();
        let mut state = locked(&dir);
        assert_eq!(state.last_delivered(), None);
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("delivered.json.corrupt-")),
            "{names:?}"
        );
        let batch = spool(&mut state, &["a", "b"]);
        let path = dir.join("spool").join(format!("{}.jsonl", batch.name()));
        drop(batch);
        let text = fs::read_to_string(&path).unwrap();
        let (first, rest) = text.split_once('\n').unwrap();
        fs::write(&path, format!("{first}\n{{\"torn\n{rest}")).unwrap();
        drop(state);
        let mut batches = locked(&dir).batches().unwrap();
        assert_eq!(pending(&mut batches[0]), ["a", "b"]);
        let aside = fs::read_dir(dir.join("spool"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
            .count();
        assert_eq!(aside, 1);
        drop(batches);
        let mut state = locked(&dir);
        drop(state.batches().unwrap());
        let still = fs::read_dir(dir.join("spool")).unwrap().flatten();
        assert_eq!(
            still
                .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
                .count(),
            1
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn leftovers_of_an_interrupted_pull_are_removed() {
        let dir = tmpdir();
        let state = locked(&dir);
        let mut w = state
            .spool_writer(date!(2022 - 06 - 13), date!(2022 - 06 - 13))
            .unwrap();
        w.push(&event("a")).unwrap();
        drop(w);
        drop(state);
        let mut state = locked(&dir);
        assert!(state.batches().unwrap().is_empty());
        assert_eq!(fs::read_dir(dir.join("spool")).unwrap().count(), 0);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn one_process_at_a_time_and_a_release_lets_the_next_in() {
        let dir = tmpdir();
        let mut first = locked(&dir);
        let mut second = State::open(&dir, true).unwrap();
        let e = second.acquire(false).unwrap_err();
        assert!(e.contains("is in use by another source-aws-billing"), "{e}");
        first
            .mark_delivered(date!(2022 - 06 - 13), date!(2022 - 06 - 13))
            .unwrap();
        first.release();
        second.acquire(false).unwrap();
        assert!(
            second.is_delivered(date!(2022 - 06 - 13)),
            "re-read after the lock"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_fully_acknowledged_batch_is_finished_and_a_pending_one_kept_on_reopen() {
        let dir = tmpdir();
        let mut state = locked(&dir);
        let mut done = spool(&mut state, &["a"]);
        take(&mut done, usize::MAX);
        drop(done); // crashed before finish
        drop(state);
        let mut state = locked(&dir);
        assert!(state.is_delivered(date!(2022 - 06 - 13)));
        assert!(state.batches().unwrap().is_empty());
        // A --force re-send of a delivered day stays until its events are out.
        let forced = spool(&mut state, &["b"]);
        drop(forced);
        drop(state);
        let mut state = locked(&dir);
        assert_eq!(pending(&mut state.batches().unwrap()[0]), ["b"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_spooled_batch_is_never_replaced() {
        let dir = tmpdir();
        let mut state = locked(&dir);
        drop(spool(&mut state, &["a"]));
        let mut w = state
            .spool_writer(date!(2022 - 06 - 13), date!(2022 - 06 - 13))
            .unwrap();
        w.push(&event("again")).unwrap();
        let e = state.commit(w).err().unwrap();
        assert!(e.contains("not delivered yet; not replacing it"), "{e}");
        assert_eq!(pending(&mut state.batches().unwrap()[0]), ["a"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn memory_only_batches_keep_their_acknowledgements() {
        let mut state = State::memory();
        let mut batch = spool(&mut state, &["a", "b"]);
        take(&mut batch, 1);
        state.keep(batch);
        assert_eq!(pending(&mut state.batches().unwrap()[0]), ["b"]);
    }

    #[test]
    fn a_spool_file_with_nothing_readable_is_kept_aside_and_its_days_stay_undelivered() {
        let dir = tmpdir();
        let mut state = locked(&dir);
        let path = dir.join("spool").join("2022-06-13_2022-06-13.jsonl");
        fs::write(&path, "garbage\n{\"torn\n").unwrap();
        assert!(state.batches().unwrap().is_empty());
        drop(state);
        let state = locked(&dir);
        assert!(!state.is_delivered(date!(2022 - 06 - 13)));
        assert!(!path.exists());
        let aside: Vec<_> = fs::read_dir(dir.join("spool")).unwrap().flatten().collect();
        assert_eq!(aside.len(), 1);
        assert!(
            aside[0]
                .file_name()
                .to_string_lossy()
                .contains(".jsonl.corrupt-")
        );
        assert_eq!(state.spool_bytes(), 0, "files kept aside are not spool");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn acknowledgements_of_an_older_batch_never_apply_to_a_new_one() {
        let dir = tmpdir();
        let mut state = locked(&dir);
        fs::write(
            dir.join("spool").join("2022-06-13_2022-06-13.acked"),
            "0\n1\n",
        )
        .unwrap();
        let mut batch = spool(&mut state, &["a", "b"]);
        assert_eq!(pending(&mut batch), ["a", "b"]);
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
