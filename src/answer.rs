//! Checks a Cost Explorer answer against the request it answers: every day once, nothing else, well-formed groups.
//!
//! Cost Explorer answers every day of the requested range with its own `TimePeriod`; a day's
//! groups may go on over a page break (the last day of one page is then the first of the
//! next), but a day never comes back once another day began. Anything else is an answer
//! that cannot be trusted, never an empty day.

use crate::costexplorer::{Answer, DayResult, Group};
use crate::log::peer;
use crate::schedule::{format_date, parse_date};
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use time::Date;

/// Distinct lines one day may hold (the duplicate check remembers each line's hash).
pub const LINES_PER_DAY: usize = 250_000;

/// What was asked: the days `first..=last`, how many GroupBy keys, which metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub first: Date,
    pub last: Date,
    pub group_by: usize,
    pub metrics: Vec<String>,
}

/// The days seen so far in one pull, page by page.
pub struct Check {
    shape: Shape,
    /// One flag per requested day: its result has been seen.
    seen: Vec<bool>,
    /// The last day seen and the hashes of its lines: only it may go on on the next page.
    open: Option<(usize, HashSet<u64>)>,
    hasher: RandomState,
}

impl Check {
    pub fn new(shape: Shape) -> Check {
        let days = (shape.last - shape.first).whole_days().max(0) as usize + 1;
        Check {
            shape,
            seen: vec![false; days],
            open: None,
            hasher: RandomState::new(),
        }
    }

    /// Checks one page. With `last` (no page follows) every requested day must have been
    /// seen. Nothing is remembered of a page that fails, so the page can be asked again.
    pub fn page(&mut self, answer: &Answer, last: bool) -> Result<(), String> {
        let Some(results) = &answer.results_by_time else {
            return Err("no ResultsByTime".into());
        };
        // Checked against the state as it was; applied only when the whole page passed.
        let mut staged: Vec<(usize, HashSet<u64>)> = Vec::new();
        for (i, result) in results.iter().enumerate() {
            let day = self.day_of(result)?;
            let goes_on = i == 0 && self.open.as_ref().is_some_and(|(d, _)| *d == day);
            if !goes_on && (self.seen[day] || staged.iter().any(|(d, _)| *d == day)) {
                return Err(format!("{} answered twice", format_date(self.date(day))));
            }
            let before = if goes_on {
                self.open.as_ref().map(|(_, lines)| lines)
            } else {
                None
            };
            let lines = self.groups(day, result, before)?;
            staged.push((day, lines));
        }
        if last {
            let missing: Vec<String> = (0..self.seen.len())
                .filter(|d| !self.seen[*d] && !staged.iter().any(|(s, _)| s == d))
                .map(|d| format_date(self.date(d)))
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "no result for {} of the {} day(s) asked: {}",
                    missing.len(),
                    self.seen.len(),
                    shorten(&missing)
                ));
            }
        }
        for (day, lines) in staged {
            self.seen[day] = true;
            match &mut self.open {
                Some((open, known)) if *open == day => known.extend(lines),
                _ => self.open = Some((day, lines)),
            }
        }
        Ok(())
    }

    /// The requested day a result is for: Start a date in the range, End the next day.
    fn day_of(&self, result: &DayResult) -> Result<usize, String> {
        let (start, end) = (&result.time_period.start, &result.time_period.end);
        let Some(date) = parse_date(start).filter(|d| format_date(*d) == *start) else {
            return Err(format!(
                "a TimePeriod Start {:?} that is not a date",
                peer(start)
            ));
        };
        if date < self.shape.first || date > self.shape.last {
            return Err(format!(
                "a result for {start}, outside the {} day(s) asked",
                self.seen.len()
            ));
        }
        if date.next_day().map(format_date).as_deref() != Some(end.as_str()) {
            return Err(format!(
                "a result for {start} ending {:?}, not the next day",
                peer(end)
            ));
        }
        Ok((date - self.shape.first).whole_days() as usize)
    }

    /// Checks a day's groups; returns the hashes of their keys.
    fn groups(
        &self,
        day: usize,
        result: &DayResult,
        before: Option<&HashSet<u64>>,
    ) -> Result<HashSet<u64>, String> {
        let date = &result.time_period.start;
        let Some(groups) = &result.groups else {
            return Err(format!("no Groups for {date}"));
        };
        let known = before.map_or(0, HashSet::len);
        if known + groups.len() > LINES_PER_DAY {
            return Err(format!(
                "more than {LINES_PER_DAY} lines for {}",
                format_date(self.date(day))
            ));
        }
        let mut lines = HashSet::with_capacity(groups.len());
        for group in groups {
            self.group(date, group)?;
            let hash = self.hasher.hash_one(&group.keys);
            if !lines.insert(hash) || before.is_some_and(|b| b.contains(&hash)) {
                return Err(format!(
                    "the line {} twice on {date}",
                    show_keys(&group.keys)
                ));
            }
        }
        Ok(lines)
    }

    fn group(&self, date: &str, group: &Group) -> Result<(), String> {
        let keys = &group.keys;
        if keys.len() != self.shape.group_by || keys.iter().any(|k| k.is_empty()) {
            return Err(format!(
                "Keys {} on {date}, expected {} non-empty key(s)",
                show_keys(keys),
                self.shape.group_by
            ));
        }
        for metric in &self.shape.metrics {
            let Some((_, value)) = group.metrics.iter().find(|(name, _)| name == metric) else {
                return Err(format!(
                    "no {metric} metric for {} on {date}",
                    show_keys(keys)
                ));
            };
            if !is_decimal(&value.amount) || value.unit.is_empty() {
                return Err(format!(
                    "{metric} for {} on {date} is Amount {:?} Unit {:?}, expected a decimal number and a unit",
                    show_keys(keys),
                    peer(&value.amount),
                    peer(&value.unit)
                ));
            }
        }
        Ok(())
    }

    fn date(&self, day: usize) -> Date {
        self.shape.first + time::Duration::days(day as i64)
    }
}

