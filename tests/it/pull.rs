//! The binary against the fake Cost Explorer: request shape, paging, ranges, retried throttling and 5xx, error pages, bad credentials.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support;
use crate::support::cost_explorer::{self, CeOptions};
use crate::support::sorted;
use crate::support::{Event, FakeCostExplorer, FakeReceiver, Line, Reply, SESSION_TOKEN, Sandbox};

const DAY: &str = "2022-06-13";
const DAY_END: &str = "2022-06-14";
const WITHIN: Duration = Duration::from_secs(30);
/// A tighter deadline, for runs that end within seconds.
const SOON: Duration = Duration::from_secs(15);

/// The body the binary must send for [start, end) (without a page token).
fn expected_body(start: &str, end: &str, metric: &str) -> Value {
    json!({
        "TimePeriod": {"Start": start, "End": end},
        "Granularity": "DAILY",
        "Metrics": [metric],
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}]
    })
}

fn without_token(body: &Value) -> Value {
    let mut body = body.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("NextPageToken");
    }
    body
}

fn sorted_lines(events: &[Event]) -> Vec<Line> {
    let mut lines: Vec<Line> = events.iter().map(Event::line).collect();
    lines.sort();
    lines
}

/// The lines printed by `--target -`, decoded.
fn stdout_lines(stdout: &str) -> Vec<Line> {
    let mut lines: Vec<Line> = stdout
        .lines()
        .map(|l| {
            let event: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"));
            let data = &event["data"];
            Line {
                date: data["date"].as_str().expect("date").to_string(),
                service: data["service"].as_str().expect("service").to_string(),
                amount: data["amount"].as_str().expect("amount string").to_string(),
                unit: data["unit"].as_str().expect("unit").to_string(),
            }
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn paging_delivers_every_group_of_three_pages_and_echoes_the_token() {
    let ce = FakeCostExplorer::with_groups(10, 4);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("paging");
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    ce.assert_no_violations();

    let bodies = ce.bodies();
    assert_eq!(
        bodies.len(),
        3,
        "10 groups at 4 per page are 3 pages\n{}",
        run.describe()
    );
    let issued: Vec<Option<String>> = ce.served().iter().map(|s| s.next_token.clone()).collect();
    assert!(
        bodies[0].get("NextPageToken").is_none(),
        "first request has no token: {}",
        bodies[0]
    );
    assert_eq!(
        bodies[1]["NextPageToken"],
        json!(issued[0].clone().expect("token 1"))
    );
    assert_eq!(
        bodies[2]["NextPageToken"],
        json!(issued[1].clone().expect("token 2"))
    );
    assert!(issued[2].is_none());
    for body in &bodies {
        assert_eq!(
            without_token(body),
            expected_body(DAY, DAY_END, "BlendedCost")
        );
    }

    let events = receiver.accepted_events();
    assert_eq!(
        events.len(),
        10,
        "each group delivered once\n{}",
        run.describe()
    );
    assert_eq!(
        sorted_lines(&events),
        sorted(ce.expected_lines(DAY, DAY_END))
    );
}

#[test]
fn an_empty_final_token_ends_the_paging() {
    let ce = FakeCostExplorer::start(CeOptions {
        groups_per_day: 5,
        page_size: 3,
        empty_final_token: true,
        ..CeOptions::default()
    });
    let sandbox = Sandbox::new("empty-token");
    let run = sandbox
        .cmd(&ce.url(), "-", "")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    assert_eq!(ce.request_count(), 2, "{}", run.describe());
    assert_eq!(
        stdout_lines(&run.stdout),
        sorted(ce.expected_lines(DAY, DAY_END))
    );
}

#[test]
fn a_range_is_one_request_with_an_exclusive_end() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let sandbox = Sandbox::new("range");
    let run = sandbox
        .cmd(&ce.url(), "-", "")
        .args(["once", "--from", "2022-06-11", "--to", "2022-06-13"])
        .run(WITHIN);
    run.assert_code(0);
    ce.assert_no_violations();
    assert_eq!(
        ce.bodies(),
        vec![expected_body("2022-06-11", "2022-06-14", "BlendedCost")]
    );
    let lines = stdout_lines(&run.stdout);
    assert_eq!(lines.len(), 6, "{}", run.describe());
    assert_eq!(lines, sorted(ce.expected_lines("2022-06-11", "2022-06-14")));
    let dates: BTreeSet<&str> = lines.iter().map(|l| l.date.as_str()).collect();
    assert_eq!(
        dates,
        BTreeSet::from(["2022-06-11", "2022-06-12", "2022-06-13"])
    );
}

#[test]
fn end_dates_roll_over_months_years_and_leap_days() {
    for (args, start, end) in [
        (vec!["--date", "2022-12-31"], "2022-12-31", "2023-01-01"),
        (vec!["--date", "2023-02-28"], "2023-02-28", "2023-03-01"),
        (
            vec!["--from", "2024-02-28", "--to", "2024-03-01"],
            "2024-02-28",
            "2024-03-02",
        ),
    ] {
        let ce = FakeCostExplorer::with_groups(1, 100);
        let sandbox = Sandbox::new("rollover");
        let run = sandbox
            .cmd(&ce.url(), "-", "")
            .arg("once")
            .args(args)
            .run(WITHIN);
        run.assert_code(0);
        assert_eq!(ce.bodies(), vec![expected_body(start, end, "BlendedCost")]);
    }
}

#[test]
fn the_configured_metric_is_requested_and_read() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let sandbox = Sandbox::new("metric");
    let run = sandbox
        .cmd(&ce.url(), "-", "metric: UnblendedCost\n")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    assert_eq!(
        ce.bodies(),
        vec![expected_body(DAY, DAY_END, "UnblendedCost")]
    );
    assert_eq!(
        stdout_lines(&run.stdout),
        sorted(ce.expected_lines(DAY, DAY_END))
    );
}

#[test]
fn throttling_twice_then_success_is_delivered() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    ce.push(cost_explorer::throttling());
    ce.push(cost_explorer::limit_exceeded());
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("throttle");
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    ce.assert_no_violations();
    let bodies = ce.bodies();
    assert_eq!(
        bodies.len(),
        3,
        "two throttled attempts and one answered\n{}",
        run.describe()
    );
    assert!(
        bodies
            .iter()
            .all(|b| *b == expected_body(DAY, DAY_END, "BlendedCost"))
    );
    assert_eq!(
        sorted_lines(&receiver.accepted_events()),
        sorted(ce.expected_lines(DAY, DAY_END))
    );
}

