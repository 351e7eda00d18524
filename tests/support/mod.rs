//! Shared by the integration tests and the demo: a fake Cost Explorer, a fake receiver, and a runner for the built binary.

pub mod cost_explorer;
pub mod eventbridge;
pub mod http;
#[allow(dead_code)] // tests/image.rs and tests/scratch.rs
pub mod process;
pub mod receiver;
pub mod runner;
pub mod tls;

use std::thread;
use std::time::{Duration, Instant};

pub use cost_explorer::{CeOptions, FakeCostExplorer, Line};
pub use receiver::{Event, FakeReceiver, Mode, Received, Reply, assert_one_id_per_key};
pub use runner::{Cmd, Finished, Running, Sandbox};

/// The access key id every test secret uses and the fake Cost Explorer expects.
pub const ACCESS_KEY_ID: &str = "AKIDFAKEEXAMPLE12345";
/// Never allowed in any output (the runner checks every run).
pub const SECRET_ACCESS_KEY: &str = "fakeSecret/DoNotPrint+wJalrXUtnFEMIK7MDENGbPxRfiCY";
pub const SESSION_TOKEN: &str = "FakeSessionToken/DoNotPrint+IQoJb3JpZ2luX2VjEJr==";

/// `lines` in order, to compare as sets that keep duplicates.
pub fn sorted(mut lines: Vec<Line>) -> Vec<Line> {
    lines.sort();
    lines
}

/// The lines of every event `receiver` accepted, sorted.
pub fn sorted_lines(receiver: &FakeReceiver) -> Vec<Line> {
    sorted(receiver.accepted_events().iter().map(Event::line).collect())
}

/// What the service logs once it has nothing to do before its next pull.
pub const IDLE: &str = "sleeping until";

/// Asserts that `receiver` accepts `events` in all and that the service then goes idle,
/// each within `within`.
pub fn wait_idle(running: &Running, receiver: &FakeReceiver, events: usize, within: Duration) {
    assert!(
        receiver.wait_for_accepted(events, within),
        "{}",
        running.stderr()
    );
    assert!(
        running.wait_for_stderr(IDLE, within),
        "{}",
        running.stderr()
    );
}

/// Poll `condition` until it holds or `within` has passed; true if it held.
pub fn wait_until(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Today's date in UTC, as the binary sees it.
pub fn today_utc() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// `YYYY-MM-DD` of `n` days before today (UTC).
pub fn days_ago(n: i64) -> String {
    cost_explorer::format_date(today_utc() - time::Duration::days(n))
}

/// The day after `date` (`YYYY-MM-DD`).
pub fn next_day(date: &str) -> String {
    let day = cost_explorer::parse_date(date).expect("YYYY-MM-DD");
    cost_explorer::format_date(day.next_day().expect("date in range"))
}

/// True for a lower-case hex UUID version 8 (RFC 9562 variant): an id made from content.
pub fn is_uuid_v8(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    let lengths: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    lengths == [8, 4, 4, 4, 12]
        && id
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
        && parts[2].starts_with('8')
        && parts[3].starts_with(['8', '9', 'a', 'b'])
}
