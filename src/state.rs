//! Delivered days and the state_dir lock, in crash-safe files; holds the spool (spool.rs).
//!
//! Layout of state_dir: `delivered.json` (the days whose events were all delivered,
//! rewritten atomically), `lock`, and the spool's files (see spool.rs).

use crate::files::{move_aside, plain_io, write_atomic, write_error};
use crate::schedule::{format_date, parse_date};
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use time::Date;

use crate::spool::{Batch, Spool};

/// Where state lives: a directory, or memory only (nothing survives a restart).
pub struct State {
    dir: Option<PathBuf>,
    /// An exclusive flock on `state_dir/lock` while this process works on the state.
    lock: Option<File>,
    delivered: BTreeSet<Date>,
    spool: Spool,
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
            spool: Spool::new(Some(dir)),
        })
    }

    pub fn memory() -> State {
        State {
            dir: None,
            lock: None,
            delivered: BTreeSet::new(),
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
        for batch in self.spool.sweep()? {
            self.finish(batch)?;
        }
        Ok(())
    }

    /// The spool: its batches, writers and dead letters.
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    pub fn spool_mut(&mut self) -> &mut Spool {
        &mut self.spool
    }

    /// All of a batch's events are delivered or dead-lettered: record its days, then let
    /// the spool drop its files.
    pub fn finish(&mut self, batch: Batch) -> Result<(), String> {
        self.mark_delivered(batch.first, batch.last)?;
        self.spool.retire(batch)
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
        Event::sealed(line, "2022-06-14T00:00:00Z")
    }

    fn spooled(state: &mut State, services: &[&str]) -> Batch {
        let mut w = state
            .spool()
            .writer(date!(2022 - 06 - 13), date!(2022 - 06 - 13))
            .unwrap();
        for s in services {
            w.push(&event(s)).unwrap();
        }
        state.spool_mut().commit(w).unwrap()
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
    fn a_corrupt_delivered_file_is_moved_aside_not_dropped() {
        let dir = tmpdir();
        fs::write(dir.join("delivered.json"), "{not json").unwrap();
        let state = locked(&dir);
        assert_eq!(state.delivered_days().last().copied(), None);
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
        assert!(state.is_delivered(date!(2022 - 06 - 13)));
        assert_eq!(
            state.delivered_days().last().copied(),
            Some(date!(2022 - 06 - 13))
        );
        assert!(state.spool_mut().batches().unwrap().is_empty());
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
        let mut done = spooled(&mut state, &["a"]);
        take(&mut done, usize::MAX);
        drop(done); // crashed before finish
        drop(state);
        let mut state = locked(&dir);
        assert!(state.is_delivered(date!(2022 - 06 - 13)));
        assert!(state.spool_mut().batches().unwrap().is_empty());
        // A --force re-send of a delivered day stays until its events are out.
        let forced = spooled(&mut state, &["b"]);
        drop(forced);
        drop(state);
        let mut state = locked(&dir);
        assert_eq!(pending(&mut state.spool_mut().batches().unwrap()[0]), ["b"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_spool_file_with_nothing_readable_is_kept_aside_and_its_days_stay_undelivered() {
        let dir = tmpdir();
        let mut state = locked(&dir);
        let path = dir.join("spool").join("2022-06-13_2022-06-13.jsonl");
        fs::write(&path, "garbage\n{\"torn\n").unwrap();
        assert!(state.spool_mut().batches().unwrap().is_empty());
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
        assert_eq!(state.spool().bytes(), 0, "files kept aside are not spool");
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