#[test]
fn a_server_error_then_success_is_delivered() {
    let ce = FakeCostExplorer::with_groups(3, 2);
    ce.push(cost_explorer::internal_error());
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("5xx");
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    assert_eq!(
        ce.request_count(),
        3,
        "one 500, then two pages\n{}",
        run.describe()
    );
    assert_eq!(
        sorted_lines(&receiver.accepted_events()),
        sorted(ce.expected_lines(DAY, DAY_END))
    );
}

#[test]
fn an_html_502_once_is_retried() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    ce.push(cost_explorer::html_502());
    let sandbox = Sandbox::new("html-once");
    let run = sandbox
        .cmd(&ce.url(), "-", "")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    assert_eq!(ce.request_count(), 2);
    assert_eq!(
        stdout_lines(&run.stdout),
        sorted(ce.expected_lines(DAY, DAY_END))
    );
}

#[test]
fn a_persistent_html_502_is_reported_with_status_and_snippet() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    ce.always(cost_explorer::html_502());
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("html-always");
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", DAY])
        .run(Duration::from_secs(45));
    run.assert_code(1);
    assert!(
        ce.request_count() >= 2,
        "a 502 is retried\n{}",
        run.describe()
    );
    let reported = run.stderr_lines_with(&["502", "Bad Gateway"]);
    assert!(
        !reported.is_empty(),
        "expected a line with the status and a snippet of the page\n{}",
        run.describe()
    );
    assert_eq!(receiver.request_count(), 0);
}

#[test]
fn bad_credentials_exit_1_with_a_readable_line_and_no_retry() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    ce.always(cost_explorer::unrecognized_client());
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("badcreds");
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(1);
    assert_eq!(
        ce.request_count(),
        1,
        "credential errors are not retried\n{}",
        run.describe()
    );
    let lines = run.stderr_lines_with(&[
        "UnrecognizedClientException",
        "The security token included in the request is invalid",
        "403",
    ]);
    assert_eq!(lines.len(), 1, "one readable line\n{}", run.describe());
    assert_eq!(receiver.request_count(), 0);
}

#[test]
fn access_denied_and_invalid_signature_are_named_and_not_retried() {
    for (response, needles) in [
        (
            cost_explorer::access_denied(),
            [
                "AccessDeniedException",
                "is not authorized to perform: ce:GetCostAndUsage",
            ],
        ),
        (
            cost_explorer::invalid_signature(),
            [
                "InvalidSignatureException",
                "The request signature we calculated does not match",
            ],
        ),
    ] {
        let ce = FakeCostExplorer::with_groups(2, 100);
        ce.always(response);
        let sandbox = Sandbox::new("refused");
        let run = sandbox
            .cmd(&ce.url(), "-", "")
            .args(["once", "--date", DAY])
            .run(WITHIN);
        run.assert_code(1);
        assert_eq!(ce.request_count(), 1, "{}", run.describe());
        assert!(
            !run.stderr_lines_with(&needles).is_empty(),
            "{}",
            run.describe()
        );
        assert!(run.stdout.is_empty(), "{}", run.describe());
    }
}

