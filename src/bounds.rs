//! The hard bounds on what a peer can cost: pages per pull, bytes per answer, seconds per request and per pull.

use crate::http::Limits;
use std::time::Duration;
use time::Date;

/// Cost Explorer pages allowed per requested day (a real day of groups by service is one or two).
pub const PAGES_PER_DAY: usize = 50;

/// The most pages one pull of `first..=last` may take before it is stopped as a paging loop.
pub fn page_cap(first: Date, last: Date) -> usize {
    let days = (last - first).whole_days().max(0) as usize + 1;
    days.saturating_mul(PAGES_PER_DAY)
}

// The distinct lines one day may hold are answer::LINES_PER_DAY: the answer check keeps them.

/// Bytes read of one Cost Explorer answer page; a page past it fails the attempt.
pub const PAGE_BYTES: u64 = 2 * 1024 * 1024;
/// Bytes read of an error body or of a target's answer; the rest is not read.
pub const SMALL_BODY_BYTES: u64 = 64 * 1024;

/// One Cost Explorer request, from connect to the last byte of the answer.
pub const CE_DEADLINE: Duration = Duration::from_secs(60);
/// One request to the target, from connect to the last byte of the answer.
pub const TARGET_DEADLINE: Duration = Duration::from_secs(30);

/// Cost Explorer requests: the deadline, a page's bytes, an error's bytes.
pub const CE_LIMITS: Limits = Limits {
    deadline: CE_DEADLINE,
    max_body: PAGE_BYTES,
    max_error_body: SMALL_BODY_BYTES,
};
/// Target requests: the deadline; any answer only explains its status.
pub const TARGET_LIMITS: Limits = Limits {
    deadline: TARGET_DEADLINE,
    max_body: SMALL_BODY_BYTES,
    max_error_body: SMALL_BODY_BYTES,
};

/// STS requests (role assumption): small answers, the target's deadline.
pub const STS_LIMITS: Limits = Limits {
    deadline: TARGET_DEADLINE,
    max_body: SMALL_BODY_BYTES,
    max_error_body: SMALL_BODY_BYTES,
};

/// Attempts per Cost Explorer page before the pull is given up.
pub const ATTEMPTS_PER_PAGE: u32 = 6;

/// Time one pull may spend in failed Cost Explorer attempts and the waits between them.
pub const PULL_FAILING_BUDGET: Duration = Duration::from_secs(180);

/// Whether a pull that has spent `failing` in failed attempts and waits may wait `wait` and
/// try again: only when that attempt, even if it runs to `CE_DEADLINE`, ends within the budget.
pub fn may_retry(failing: Duration, wait: Duration) -> bool {
    failing + wait + CE_DEADLINE <= PULL_FAILING_BUDGET
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn the_page_cap_grows_with_the_days_asked() {
        assert_eq!(page_cap(date!(2022 - 06 - 13), date!(2022 - 06 - 13)), 50);
        assert_eq!(page_cap(date!(2022 - 06 - 01), date!(2022 - 06 - 14)), 700);
    }

    /// Against a Cost Explorer that answers nothing until each deadline, with the longest
    /// waits the backoff can choose, a pull gives up within 4 minutes (`once` then exits 1).
    #[test]
    fn a_pull_that_never_gets_an_answer_ends_within_four_minutes() {
        let longest_wait = Duration::from_secs(60); // pull.rs caps the backoff at 60 s
        let mut failing = CE_DEADLINE; // the first attempt, run to its deadline
        let mut attempts = 1;
        while attempts < ATTEMPTS_PER_PAGE && may_retry(failing, longest_wait) {
            failing += longest_wait + CE_DEADLINE;
            attempts += 1;
        }
        assert!(failing <= Duration::from_secs(240), "{failing:?}");
        assert!(attempts >= 2, "a slow answer still gets a second try");
        // Quick failures (throttling, 5xx) keep their retries: six attempts a page fit.
        let mut quick = Duration::ZERO;
        for attempt in 0..5u32 {
            let wait = Duration::from_secs(1 << attempt);
            assert!(may_retry(quick, wait), "attempt {attempt}");
            quick += wait + Duration::from_millis(200);
        }
    }
}
