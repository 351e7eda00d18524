//! Backoff with full jitter, Retry-After, and which answers are worth another try.

use std::time::Duration;
use time::OffsetDateTime;

/// The first backoff step; each failure doubles it up to the cap.
pub const BASE: Duration = Duration::from_millis(200);

/// Full jitter: a uniform pick in [BASE/4, min(cap, BASE·2^attempt)], from `random`.
pub fn backoff(attempt: u32, cap: Duration, random: u64) -> Duration {
    let ceiling = BASE.saturating_mul(1u32 << attempt.min(20)).min(cap);
    let floor = (BASE / 4).min(ceiling);
    let span = (ceiling - floor).as_millis() as u64;
    floor + Duration::from_millis(if span == 0 { 0 } else { random % (span + 1) })
}

/// A random u64 for jitter.
pub fn random() -> u64 {
    getrandom::u64().unwrap_or(0x9e37_79b9_7f4a_7c15)
}

/// `Retry-After` as delta-seconds or an HTTP date, relative to `now`; capped by the caller.
pub fn retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    Some((when - now).try_into().unwrap_or(Duration::ZERO))
}

/// What a target's HTTP status means for one event.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Outcome {
    Delivered,
    /// Worth another try (408, 429, 5xx).
    Transient,
    Rejected,
    /// 3xx: the target URL is not the final one; a setup problem, not the event's.
    Redirect,
}

pub fn delivery_outcome(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        300..=399 => Outcome::Redirect,
        408 | 429 | 500.. => Outcome::Transient,
        _ => Outcome::Rejected,
    }
}

/// The wait before attempt `attempt + 1`: Retry-After when given (at least BASE, so
/// `Retry-After: 0` is no busy loop), else backoff; never above `cap`.
pub fn next_wait(attempt: u32, cap: Duration, retry_after: Option<Duration>) -> Duration {
    match retry_after {
        Some(d) => d.max(BASE).min(cap),
        None => backoff(attempt, cap, random()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn backoff_grows_exponentially_within_the_cap() {
        let cap = Duration::from_secs(300);
        for attempt in 0..30 {
            let ceiling = BASE.saturating_mul(1 << attempt.min(20)).min(cap);
            for r in [0, 1, 12345, u64::MAX] {
                let d = backoff(attempt, cap, r);
                assert!(
                    d >= BASE / 4 && d <= ceiling,
                    "attempt {attempt} r {r}: {d:?}"
                );
            }
        }
        assert_eq!(backoff(25, cap, 0), BASE / 4);
        assert!(backoff(25, cap, u64::MAX / 2 + 12) > Duration::from_secs(10));
        assert_eq!(
            backoff(3, Duration::from_secs(1), 999),
            backoff(3, Duration::from_secs(1), 999)
        );
    }

    #[test]
    fn jitter_spreads_the_waits() {
        let waits: std::collections::HashSet<_> = (0..50)
            .map(|_| backoff(10, Duration::from_secs(300), random()))
            .collect();
        assert!(waits.len() > 40);
    }

    #[test]
    fn retry_after_in_seconds_or_http_date() {
        let now = datetime!(2015-10-21 07:27:00 UTC);
        assert_eq!(retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:26:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(
            next_wait(0, Duration::from_secs(5), Some(Duration::from_secs(60))),
            Duration::from_secs(5)
        );
        assert_eq!(
            next_wait(0, Duration::from_secs(5), Some(Duration::ZERO)),
            BASE
        );
    }

    #[test]
    fn statuses_sort_into_delivered_retry_rejected() {
        assert_eq!(delivery_outcome(200), Outcome::Delivered);
        assert_eq!(delivery_outcome(204), Outcome::Delivered);
        for s in [408, 429, 500, 502, 503, 504] {
            assert_eq!(delivery_outcome(s), Outcome::Transient, "{s}");
        }
        for s in [301, 302, 307, 308] {
            assert_eq!(delivery_outcome(s), Outcome::Redirect, "{s}");
        }
        for s in [400, 401, 403, 404, 413, 415] {
            assert_eq!(delivery_outcome(s), Outcome::Rejected, "{s}");
        }
    }
}
