//! The binary against a Cost Explorer that lies: paging loops, answers that do not fit the request. None is delivered or recorded.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support;
use crate::support::cost_explorer::{answer, day_result, day_result_between};
use crate::support::{FakeCostExplorer, FakeReceiver, Finished, Sandbox};

const DAY: &str = "2022-06-13";
const WITHIN: Duration = Duration::from_secs(60);

/// `once` for `days` (one day or an inclusive range) against `ce`; the run and the receiver.
fn once(ce: &FakeCostExplorer, sandbox: &Sandbox, days: &[&str]) -> (Finished, FakeReceiver) {
    let receiver = FakeReceiver::start();
    let args: Vec<&str> = match days {
        [day] => vec!["once", "--date", day],
        [from, to] => vec!["once", "--from", from, "--to", to],
        _ => panic!("one day or a range"),
    };
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(args)
        .run(WITHIN);
    (run, receiver)
}

/// Nothing reached the target, nothing is recorded as delivered, nothing waits in the spool.
fn assert_nothing_delivered_or_recorded(
    run: &Finished,
    receiver: &FakeReceiver,
    sandbox: &Sandbox,
) {
    run.assert_code(1);
    assert_eq!(receiver.request_count(), 0, "{}", run.describe());
    let delivered =
        std::fs::read_to_string(sandbox.state_dir().join("delivered.json")).unwrap_or_default();
    assert!(
        !delivered.contains("2022-06"),
        "recorded: {delivered}\n{}",
        run.describe()
    );
    let spooled: Vec<_> = sandbox
        .state_files()
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains("spool"))
        .collect();
    assert!(spooled.is_empty(), "left in the spool: {spooled:?}");
}

fn page(results: Vec<Value>, token: Option<&str>) -> Value {
    let mut page = json!({"ResultsByTime": results});
    if let Some(t) = token {
        page["NextPageToken"] = json!(t);
    }
    page
}

fn token_of(body: &Value) -> Option<String> {
    body["NextPageToken"].as_str().map(str::to_string)
}

/// Each page continues the same day with a new service, so only the paging is wrong.
fn paging_page(n: usize, next: &str) -> support::http::Response {
    let service = format!("Service {n}");
    answer(&page(
        vec![day_result(DAY, &[(vec![service.as_str()], "1")])],
        Some(next),
    ))
}

