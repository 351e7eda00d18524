//! When to pull next and which billing days are due: pure functions of the UTC clock.

use std::collections::BTreeSet;
use time::format_description::well_known::Rfc3339;
use time::{Date, Duration, OffsetDateTime, Time};

/// `YYYY-MM-DD` exactly (four-digit year, no sign): a date every day arithmetic here can use.
/// By hand: every line of a pull has its date read a few times, and a parse by format
/// description costs a hundred times more.
pub fn parse_date(s: &str) -> Option<Date> {
    let b = s.trim().as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if !shape {
        return None;
    }
    let number =
        |r: std::ops::Range<usize>| b[r].iter().fold(0u16, |n, c| n * 10 + u16::from(c - b'0'));
    let month = time::Month::try_from(u8::try_from(number(5..7)).ok()?).ok()?;
    let day = u8::try_from(number(8..10)).ok()?;
    Date::from_calendar_date(i32::from(number(0..4)), month, day).ok()
}

pub fn format_date(d: Date) -> String {
    let (year, month, day) = d.to_calendar_date();
    format!("{year:04}-{:02}-{day:02}", u8::from(month))
}

/// RFC 3339 in UTC with a `Z`, to the microsecond, as in the seed's example event.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t
        .replace_nanosecond(t.nanosecond() / 1000 * 1000)
        .unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// The pull instant on day `d`.
fn pull_instant(d: Date, pull_hour: u8) -> OffsetDateTime {
    let hour = Time::from_hms(pull_hour.min(23), 0, 0).expect("hour 0-23");
    d.with_time(hour).assume_utc()
}

/// The first pull instant strictly after `now`.
pub fn next_pull(now: OffsetDateTime, pull_hour: u8) -> OffsetDateTime {
    let today = pull_instant(now.date(), pull_hour);
    if now < today {
        today
    } else {
        pull_instant(now.date() + Duration::days(1), pull_hour)
    }
}

/// The newest billing day whose pull time has passed: day D is due at D+1, pull_hour:00 UTC.
pub fn latest_due_day(now: OffsetDateTime, pull_hour: u8) -> Date {
    let today = now.date();
    if now >= pull_instant(today, pull_hour) {
        today - Duration::days(1)
    } else {
        today - Duration::days(2)
    }
}

/// The undelivered days the service owes now, oldest first: every day after the oldest
/// delivered one up to the latest due day, within the last `max_catchup` days, that is not
/// in `delivered`. With nothing delivered yet, only the latest due day, and only if it is
/// yesterday (a fresh install does not pull history).
pub fn missing_days(
    delivered: &BTreeSet<Date>,
    now: OffsetDateTime,
    pull_hour: u8,
    max_catchup: u32,
) -> Vec<Date> {
    let latest = latest_due_day(now, pull_hour);
    let Some(&oldest) = delivered.first() else {
        let yesterday = now.date().previous_day();
        return if Some(latest) == yesterday {
            vec![latest]
        } else {
            Vec::new()
        };
    };
    let window_start = catch_up_start(latest, max_catchup);
    days_between(oldest.max(window_start), latest)
        .filter(|d| *d > oldest && !delivered.contains(d))
        .collect()
}

/// The first day of the catch-up window that ends at `latest`.
fn catch_up_start(latest: Date, max_catchup: u32) -> Date {
    latest
        .checked_sub(Duration::days(i64::from(max_catchup.max(1)) - 1))
        .unwrap_or(Date::MIN)
}

/// `first..=last`, day by day (empty when first > last), never past the calendar's end.
fn days_between(first: Date, last: Date) -> impl Iterator<Item = Date> {
    std::iter::successors(Some(first), |d| d.next_day()).take_while(move |d| *d <= last)
}

/// What the service should pull now.
#[derive(Debug, PartialEq, Eq)]
pub struct Due {
    /// Inclusive range to pull in one request, if any; delivered days inside it are left out
    /// of the spool.
    pub pull: Option<(Date, Date)>,
    /// Undelivered days older than max_catchup_days (first and last), left for `once --from --to`.
    pub skipped: Option<(Date, Date)>,
}