#[test]
fn check_passes_with_one_signed_call_and_names_a_refusal() {
    let ce = FakeCostExplorer::with_groups(2, 1);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("check");
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .arg("check")
        .run(WITHIN);
    run.assert_code(0);
    ce.assert_no_violations();
    let bodies = ce.bodies();
    assert!(!bodies.is_empty(), "{}", run.describe());
    let yesterday = support::days_ago(1);
    assert_eq!(
        without_token(&bodies[0]),
        expected_body(&yesterday, &support::next_day(&yesterday), "BlendedCost")
    );

    let ce = FakeCostExplorer::with_groups(2, 1);
    ce.always(cost_explorer::unrecognized_client());
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .arg("check")
        .run(WITHIN);
    run.assert_code(1);
    assert_eq!(ce.request_count(), 1);
    assert!(
        !run.stderr_lines_with(&["UnrecognizedClientException"])
            .is_empty(),
        "{}",
        run.describe()
    );
}

#[test]
fn check_makes_one_cost_explorer_request_when_the_answer_has_three_pages() {
    let ce = FakeCostExplorer::with_groups(6, 2);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("check-pages");
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .arg("check")
        .run(SOON);
    run.assert_code(0);
    assert_eq!(ce.request_count(), 1, "{}", run.describe());
    assert!(
        ce.served()[0].next_token.is_some(),
        "the answer had more pages"
    );
    let methods: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.request.method.clone())
        .collect();
    assert_eq!(methods, ["OPTIONS"], "no event is sent");
}

/// `check` asks the target with OPTIONS (no side effects) and says what it answered.
#[test]
fn check_says_what_the_target_answered_to_options() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let receiver = FakeReceiver::start();
    receiver.set_default(Reply::status(405));
    let sandbox = Sandbox::new("check-target");
    let run = sandbox
        .cmd(&ce.url(), &receiver.url_with("/events"), "")
        .arg("check")
        .run(SOON);
    run.assert_code(0);
    let passed = run.stderr_lines_with(&["INFO check passed: Cost Explorer at "]);
    assert_eq!(passed.len(), 1, "{}", run.describe());
    assert!(
        passed[0].ends_with(&format!(
            "; target {} answered OPTIONS with HTTP 405",
            receiver.url_with("/events")
        )),
        "{}",
        run.describe()
    );
    let seen = receiver.received();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].request.method.as_str(), seen[0].request.path()),
        ("OPTIONS", "/events")
    );
    assert!(seen[0].request.body.is_empty());

    // A 404 may be a wrong path: said, though OPTIONS alone does not prove it.
    receiver.set_default(Reply::status(404));
    let run = sandbox
        .cmd(&ce.url(), &receiver.url_with("/wrong"), "")
        .arg("check")
        .run(SOON);
    run.assert_code(0);
    assert_eq!(
        run.stderr_lines_with(&[
            "WARN the target answered OPTIONS with HTTP 404",
            "check the path of target"
        ])
        .len(),
        1,
        "{}",
        run.describe()
    );
}

#[test]
fn check_fails_when_the_target_cannot_be_reached_and_names_it() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    // A loopback port with nothing listening: refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let dead = format!("http://user:pw@{address}/hook?token=t0k");
    let sandbox = Sandbox::new("check-dead");
    let run = sandbox.cmd(&ce.url(), &dead, "").arg("check").run(SOON);
    run.assert_code(1);
    assert_eq!(ce.request_count(), 1, "Cost Explorer is checked too");
    let shown = format!("http://{address}/hook");
    let failed = run.stderr_lines_with(&["ERROR check failed: the target "]);
    assert_eq!(failed.len(), 1, "{}", run.describe());
    assert!(
        failed[0].contains(&format!("the target {shown} cannot be reached: ")),
        "{}",
        run.describe()
    );
    assert!(!run.stderr.contains("pw@") && !run.stderr.contains("t0k"));
    assert!(run.stderr_lines_with(&["check passed"]).is_empty());
}

#[test]
fn a_session_token_is_sent_and_never_printed() {
    let ce = FakeCostExplorer::start(CeOptions {
        groups_per_day: 2,
        session_token: Some(SESSION_TOKEN.to_string()),
        ..CeOptions::default()
    });
    let sandbox = Sandbox::new("token");
    let config = sandbox.write_config(&ce.url(), "-", "");
    let secret = sandbox.write(
        "secret.yml",
        &format!(
            "{}session_token: \"{SESSION_TOKEN}\"\n",
            support::runner::secret_yaml()
        ),
    );
    let run = support::Cmd::new()
        .config(&config)
        .secret(&secret)
        .env("LOG_LEVEL", "debug")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    ce.assert_no_violations();
    assert_eq!(stdout_lines(&run.stdout).len(), 2);
}
