//! Last delivered lines of the revise window vs a new pull → which lines go out again, as which revision.
//!
//! Pure: lines are compared by two 64-bit hashes, one of the line's key (date and group
//! keys) and one of its event data (every number and unit), kept in a hash table of 24-byte
//! slots whose storage the caller gives (a file, so memory holds one bit per slot).

use crate::event::Data;
use crate::yaml::{ConfigError, Doc};
use std::hash::{Hash, Hasher};
use time::Date;

pub const DEFAULT_REVISE_DAYS: u32 = 3;
pub const MAX_REVISE_DAYS: u32 = 62;

/// The config keys of this module: `revise_days` and `summary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Days before the pulled day whose estimated numbers are pulled again; 0 is off.
    pub revise_days: u32,
    /// Send one `aws.service.daily.summary` event after each day's lines.
    pub summary: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            revise_days: DEFAULT_REVISE_DAYS,
            summary: false,
        }
    }
}

/// The config keys this module owns.
pub const KEYS: [&str; 2] = ["revise_days", "summary"];

/// Reads `revise_days` and `summary` of the config.
pub fn settings(doc: &Doc) -> Result<Settings, ConfigError> {
    let days = doc.integer(
        "revise_days",
        0,
        u64::from(MAX_REVISE_DAYS),
        &format!("a number of days 0-{MAX_REVISE_DAYS} (0 turns revisions off)"),
    )?;
    let defaults = Settings::default();
    Ok(Settings {
        revise_days: days.map_or(defaults.revise_days, |d| d as u32),
        summary: doc.boolean("summary")?.unwrap_or(defaults.summary),
    })
}

/// The oldest day a pull of `last` revises.
pub fn window_start(last: Date, revise_days: u32) -> Date {
    last - time::Duration::days(i64::from(revise_days))
}

