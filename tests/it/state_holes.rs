//! State that leaves no hole: undelivered days between delivered ones are caught up, and a rejection is never an exit 0.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support;
use crate::support::runner::stop;
use crate::support::{Event, FakeCostExplorer, FakeReceiver, Reply, Sandbox, days_ago};

const WITHIN: Duration = Duration::from_secs(30);

fn deliver_by_hand(sandbox: &Sandbox, day: &str) {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let receiver = FakeReceiver::start();
    sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", day])
        .run(WITHIN)
        .assert_code(0);
}

#[test]
fn days_between_delivered_ones_are_caught_up_in_one_request() {
    let sandbox = Sandbox::new("holes");
    // Days 6 and 5 ago delivered, then yesterday by hand: 4, 3 and 2 ago are owed.
    for n in [6, 5, 1] {
        deliver_by_hand(&sandbox, &days_ago(n));
    }
    let ce = FakeCostExplorer::with_groups(2, 100);
    let receiver = FakeReceiver::start();
    let running = sandbox
        .cmd(&ce.url(), &receiver.url(), "pull_hour: 0\n")
        .env("LOG_LEVEL", "debug")
        .arg("run")
        .spawn();
    support::wait_idle(&running, &receiver, 6, WITHIN);
    let run = stop(running);
    let bodies = ce.bodies();
    assert_eq!(bodies.len(), 1, "one range request\n{}", run.describe());
    assert_eq!(bodies[0]["TimePeriod"]["Start"], days_ago(4).as_str());
    assert_eq!(bodies[0]["TimePeriod"]["End"], days_ago(1).as_str());
    let days: BTreeSet<String> = receiver
        .accepted_events()
        .iter()
        .map(|e: &Event| e.line().date)
        .collect();
    let owed: BTreeSet<String> = [4, 3, 2].into_iter().map(days_ago).collect();
    assert_eq!(days, owed, "{}", run.describe());
    assert_eq!(
        receiver.accepted_count(),
        6,
        "nothing twice\n{}",
        run.describe()
    );
}

#[test]
fn delivered_days_inside_the_catch_up_range_are_left_out() {
    let sandbox = Sandbox::new("holes-inside");
    // Delivered 6, 4 and 1 ago: the range 5..2 ago is pulled once, day 4 is not sent again.
    for n in [6, 4, 1] {
        deliver_by_hand(&sandbox, &days_ago(n));
    }
    let ce = FakeCostExplorer::with_groups(2, 100);
    let receiver = FakeReceiver::start();
    let running = sandbox
        .cmd(&ce.url(), &receiver.url(), "pull_hour: 0\n")
        .env("LOG_LEVEL", "debug")
        .arg("run")
        .spawn();
    support::wait_idle(&running, &receiver, 6, WITHIN);
    let run = stop(running);
    assert_eq!(ce.bodies().len(), 1, "{}", run.describe());
    let days: BTreeSet<String> = receiver
        .accepted_events()
        .iter()
        .map(|e| e.line().date)
        .collect();
    let owed: BTreeSet<String> = [5, 3, 2].into_iter().map(days_ago).collect();
    assert_eq!(days, owed, "{}", run.describe());
    assert_eq!(receiver.accepted_count(), 6, "{}", run.describe());
}

#[test]
fn spooled_events_rejected_on_a_later_run_make_once_exit_1() {
    let sandbox = Sandbox::new("spool-rejected");
    let day = days_ago(3);
    // First run: the target is down, the events stay in the spool.
    let ce = FakeCostExplorer::with_groups(4, 100);
    let receiver = FakeReceiver::start_later();
    sandbox
        .cmd(&ce.url(), &receiver.url(), "send_timeout_s: 1\n")
        .args(["once", "--date", &day])
        .run(WITHIN)
        .assert_code(1);
    // Second run: the target rejects every one of them.
    receiver.set_default(Reply::status(413).body("too large"));
    receiver.go_live();
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", &day])
        .run(WITHIN);
    run.assert_code(1);
    assert!(
        !run.stderr_lines_with(&["rejected", "dead-letter.jsonl"])
            .is_empty(),
        "{}",
        run.describe()
    );
    let dead =
        std::fs::read_to_string(sandbox.state_dir().join("dead-letter.jsonl")).unwrap_or_default();
    assert_eq!(dead.lines().count(), 4, "{dead}\n{}", run.describe());
    assert_eq!(
        ce.request_count(),
        1,
        "the day was not pulled again\n{}",
        run.describe()
    );
}