/// A decimal number as Cost Explorer writes amounts: `-12.5`, `0.0000001234`, `1.2E-7`.
pub fn is_decimal(s: &str) -> bool {
    fn digits(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
    }
    if s.len() > 100 {
        return false;
    }
    let s = s.strip_prefix('-').unwrap_or(s);
    let (mantissa, exponent) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['+', '-']).unwrap_or(e))),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(mantissa),
    };
    mantissa_ok && exponent.is_none_or(digits)
}

fn show_keys(keys: &[String]) -> String {
    let shown: Vec<String> = keys.iter().map(|k| format!("\"{}\"", peer(k))).collect();
    format!("[{}]", shown.join(", "))
}

fn shorten(days: &[String]) -> String {
    match days {
        [one] => one.clone(),
        [first, .., last] if days.len() > 5 => format!("{first} … {last}"),
        _ => days.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::costexplorer::parse_answer;
    use time::macros::date;

    fn shape(first: Date, last: Date) -> Shape {
        Shape {
            first,
            last,
            group_by: 1,
            metrics: vec!["BlendedCost".into()],
        }
    }

    fn answer(json: &str) -> Answer {
        parse_answer(json.as_bytes()).unwrap()
    }

    fn day(start: &str, end: &str, groups: &str) -> String {
        format!(
            r#"{{"TimePeriod":{{"Start":"{start}","End":"{end}"}},"Total":{{}},"Groups":[{groups}]}}"#
        )
    }

    fn group(keys: &str, amount: &str) -> String {
        format!(
            r#"{{"Keys":{keys},"Metrics":{{"BlendedCost":{{"Amount":{amount},"Unit":"USD"}}}}}}"#
        )
    }

    fn page(days: &[String], token: Option<&str>) -> String {
        let token = token.map_or(String::new(), |t| format!(r#","NextPageToken":"{t}""#));
        format!(r#"{{"ResultsByTime":[{}]{token}}}"#, days.join(","))
    }

    const D13: &str = "2022-06-13";
    const D14: &str = "2022-06-14";
    const D15: &str = "2022-06-15";
    const D16: &str = "2022-06-16";

    fn one_day(groups: &str) -> Result<(), String> {
        let mut check = Check::new(shape(date!(2022 - 06 - 13), date!(2022 - 06 - 13)));
        check.page(&answer(&page(&[day(D13, D14, groups)], None)), true)
    }

    #[test]
    fn a_well_formed_answer_passes_including_an_empty_day_and_a_day_over_a_page_break() {
        let mut check = Check::new(shape(date!(2022 - 06 - 13), date!(2022 - 06 - 15)));
        let a = group(r#"["A"]"#, r#""1.5""#);
        let b = group(r#"["B"]"#, r#""-0.0000001234""#);
        check
            .page(
                &answer(&page(&[day(D13, D14, &a), day(D14, D15, "")], Some("t"))),
                false,
            )
            .unwrap();
        check
            .page(
                &answer(&page(&[day(D14, D15, &a), day(D15, D16, &b)], Some("u"))),
                false,
            )
            .unwrap();
        check
            .page(&answer(&page(&[day(D15, D16, &a)], None)), true)
            .unwrap();
    }

    #[test]
    fn missing_results_or_days_are_a_failed_answer_not_an_empty_day() {
        let mut check = Check::new(shape(date!(2022 - 06 - 13), date!(2022 - 06 - 15)));
        assert_eq!(
            check.page(&answer("{}"), true).unwrap_err(),
            "no ResultsByTime"
        );
        let e = check
            .page(&answer(&page(&[day(D13, D14, "")], None)), true)
            .unwrap_err();
        assert_eq!(
            e,
            "no result for 2 of the 3 day(s) asked: 2022-06-14, 2022-06-15"
        );
        // Nothing of the failed page was kept: asked again, a full answer passes.
        let full = [day(D13, D14, ""), day(D14, D15, ""), day(D15, D16, "")];
        check.page(&answer(&page(&full, None)), true).unwrap();
    }

    #[test]
    fn a_day_outside_the_request_or_not_a_date_or_twice_fails() {
        let mut check = Check::new(shape(date!(2022 - 06 - 13), date!(2022 - 06 - 13)));
        let cases = [
            (
                page(&[day(D14, D15, "")], None),
                "outside the 1 day(s) asked",
            ),
            (page(&[day("2022-06-12", D13, "")], None), "outside"),
            (
                page(&[day("../../etc/passwd", D14, "")], None),
                "not a date",
            ),
            (page(&[day("2022-6-13", D14, "")], None), "not a date"),
            (page(&[day("2022-02-30", D14, "")], None), "not a date"),
            (page(&[day(D13, D15, "")], None), "not the next day"),
            (
                page(&[day(D13, D14, ""), day(D13, D14, "")], None),
                "2022-06-13 answered twice",
            ),
        ];
        for (json, expected) in cases {
            let e = check.page(&answer(&json), true).unwrap_err();
            assert!(e.contains(expected), "{json}: {e}");
        }
    }

    #[test]
    fn a_day_that_comes_back_after_another_day_is_a_duplicate() {
        let mut check = Check::new(shape(date!(2022 - 06 - 13), date!(2022 - 06 - 14)));
        check
            .page(
                &answer(&page(&[day(D13, D14, ""), day(D14, D15, "")], Some("t"))),
                false,
            )
            .unwrap();
        let e = check
            .page(&answer(&page(&[day(D13, D14, "")], None)), true)
            .unwrap_err();
        assert_eq!(e, "2022-06-13 answered twice");
    }

    #[test]
    fn keys_must_match_the_group_by_and_be_non_empty() {
        for (keys, shown) in [
            ("[]", "Keys []"),
            (r#"["A","B"]"#, r#"Keys ["A", "B"]"#),
            (r#"[""]"#, r#"Keys [""]"#),
        ] {
            let e = one_day(&group(keys, r#""1""#)).unwrap_err();
            assert!(
                e.starts_with(shown) && e.contains("expected 1 non-empty key(s)"),
                "{e}"
            );
        }
        // The number of keys comes from the request: two GroupBy keys want two.
        let mut two = Check::new(Shape {
            group_by: 2,
            ..shape(date!(2022 - 06 - 13), date!(2022 - 06 - 13))
        });
        let g = group(r#"["A","123456789012"]"#, r#""1""#);
        two.page(&answer(&page(&[day(D13, D14, &g)], None)), true)
            .unwrap();
    }

    #[test]
    fn the_same_line_twice_in_a_day_fails_also_over_a_page_break() {
        let a = group(r#"["A"]"#, r#""1""#);
        let e = one_day(&format!("{a},{a}")).unwrap_err();
        assert_eq!(e, r#"the line ["A"] twice on 2022-06-13"#);
        let mut check = Check::new(shape(date!(2022 - 06 - 13), date!(2022 - 06 - 13)));
        check
            .page(&answer(&page(&[day(D13, D14, &a)], Some("t"))), false)
            .unwrap();
        let e = check
            .page(&answer(&page(&[day(D13, D14, &a)], None)), true)
            .unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn every_requested_metric_must_be_a_decimal_string_with_a_unit() {
        assert!(one_day(&group(r#"["A"]"#, r#""12.294""#)).is_ok());
        for amount in [r#""""#, r#""abc""#, r#""1,5""#, r#""NaN""#, r#""1.""#] {
            let e = one_day(&group(r#"["A"]"#, amount)).unwrap_err();
            assert!(
                e.contains("expected a decimal number and a unit"),
                "{amount}: {e}"
            );
        }
        let no_unit = r#"{"Keys":["A"],"Metrics":{"BlendedCost":{"Amount":"1","Unit":""}}}"#;
        assert!(one_day(no_unit).is_err());
        let other = r#"{"Keys":["A"],"Metrics":{"UnblendedCost":{"Amount":"1","Unit":"USD"}}}"#;
        assert_eq!(
            one_day(other).unwrap_err(),
            r#"no BlendedCost metric for ["A"] on 2022-06-13"#
        );
        let mut both = Check::new(Shape {
            metrics: vec!["BlendedCost".into(), "UnblendedCost".into()],
            ..shape(date!(2022 - 06 - 13), date!(2022 - 06 - 13))
        });
        let g = group(r#"["A"]"#, r#""1""#);
        let e = both
            .page(&answer(&page(&[day(D13, D14, &g)], None)), true)
            .unwrap_err();
        assert!(e.starts_with("no UnblendedCost metric"), "{e}");
    }

    #[test]
    fn decimals() {
        for ok in [
            "0",
            "-12.5",
            "0.0000001234",
            "98765432109876543210.0123456789",
            "1.2E-7",
            "3e+2",
        ] {
            assert!(is_decimal(ok), "{ok}");
        }
        for bad in [
            "", "-", ".5", "5.", "1.2.3", "+1", "1e", "0x10", "١", " 1", "inf",
        ] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }

    #[test]
    fn peer_text_in_a_complaint_is_escaped() {
        let g = group(r#"["A\u001b[31m\r\nB","C"]"#, r#""1""#);
        let e = one_day(&g).unwrap_err();
        assert!(!e.chars().any(char::is_control), "{e:?}");
    }
}