fn hash(parts: &[&str]) -> u64 {
    // SipHash with fixed keys: the same within a process, which is all the index needs.
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

/// What identifies a line within the revise window: its date and group keys (the data
/// without its numbers).
pub fn key_of(data: &Data) -> u64 {
    let keys = Data {
        amount: String::new(),
        unit: String::new(),
        metrics: Default::default(),
        ..data.clone()
    };
    hash(&[&serde_json::to_string(&keys).expect("plain strings always serialize")])
}

/// A fingerprint of everything a line says (amounts, units, keys).
pub fn value_of(data: &Data) -> u64 {
    hash(&[&serde_json::to_string(data).expect("plain strings always serialize")])
}

/// The data of a line that disappeared: its keys with every amount `"0"`.
pub fn zeroed(data: &Data) -> Data {
    let mut zero = data.clone();
    zero.amount = "0".into();
    for m in zero.metrics.values_mut() {
        m.amount = "0".into();
    }
    zero
}

/// Bytes of one slot of the index: key hash, value hash, revision, flags.
pub const SLOT: usize = 24;
const USED: u32 = 1;
/// Already all zero: disappearing again changes nothing.
const ZERO: u32 = 2;

/// Where the index's slots live: a Vec in tests, a file in state_dir for a pull
/// (snapshot.rs), so that the index takes no memory however many lines it knows.
pub trait Slots {
    fn get(&mut self, i: usize) -> Result<[u8; SLOT], String>;
    fn set(&mut self, i: usize, slot: [u8; SLOT]) -> Result<(), String>;
}

impl Slots for Vec<[u8; SLOT]> {
    fn get(&mut self, i: usize) -> Result<[u8; SLOT], String> {
        Ok(self[i])
    }
    fn set(&mut self, i: usize, slot: [u8; SLOT]) -> Result<(), String> {
        self[i] = slot;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Known {
    key: u64,
    value: u64,
    revision: u32,
    flags: u32,
}

impl Known {
    fn encode(&self) -> [u8; SLOT] {
        let mut b = [0u8; SLOT];
        b[..8].copy_from_slice(&self.key.to_le_bytes());
        b[8..16].copy_from_slice(&self.value.to_le_bytes());
        b[16..20].copy_from_slice(&self.revision.to_le_bytes());
        b[20..].copy_from_slice(&self.flags.to_le_bytes());
        b
    }

    fn decode(b: &[u8; SLOT]) -> Option<Known> {
        let word =
            |r: std::ops::Range<usize>| b[r].iter().rev().fold(0u64, |n, x| n << 8 | u64::from(*x));
        let flags = word(20..24) as u32;
        (flags & USED != 0).then(|| Known {
            key: word(0..8),
            value: word(8..16),
            revision: word(16..20) as u32,
            flags,
        })
    }
}

/// What was last delivered for the lines of the days being revised: an open-addressing
/// hash table of 24-byte slots in `S`, twice as many slots as lines; only a bit per slot
/// (seen in this pull) is kept in memory.
pub struct Index<S: Slots> {
    slots: S,
    mask: usize,
    seen: Vec<u64>,
}

/// Slots for an index of `lines` lines (a power of two, at least twice as many).
pub fn capacity_for(lines: usize) -> usize {
    (lines.saturating_mul(2)).next_power_of_two().max(16)
}

/// What to do with a pulled line of a day being revised.
/// What became of a known line the pull did not bring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vanished {
    /// It was pulled (or handled already).
    Seen,
    /// Gone, and zero already: kept as it is, with this revision.
    Keep(u32),
    /// Gone: send it with amount "0" as this revision.
    Revise(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Same numbers as last delivered: not sent; keeps this revision number.
    Unchanged(u32),
    /// New or changed: send with this revision number.
    Revise(u32),
}

impl<S: Slots> Index<S> {
    /// An empty index over `slots`, which hold `capacity_for(lines)` zeroed slots.
    pub fn new(slots: S, lines: usize) -> Index<S> {
        let capacity = capacity_for(lines);
        Index {
            slots,
            mask: capacity - 1,
            seen: vec![0; capacity.div_ceil(64)],
        }
    }

    /// The slot of `key`: its own, or the empty one where it would go.
    fn probe(&mut self, key: u64) -> Result<(usize, Option<Known>), String> {
        let mut i = (key as usize) & self.mask;
        for _ in 0..=self.mask {
            match Known::decode(&self.slots.get(i)?) {
                None => return Ok((i, None)),
                Some(k) if k.key == key => return Ok((i, Some(k))),
                Some(_) => i = (i + 1) & self.mask,
            }
        }
        Err("the revision index is full".into())
    }

    /// Marks slot `i` seen; true if it was already.
    fn see(&mut self, i: usize) -> bool {
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        let was = self.seen[word] & bit != 0;
        self.seen[word] |= bit;
        was
    }

    /// Adds a line as last delivered with `revision` (0: the first delivery).
    pub fn insert(&mut self, data: &Data, revision: u32) -> Result<(), String> {
        let key = key_of(data);
        let value = value_of(data);
        let zero = if value_of(&zeroed(data)) == value {
            ZERO
        } else {
            0
        };
        let (i, _) = self.probe(key)?;
        let known = Known {
            key,
            value,
            revision,
            flags: USED | zero,
        };
        self.slots.set(i, known.encode())
    }

    /// Judges a pulled line against what was last delivered for its key.
    pub fn judge(&mut self, data: &Data) -> Result<Verdict, String> {
        let value = value_of(data);
        Ok(match self.probe(key_of(data))? {
            (i, Some(k)) => {
                self.see(i);
                if k.value == value {
                    Verdict::Unchanged(k.revision)
                } else {
                    Verdict::Revise(k.revision + 1)
                }
            }
            (_, None) => Verdict::Revise(1),
        })
    }

    /// For a line last delivered as `data`, once the pull is over: was it seen, and if not,
    /// does it get a zero-amount revision (not when it is zero already)?
    pub fn vanished(&mut self, data: &Data) -> Result<Vanished, String> {
        let (i, Some(k)) = self.probe(key_of(data))? else {
            return Ok(Vanished::Seen);
        };
        if self.see(i) {
            return Ok(Vanished::Seen);
        }
        Ok(if k.flags & ZERO != 0 {
            Vanished::Keep(k.revision)
        } else {
            Vanished::Revise(k.revision + 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(date: &str, service: &str, amount: &str) -> Data {
        let line = crate::event::Line::service(date, service, "BlendedCost", amount, "USD");
        crate::event::Event::new(line, String::new()).data
    }

    #[test]
    fn changed_lines_are_revised_unchanged_ones_are_not() {
        let mut index = Index::new(vec![[0u8; SLOT]; capacity_for(8)], 8);
        index.insert(&data("2026-11-20", "EC2", "1.5"), 0).unwrap();
        index.insert(&data("2026-11-20", "S3", "2"), 2).unwrap();
        index.insert(&data("2026-11-21", "S3", "2"), 0).unwrap();
        assert_eq!(
            index.judge(&data("2026-11-20", "EC2", "1.5")).unwrap(),
            Verdict::Unchanged(0)
        );
        assert_eq!(
            index.judge(&data("2026-11-20", "EC2", "1.50")).unwrap(),
            Verdict::Revise(1)
        );
        assert_eq!(
            index.judge(&data("2026-11-20", "S3", "2.1")).unwrap(),
            Verdict::Revise(3)
        );
        // A unit is part of what a line says.
        let mut eur = data("2026-11-21", "S3", "2");
        eur.unit = "EUR".into();
        assert_eq!(index.judge(&eur).unwrap(), Verdict::Revise(1));
        // The same service on another day is another line.
        assert_eq!(
            index.judge(&data("2026-11-22", "S3", "2")).unwrap(),
            Verdict::Revise(1)
        );
    }

    #[test]
    fn a_full_table_of_colliding_slots_still_finds_every_line() {
        let n = 1000;
        let mut index = Index::new(vec![[0u8; SLOT]; capacity_for(n)], n);
        for i in 0..n {
            index
                .insert(&data("2026-11-20", &format!("S{i}"), &i.to_string()), 0)
                .unwrap();
        }
        for i in 0..n {
            let same = data("2026-11-20", &format!("S{i}"), &i.to_string());
            assert_eq!(index.judge(&same).unwrap(), Verdict::Unchanged(0));
        }
        assert_eq!(
            index.judge(&data("2026-11-20", "S1", "2")).unwrap(),
            Verdict::Revise(1)
        );
        assert_eq!(
            index.vanished(&data("2026-11-20", "S7", "7")).unwrap(),
            Vanished::Seen
        );
        // A table with no free slot says so instead of looping.
        let mut tiny = Index::new(vec![[0u8; SLOT]; 16], 8);
        for i in 0..16 {
            tiny.insert(&data("d", &format!("S{i}"), "1"), 0).unwrap();
        }
        assert!(tiny.judge(&data("d", "new", "1")).is_err());
    }

    #[test]
    fn appeared_lines_are_first_revisions_and_vanished_ones_go_to_zero_once() {
        let mut index = Index::new(vec![[0u8; SLOT]; capacity_for(8)], 8);
        index.insert(&data("2026-11-20", "EC2", "1.5"), 1).unwrap();
        index.insert(&data("2026-11-20", "S3", "2"), 0).unwrap();
        index.insert(&data("2026-11-20", "Gone", "0"), 4).unwrap();
        assert_eq!(
            index.judge(&data("2026-11-20", "New", "0.01")).unwrap(),
            Verdict::Revise(1)
        );
        assert_eq!(
            index.judge(&data("2026-11-20", "S3", "2")).unwrap(),
            Verdict::Unchanged(0)
        );
        // EC2 was not pulled again: one revision to zero; S3 was seen; Gone is zero already.
        let ec2 = data("2026-11-20", "EC2", "1.5");
        assert_eq!(index.vanished(&ec2).unwrap(), Vanished::Revise(2));
        assert_eq!(index.vanished(&ec2).unwrap(), Vanished::Seen);
        assert_eq!(
            index.vanished(&data("2026-11-20", "S3", "2")).unwrap(),
            Vanished::Seen
        );
        assert_eq!(
            index.vanished(&data("2026-11-20", "Gone", "0")).unwrap(),
            Vanished::Keep(4)
        );
        assert_eq!(zeroed(&data("2026-11-20", "EC2", "1.5")).amount, "0");
    }

    #[test]
    fn settings_default_bounds_and_errors_name_file_and_key() {
        let parse = |yaml: &str| {
            let map = serde_yaml::from_str(yaml).unwrap();
            settings(&Doc::new("c.yml", &map))
        };
        assert_eq!(parse("a: 1").unwrap(), Settings::default());
        assert_eq!(parse("a: 1").unwrap().revise_days, 3);
        assert_eq!(parse("revise_days: 0").unwrap().revise_days, 0);
        assert_eq!(parse("revise_days: 62").unwrap().revise_days, 62);
        assert_eq!(parse("revise_days: \"7\"").unwrap().revise_days, 7);
        assert!(parse("summary: true").unwrap().summary);
        for bad in [
            "revise_days: 63",
            "revise_days: -1",
            "revise_days: x",
            "revise_days: 1.5",
        ] {
            let e = parse(bad).unwrap_err().0;
            assert!(
                e.starts_with("c.yml: revise_days: expected a number of days 0-62"),
                "{e}"
            );
        }
        let e = parse("summary: yes please").unwrap_err().0;
        assert_eq!(
            e,
            "c.yml: summary: expected true or false, found \"yes please\""
        );
    }
}