#[test]
fn a_cycling_page_token_ends_the_pull_after_the_cycle() {
    // A → B → C → A: the third token handed back is one already seen.
    let ce = FakeCostExplorer::with_groups(1, 1);
    ce.answer_with(|body, n| {
        let next = match token_of(body).as_deref() {
            None => "A",
            Some("A") => "B",
            Some("B") => "C",
            _ => "A",
        };
        paging_page(n, next)
    });
    let sandbox = Sandbox::new("token-cycle");
    let (run, receiver) = once(&ce, &sandbox, &[DAY]);
    assert_nothing_delivered_or_recorded(&run, &receiver, &sandbox);
    assert_eq!(ce.request_count(), 4, "{}", run.describe());
    assert!(
        run.stderr.contains("Cost Explorer sent NextPageToken \"A\" a second time in one pull (page 4): it pages in a loop"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_token_that_points_to_itself_is_a_loop() {
    let ce = FakeCostExplorer::with_groups(1, 1);
    ce.answer_with(|_, n| paging_page(n, "SAME"));
    let sandbox = Sandbox::new("token-self");
    let (run, receiver) = once(&ce, &sandbox, &[DAY]);
    assert_nothing_delivered_or_recorded(&run, &receiver, &sandbox);
    assert_eq!(ce.request_count(), 2, "{}", run.describe());
}

#[test]
fn pages_without_end_stop_at_the_page_cap() {
    // Every token new: only the cap (50 pages a requested day) ends it.
    let ce = FakeCostExplorer::with_groups(1, 1);
    ce.answer_with(|_, n| paging_page(n, &format!("T{n}")));
    let sandbox = Sandbox::new("token-endless");
    let (run, receiver) = once(&ce, &sandbox, &["2022-06-13", "2022-06-14"]);
    assert_nothing_delivered_or_recorded(&run, &receiver, &sandbox);
    assert_eq!(ce.request_count(), 100, "{}", run.describe());
    assert!(
        run.stderr.contains("Cost Explorer sent more than 100 pages for 2022-06-13 to 2022-06-14 (50 a day is the bound)"),
        "{}",
        run.describe()
    );
}

/// A Cost Explorer that always sends `body`: the pull is retried like a 5xx (6 attempts),
/// then fails naming `reason`; nothing is delivered or recorded.
fn refused(tag: &str, days: &[&str], body: Value, reason: &str) {
    let ce = FakeCostExplorer::with_groups(1, 10);
    ce.always(answer(&body));
    let sandbox = Sandbox::new(tag);
    let (run, receiver) = once(&ce, &sandbox, days);
    assert_nothing_delivered_or_recorded(&run, &receiver, &sandbox);
    assert_eq!(
        ce.request_count(),
        6,
        "retried like a 5xx\n{}",
        run.describe()
    );
    let line = format!("Cost Explorer sent an answer that does not fit the request: {reason}");
    assert!(
        run.stderr.contains(&line),
        "expected {line:?}\n{}",
        run.describe()
    );
}

#[test]
fn an_answer_without_results_is_not_an_empty_day() {
    refused("no-results", &[DAY], json!({}), "no ResultsByTime");
    // The day was not recorded: a later pull with a true answer delivers it.
    let ce = FakeCostExplorer::with_groups(2, 10);
    let sandbox = Sandbox::new("no-results-then");
    ce.push(answer(&json!({})));
    let (run, receiver) = once(&ce, &sandbox, &[DAY]);
    run.assert_code(0);
    assert_eq!(receiver.accepted_count(), 2, "{}", run.describe());
}

#[test]
fn an_answer_with_fewer_days_than_asked_fails() {
    let body = page(vec![day_result("2022-06-11", &[(vec!["S3"], "1")])], None);
    refused(
        "short",
        &["2022-06-11", "2022-06-13"],
        body,
        "no result for 2 of the 3 day(s) asked: 2022-06-12, 2022-06-13",
    );
}

#[test]
fn a_result_outside_the_request_fails() {
    let body = page(
        vec![
            day_result(DAY, &[(vec!["S3"], "1")]),
            day_result("2022-06-20", &[(vec!["EC2"], "9")]),
        ],
        None,
    );
    refused(
        "outside",
        &[DAY],
        body,
        "a result for 2022-06-20, outside the 1 day(s) asked",
    );
}

#[test]
fn a_start_that_is_not_a_date_fails() {
    let body = page(
        vec![day_result_between(
            "../../etc/passwd",
            "2022-06-14",
            &[(vec!["S3"], "1")],
        )],
        None,
    );
    refused(
        "not-a-date",
        &[DAY],
        body,
        "a TimePeriod Start \"../../etc/passwd\" that is not a date",
    );
}

#[test]
fn empty_keys_or_two_keys_for_one_group_by_fail() {
    let body = page(vec![day_result(DAY, &[(vec![], "1")])], None);
    refused(
        "no-keys",
        &[DAY],
        body,
        "Keys [] on 2022-06-13, expected 1 non-empty key(s)",
    );
    let body = page(
        vec![day_result(DAY, &[(vec!["EC2", "eu-west-1"], "1")])],
        None,
    );
    refused(
        "two-keys",
        &[DAY],
        body,
        "Keys [\"EC2\", \"eu-west-1\"] on 2022-06-13",
    );
}

#[test]
fn the_same_service_twice_in_a_day_fails() {
    let body = page(
        vec![day_result(DAY, &[(vec!["EC2"], "1"), (vec!["EC2"], "2")])],
        None,
    );
    refused(
        "twice",
        &[DAY],
        body,
        "the line [\"EC2\"] twice on 2022-06-13",
    );
}

#[test]
fn an_amount_that_is_not_a_decimal_string_fails() {
    let body = page(vec![day_result(DAY, &[(vec!["EC2"], "12,5")])], None);
    refused(
        "bad-amount",
        &[DAY],
        body,
        "BlendedCost for [\"EC2\"] on 2022-06-13 is Amount \"12,5\"",
    );
    let mut body = page(vec![day_result(DAY, &[(vec!["EC2"], "1")])], None);
    body["ResultsByTime"][0]["Groups"][0]["Metrics"]["BlendedCost"]["Amount"] = json!(12.5);
    let ce = FakeCostExplorer::with_groups(1, 10);
    ce.always(answer(&body));
    let sandbox = Sandbox::new("number-amount");
    let (run, receiver) = once(&ce, &sandbox, &[DAY]);
    assert_nothing_delivered_or_recorded(&run, &receiver, &sandbox);
    assert!(
        run.stderr
            .contains("Cost Explorer sent an answer that is not a GetCostAndUsage result"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_day_repeated_on_a_later_page_fails() {
    // Page 1: the 13th and 14th; page 2: the 13th again.
    let ce = FakeCostExplorer::with_groups(1, 10);
    ce.answer_with(|body, _| match token_of(body) {
        None => answer(&page(
            vec![
                day_result("2022-06-13", &[(vec!["A"], "1")]),
                day_result("2022-06-14", &[]),
            ],
            Some("P2"),
        )),
        Some(_) => answer(&page(
            vec![day_result("2022-06-13", &[(vec!["B"], "1")])],
            None,
        )),
    });
    let sandbox = Sandbox::new("day-again");
    let (run, receiver) = once(&ce, &sandbox, &["2022-06-13", "2022-06-14"]);
    assert_nothing_delivered_or_recorded(&run, &receiver, &sandbox);
    assert!(
        run.stderr.contains("2022-06-13 answered twice"),
        "{}",
        run.describe()
    );
}

#[test]
fn an_empty_groups_list_is_a_true_empty_day() {
    let ce = FakeCostExplorer::with_groups(1, 10);
    ce.always(answer(&page(
        vec![
            day_result("2022-06-12", &[]),
            day_result(DAY, &[(vec!["EC2"], "1")]),
        ],
        None,
    )));
    let sandbox = Sandbox::new("empty-day");
    let (run, receiver) = once(&ce, &sandbox, &["2022-06-12", DAY]);
    run.assert_code(0);
    assert_eq!(receiver.accepted_count(), 1, "{}", run.describe());
    let delivered = std::fs::read_to_string(sandbox.state_dir().join("delivered.json")).unwrap();
    assert!(
        delivered.contains("2022-06-12") && delivered.contains(DAY),
        "{delivered}"
    );
}
