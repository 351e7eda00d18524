//! When `run` wakes after a round, and what it says first: a pure decision over the round's outcome and the clock.

use super::Failure;
use crate::config::Config;
use crate::costexplorer::{CeError, ErrorKind};
use crate::schedule::{due_days, next_pull, rfc3339};
use std::collections::BTreeSet;
use std::time::Duration;
use time::{Date, OffsetDateTime};

/// The failures in a row after which the backoff stops growing (it is capped anyway).
const MAX_DOUBLINGS: u32 = 12;

/// What of the config the decision reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    pub pull_hour: u8,
    pub max_catchup_days: u32,
    /// The longest backoff after a transient failure (`retry_max_backoff_s`).
    pub max_backoff: Duration,
}

impl Schedule {
    pub fn of(config: &Config) -> Schedule {
        Schedule {
            pull_hour: config.pull_hour,
            max_catchup_days: config.max_catchup_days,
            max_backoff: Duration::from_secs(config.retry_max_backoff_s),
        }
    }
}

/// The next wake-up: when, the error line to log first, and the failures in a row so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wake {
    pub at: OffsetDateTime,
    pub error: Option<String>,
    pub failures: u32,
}

/// After a round that ended in `outcome` at `now`, with `failures` failed rounds before it
/// and `delivered` the days on record: None when the service stops. `random` picks the
/// jitter of a transient failure's backoff.
pub(crate) fn after_round(
    outcome: &Result<(), Failure>,
    now: OffsetDateTime,
    config: Schedule,
    delivered: &BTreeSet<Date>,
    failures: u32,
    random: u64,
) -> Option<Wake> {
    let wake = |at, error, failures| {
        Some(Wake {
            at,
            error,
            failures,
        })
    };
    match outcome {
        Ok(()) => {
            let due = due_days(now, config.pull_hour, delivered, config.max_catchup_days);
            // Days that fell due while a long delivery ran are pulled at once.
            let at = match due.pull {
                Some(_) => now,
                None => next_pull(now, config.pull_hour),
            };
            wake(at, None, 0)
        }
        Err(Failure::Stopped) => None,
        // Said once: the next try is next month (or after a restart with a raised cap).
        Err(e @ Failure::SpendCap(_)) => {
            let at = crate::status::next_pull(now, config.pull_hour, true);
            wake(at, Some(e.to_string()), failures)
        }
        Err(
            e @ (Failure::Undelivered(_)
            | Failure::CostExplorer(CeError {
                kind: ErrorKind::Transient,
                ..
            })),
        ) => {
            let failures = failures + 1;
            let cap = config.max_backoff;
            let wait = crate::retry::backoff(failures.min(MAX_DOUBLINGS), cap, random);
            let error = format!("{e}; trying again in {:.0}s", wait.as_secs_f32());
            wake(now + wait, Some(error), failures)
        }
        Err(e) => {
            let at = top_of_next_hour(now);
            wake(
                at,
                Some(format!("{e}; trying again at {}", rfc3339(at))),
                failures,
            )
        }
    }
}

fn top_of_next_hour(now: OffsetDateTime) -> OffsetDateTime {
    let hour = now
        .replace_minute(0)
        .and_then(|t| t.replace_second(0))
        .and_then(|t| t.replace_nanosecond(0))
        .unwrap_or(now);
    hour + time::Duration::hours(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spend::CapReached;
    use time::macros::{date, datetime};

    fn config() -> Schedule {
        Schedule {
            pull_hour: 2,
            max_catchup_days: 14,
            max_backoff: Duration::from_secs(60),
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-12-04 10:30:15 UTC);

    fn delivered_through(last: Date) -> BTreeSet<Date> {
        [last].into()
    }

    fn ce(kind: ErrorKind) -> Failure {
        Failure::CostExplorer(CeError {
            kind,
            message: "Cost Explorer said no".into(),
        })
    }

    #[test]
    fn after_a_good_round_it_sleeps_until_pull_hour_or_pulls_what_fell_due_at_once() {
        let c = config();
        let up_to_date = delivered_through(date!(2026 - 12 - 03));
        let wake = after_round(&Ok(()), NOW, c, &up_to_date, 5, 0).unwrap();
        assert_eq!(
            wake,
            Wake {
                at: datetime!(2026-12-05 02:00 UTC),
                error: None,
                failures: 0
            }
        );
        let behind = delivered_through(date!(2026 - 12 - 02));
        let wake = after_round(&Ok(()), NOW, c, &behind, 0, 0).unwrap();
        assert_eq!(wake.at, NOW, "yesterday fell due during the round");
    }

    #[test]
    fn a_stop_ends_the_loop() {
        assert_eq!(
            after_round(
                &Err(Failure::Stopped),
                NOW,
                config(),
                &BTreeSet::new(),
                0,
                0
            ),
            None
        );
    }

    #[test]
    fn transient_failures_back_off_with_jitter_up_to_the_cap() {
        let c = config();
        let days = delivered_through(date!(2026 - 12 - 02));
        for failure in [ce(ErrorKind::Transient), Failure::Undelivered(3)] {
            let outcome = Err(failure);
            let first = after_round(&outcome, NOW, c, &days, 0, 0).unwrap();
            assert_eq!(first.failures, 1);
            assert!(first.at > NOW && first.at <= NOW + Duration::from_millis(400));
            // Full jitter in [BASE/4, cap]: this pick is the top of the range, the cap.
            let top = (Duration::from_secs(60) - crate::retry::BASE / 4).as_millis() as u64;
            let many = after_round(&outcome, NOW, c, &days, 40, top).unwrap();
            assert_eq!(many.failures, 41);
            assert_eq!(many.at, NOW + Duration::from_secs(60));
            let said = many.error.unwrap();
            assert!(said.ends_with("; trying again in 60s"), "{said}");
        }
    }

    #[test]
    fn other_failures_wait_for_the_next_hour_and_the_cap_for_next_month() {
        let c = config();
        let days = BTreeSet::new();
        let wake = after_round(&Err(ce(ErrorKind::Permanent)), NOW, c, &days, 2, 0).unwrap();
        assert_eq!(
            wake,
            Wake {
                at: datetime!(2026-12-04 11:00 UTC),
                error: Some("Cost Explorer said no; trying again at 2026-12-04T11:00:00Z".into()),
                failures: 2
            }
        );
        let cap = Failure::SpendCap(CapReached {
            lost: false,
            max: 10,
            requests: 10,
            month: "2026-12".into(),
        });
        let wake = after_round(&Err(cap), NOW, c, &days, 0, 0).unwrap();
        assert_eq!(wake.at, datetime!(2027-01-01 02:00 UTC));
        assert!(wake.error.unwrap().contains("max_monthly_requests"));
    }
}