/// The missing days as one range request, and the older holes that are not pulled.
pub fn due_days(
    now: OffsetDateTime,
    pull_hour: u8,
    delivered: &BTreeSet<Date>,
    max_catchup: u32,
) -> Due {
    let missing = missing_days(delivered, now, pull_hour, max_catchup);
    let pull = missing.first().zip(missing.last()).map(|(a, b)| (*a, *b));
    let skipped = delivered.first().and_then(|&oldest| {
        let window_start = catch_up_start(latest_due_day(now, pull_hour), max_catchup);
        let mut older =
            days_between(oldest, window_start.previous_day()?).filter(|d| !delivered.contains(d));
        let first = older.next()?;
        Some((first, older.last().unwrap_or(first)))
    });
    Due { pull, skipped }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn set(days: &[Date]) -> BTreeSet<Date> {
        days.iter().copied().collect()
    }

    #[test]
    fn next_pull_is_today_before_the_hour_and_tomorrow_after() {
        let now = datetime!(2024-03-10 01:59:59 UTC);
        assert_eq!(next_pull(now, 2), datetime!(2024-03-10 02:00 UTC));
        assert_eq!(
            next_pull(datetime!(2024-03-10 02:00 UTC), 2),
            datetime!(2024-03-11 02:00 UTC)
        );
    }

    #[test]
    fn next_pull_at_hours_0_and_23_and_across_month_and_year_ends() {
        assert_eq!(
            next_pull(datetime!(2023-12-31 23:30 UTC), 0),
            datetime!(2024-01-01 00:00 UTC)
        );
        assert_eq!(
            next_pull(datetime!(2023-12-31 22:59 UTC), 23),
            datetime!(2023-12-31 23:00 UTC)
        );
        assert_eq!(
            next_pull(datetime!(2023-12-31 23:00 UTC), 23),
            datetime!(2024-01-01 23:00 UTC)
        );
        assert_eq!(
            next_pull(datetime!(2024-02-28 05:00 UTC), 4),
            datetime!(2024-02-29 04:00 UTC)
        );
        assert_eq!(
            next_pull(datetime!(2023-02-28 05:00 UTC), 4),
            datetime!(2023-03-01 04:00 UTC)
        );
        assert_eq!(
            next_pull(datetime!(2024-04-30 00:00 UTC), 0),
            datetime!(2024-05-01 00:00 UTC)
        );
    }

    #[test]
    fn yesterday_is_due_once_the_pull_hour_passed() {
        assert_eq!(
            latest_due_day(datetime!(2024-01-01 02:00 UTC), 2),
            date!(2023 - 12 - 31)
        );
        assert_eq!(
            latest_due_day(datetime!(2024-01-01 01:59 UTC), 2),
            date!(2023 - 12 - 30)
        );
        assert_eq!(
            latest_due_day(datetime!(2024-03-01 00:00 UTC), 0),
            date!(2024 - 02 - 29)
        );
    }

    #[test]
    fn first_start_pulls_yesterday_only_after_the_hour() {
        let after = due_days(datetime!(2024-01-05 03:00 UTC), 2, &set(&[]), 14);
        assert_eq!(
            after.pull,
            Some((date!(2024 - 01 - 04), date!(2024 - 01 - 04)))
        );
        assert_eq!(
            due_days(datetime!(2024-01-05 01:00 UTC), 2, &set(&[]), 14).pull,
            None
        );
    }

    #[test]
    fn catch_up_covers_the_gap_in_one_range() {
        let due = due_days(
            datetime!(2024-01-05 03:00 UTC),
            2,
            &set(&[date!(2024 - 01 - 01)]),
            14,
        );
        assert_eq!(
            due,
            Due {
                pull: Some((date!(2024 - 01 - 02), date!(2024 - 01 - 04))),
                skipped: None
            }
        );
        let none = due_days(
            datetime!(2024-01-05 03:00 UTC),
            2,
            &set(&[date!(2024 - 01 - 04)]),
            14,
        );
        assert_eq!(none.pull, None);
        // The clock went back a day: nothing is pulled twice.
        let back = due_days(
            datetime!(2024-01-04 03:00 UTC),
            2,
            &set(&[date!(2024 - 01 - 04)]),
            14,
        );
        assert_eq!(back.pull, None);
    }

    #[test]
    fn gaps_older_than_max_catchup_are_skipped_and_named() {
        let due = due_days(
            datetime!(2024-01-31 03:00 UTC),
            2,
            &set(&[date!(2024 - 01 - 01)]),
            14,
        );
        assert_eq!(
            due.pull,
            Some((date!(2024 - 01 - 17), date!(2024 - 01 - 30)))
        );
        assert_eq!(
            due.skipped,
            Some((date!(2024 - 01 - 02), date!(2024 - 01 - 16)))
        );
    }

    #[test]
    fn holes_before_the_newest_delivered_day_are_caught_up_in_one_range() {
        // Days 6 and 5 ago delivered, then yesterday by hand: 4, 3 and 2 ago are owed.
        let now = datetime!(2024-01-10 03:00 UTC);
        let delivered = set(&[
            date!(2024 - 01 - 04),
            date!(2024 - 01 - 05),
            date!(2024 - 01 - 09),
        ]);
        assert_eq!(
            missing_days(&delivered, now, 2, 14),
            vec![
                date!(2024 - 01 - 06),
                date!(2024 - 01 - 07),
                date!(2024 - 01 - 08)
            ]
        );
        let due = due_days(now, 2, &delivered, 14);
        assert_eq!(
            due.pull,
            Some((date!(2024 - 01 - 06), date!(2024 - 01 - 08)))
        );
        assert_eq!(due.skipped, None);
        // Scattered holes: one range from the first to the last, delivered days inside are left out later.
        let delivered = set(&[
            date!(2024 - 01 - 01),
            date!(2024 - 01 - 03),
            date!(2024 - 01 - 06),
        ]);
        assert_eq!(
            missing_days(&delivered, now, 2, 14),
            vec![
                date!(2024 - 01 - 02),
                date!(2024 - 01 - 04),
                date!(2024 - 01 - 05),
                date!(2024 - 01 - 07),
                date!(2024 - 01 - 08),
                date!(2024 - 01 - 09)
            ]
        );
        assert_eq!(
            due_days(now, 2, &delivered, 14).pull,
            Some((date!(2024 - 01 - 02), date!(2024 - 01 - 09)))
        );
        // Nothing owed when every day since the oldest is delivered.
        let all: BTreeSet<Date> =
            days_between(date!(2024 - 01 - 01), date!(2024 - 01 - 09)).collect();
        assert_eq!(missing_days(&all, now, 2, 14), Vec::<Date>::new());
        assert_eq!(
            due_days(now, 2, &all, 14),
            Due {
                pull: None,
                skipped: None
            }
        );
    }

    #[test]
    fn holes_older_than_max_catchup_are_named_not_pulled() {
        let now = datetime!(2024-01-31 03:00 UTC);
        // Delivered: Jan 1, Jan 10, Jan 30. Window of 5 days: Jan 26-30.
        let delivered = set(&[
            date!(2024 - 01 - 01),
            date!(2024 - 01 - 10),
            date!(2024 - 01 - 30),
        ]);
        let due = due_days(now, 2, &delivered, 5);
        assert_eq!(
            due.pull,
            Some((date!(2024 - 01 - 26), date!(2024 - 01 - 29)))
        );
        assert_eq!(
            due.skipped,
            Some((date!(2024 - 01 - 02), date!(2024 - 01 - 25)))
        );
        // A fresh install before the pull hour owes nothing; a huge window does not overflow.
        assert_eq!(
            missing_days(&set(&[]), datetime!(2024-01-31 01:00 UTC), 2, 14),
            Vec::<Date>::new()
        );
        let far = set(&[date!(2000 - 01 - 01)]);
        assert_eq!(missing_days(&far, now, 2, 3650).len(), 3650);
    }

    #[test]
    fn dates_round_trip_and_times_are_utc_rfc3339() {
        assert_eq!(
            parse_date("2022-06-13").map(format_date).as_deref(),
            Some("2022-06-13")
        );
        assert_eq!(parse_date("2022-02-30"), None);
        for (text, day) in [
            ("2024-02-29", date!(2024 - 02 - 29)),
            ("0999-12-31", date!(0999 - 12 - 31)),
            (" 2000-01-01\n", date!(2000 - 01 - 01)),
        ] {
            assert_eq!(parse_date(text), Some(day), "{text:?}");
        }
        assert_eq!(format_date(date!(0999 - 12 - 31)), "0999-12-31");
        for odd in [
            "-9999-01-01",
            "+2022-06-13",
            "20222-06-13",
            "2022-6-13",
            "2022/06/13",
            "2022-13-01",
            "2022-00-10",
            "2022-06-00",
            "2023-02-29",
            "2022-06-31",
        ] {
            assert_eq!(parse_date(odd), None, "{odd}");
        }
        assert_eq!(
            rfc3339(datetime!(2022-06-14 07:05:55.777689123 UTC)),
            "2022-06-14T07:05:55.777689Z"
        );
    }
}
