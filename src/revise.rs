//! Last delivered lines of the revise window vs a new pull → which lines go out again, as which revision.
//!
//! Pure: lines are compared by two 64-bit hashes, one of the line's key (date and group
//! keys) and one of its event data (every number and unit), so the index of a day holds
//! 24 bytes per line, never the lines themselves.

use crate::config::ConfigError;
use crate::event::Data;
use serde_yaml::{Mapping, Value};
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

/// Reads `revise_days` and `summary` from a config file's mapping (`file` names it).
pub fn settings(map: &Mapping, file: &str) -> Result<Settings, ConfigError> {
    let mut s = Settings::default();
    match map.get("revise_days") {
        None | Some(Value::Null) => {}
        Some(v) => {
            let n = match v {
                Value::Number(n) => n.as_u64(),
                Value::String(t) => t.trim().parse::<u64>().ok(),
                _ => None,
            };
            s.revise_days = match n {
                Some(n) if n <= u64::from(MAX_REVISE_DAYS) => n as u32,
                _ => {
                    return Err(ConfigError(format!(
                        "{file}: revise_days: expected a number of days 0-{MAX_REVISE_DAYS} (0 turns revisions off), found {}",
                        serde_yaml::to_string(v).unwrap_or_default().trim()
                    )));
                }
            };
        }
    }
    match map.get("summary") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => s.summary = *b,
        Some(v) => {
            return Err(ConfigError(format!(
                "{file}: summary: expected true or false, found {}",
                serde_yaml::to_string(v).unwrap_or_default().trim()
            )));
        }
    }
    Ok(s)
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Known {
    key: u64,
    value: u64,
    revision: u32,
    /// Already all zero: disappearing again changes nothing.
    zero: bool,
    seen: bool,
}

/// What was last delivered for the lines of the days being revised.
#[derive(Debug, Default)]
pub struct Index {
    known: Vec<Known>,
    sorted: bool,
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

impl Index {
    /// Adds a line as last delivered with `revision` (0: the first delivery).
    pub fn insert(&mut self, data: &Data, revision: u32) {
        self.known.push(Known {
            key: key_of(data),
            value: value_of(data),
            revision,
            zero: value_of(&zeroed(data)) == value_of(data),
            seen: false,
        });
        self.sorted = false;
    }

    /// Room for `n` more lines, so that building the index never doubles it.
    pub fn reserve(&mut self, n: usize) {
        self.known.reserve_exact(n);
    }

    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    fn find(&mut self, key: u64) -> Option<&mut Known> {
        if !self.sorted {
            self.known.sort_unstable_by_key(|k| k.key);
            self.known.shrink_to_fit();
            self.sorted = true;
        }
        let i = self.known.binary_search_by_key(&key, |k| k.key).ok()?;
        Some(&mut self.known[i])
    }

    /// Judges a pulled line against what was last delivered for its key.
    pub fn judge(&mut self, data: &Data) -> Verdict {
        let value = value_of(data);
        match self.find(key_of(data)) {
            Some(k) => {
                k.seen = true;
                if k.value == value {
                    Verdict::Unchanged(k.revision)
                } else {
                    Verdict::Revise(k.revision + 1)
                }
            }
            None => Verdict::Revise(1),
        }
    }

    /// For a line last delivered as `data`, once the pull is over: was it seen, and if not,
    /// does it get a zero-amount revision (not when it is zero already)?
    pub fn vanished(&mut self, data: &Data) -> Vanished {
        let Some(k) = self.find(key_of(data)) else {
            return Vanished::Seen;
        };
        if k.seen {
            return Vanished::Seen;
        }
        k.seen = true;
        if k.zero {
            Vanished::Keep(k.revision)
        } else {
            Vanished::Revise(k.revision + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(date: &str, service: &str, amount: &str) -> Data {
        let line = crate::event::Line::service(date, service, "BlendedCost", amount, "USD");
        crate::event::Event::new(line, String::new(), String::new()).data
    }

    #[test]
    fn changed_lines_are_revised_unchanged_ones_are_not() {
        let mut index = Index::default();
        index.insert(&data("2026-11-20", "EC2", "1.5"), 0);
        index.insert(&data("2026-11-20", "S3", "2"), 2);
        index.insert(&data("2026-11-21", "S3", "2"), 0);
        assert_eq!(
            index.judge(&data("2026-11-20", "EC2", "1.5")),
            Verdict::Unchanged(0)
        );
        assert_eq!(
            index.judge(&data("2026-11-20", "EC2", "1.50")),
            Verdict::Revise(1)
        );
        assert_eq!(
            index.judge(&data("2026-11-20", "S3", "2.1")),
            Verdict::Revise(3)
        );
        // A unit is part of what a line says.
        let mut eur = data("2026-11-21", "S3", "2");
        eur.unit = "EUR".into();
        assert_eq!(index.judge(&eur), Verdict::Revise(1));
        // The same service on another day is another line.
        assert_eq!(
            index.judge(&data("2026-11-22", "S3", "2")),
            Verdict::Revise(1)
        );
    }

    #[test]
    fn appeared_lines_are_first_revisions_and_vanished_ones_go_to_zero_once() {
        let mut index = Index::default();
        index.insert(&data("2026-11-20", "EC2", "1.5"), 1);
        index.insert(&data("2026-11-20", "S3", "2"), 0);
        index.insert(&data("2026-11-20", "Gone", "0"), 4);
        assert_eq!(
            index.judge(&data("2026-11-20", "New", "0.01")),
            Verdict::Revise(1)
        );
        assert_eq!(
            index.judge(&data("2026-11-20", "S3", "2")),
            Verdict::Unchanged(0)
        );
        // EC2 was not pulled again: one revision to zero; S3 was seen; Gone is zero already.
        let ec2 = data("2026-11-20", "EC2", "1.5");
        assert_eq!(index.vanished(&ec2), Vanished::Revise(2));
        assert_eq!(index.vanished(&ec2), Vanished::Seen);
        assert_eq!(
            index.vanished(&data("2026-11-20", "S3", "2")),
            Vanished::Seen
        );
        assert_eq!(
            index.vanished(&data("2026-11-20", "Gone", "0")),
            Vanished::Keep(4)
        );
        assert_eq!(zeroed(&data("2026-11-20", "EC2", "1.5")).amount, "0");
    }

    #[test]
    fn settings_default_bounds_and_errors_name_file_and_key() {
        let parse = |yaml: &str| settings(&serde_yaml::from_str(yaml).unwrap(), "c.yml");
        assert_eq!(parse("a: 1").unwrap(), Settings::default());
        assert_eq!(parse("a: 1").unwrap().revise_days, 3);
        assert_eq!(parse("revise_days: 0").unwrap().revise_days, 0);
        assert_eq!(parse("revise_days: 62").unwrap().revise_days, 62);
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
            "c.yml: summary: expected true or false, found yes please"
        );
    }
}
