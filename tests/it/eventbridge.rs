//! The binary against a fake EventBridge: PutEvents of at most 10 entries within 256 KiB, the CloudEvent as Detail, only failed entries sent again, refusals to the dead letters, whole-request throttling and refusals, send_timeout_s, check's DescribeEventBus, no Cost Explorer ledger entries.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::cost_explorer::{answer, day_result, service_name};
use crate::support::eventbridge::{
    DESCRIBE_EVENT_BUS, FakeEventBridge, PUT_EVENTS, error, throttled,
};
use crate::support::runner::stop;
use crate::support::{Cmd, FakeCostExplorer, Finished, IDLE, Line, Sandbox, sorted, wait_until};

const DAY: &str = "2022-06-13";
const DAY_END: &str = "2022-06-14";
const WITHIN: Duration = Duration::from_secs(30);
const ARN: &str = "arn:aws:events:eu-west-1:123456789012:event-bus/billing";

/// The binary with a config for this Cost Explorer and `eventbridge:<bus>`, its
/// EventBridge endpoint the fake (AWS_ENDPOINT_URL_EVENTBRIDGE).
fn cmd(
    sandbox: &Sandbox,
    ce: &FakeCostExplorer,
    eb: &FakeEventBridge,
    bus: &str,
    extra: &str,
) -> Cmd {
    sandbox
        .cmd(&ce.url(), &format!("eventbridge:{bus}"), extra)
        .env("AWS_ENDPOINT_URL_EVENTBRIDGE", &eb.url())
}

fn once(
    sandbox: &Sandbox,
    ce: &FakeCostExplorer,
    eb: &FakeEventBridge,
    bus: &str,
    extra: &str,
) -> Finished {
    cmd(sandbox, ce, eb, bus, extra)
        .args(["once", "--date", DAY])
        .run(WITHIN)
}

/// The billing line a CloudEvent carries.
fn line(event: &Value) -> Line {
    let field = |k: &str| event["data"][k].as_str().unwrap_or_default().to_string();
    Line {
        date: field("date"),
        service: field("service"),
        amount: field("amount"),
        unit: field("unit"),
    }
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

fn dead_letters(sandbox: &Sandbox) -> Vec<Value> {
    std::fs::read_to_string(sandbox.state_dir().join("dead-letter.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn status_json(sandbox: &Sandbox, ce: &FakeCostExplorer, eb: &FakeEventBridge) -> Value {
    let run = cmd(sandbox, ce, eb, "default", "")
        .args(["status", "--json"])
        .run(WITHIN);
    run.assert_code(0);
    serde_json::from_str(&run.stdout).unwrap()
}

#[test]
fn every_line_goes_out_once_in_requests_of_at_most_ten_with_the_event_as_detail() {
    let ce = FakeCostExplorer::with_groups(25, 100);
    let eb = FakeEventBridge::start("us-east-1");
    let sandbox = Sandbox::new("eb-ten");
    let run = once(&sandbox, &ce, &eb, "default", "");
    run.assert_code(0);
    eb.assert_no_violations();
    let puts = eb.puts();
    let sizes: Vec<usize> = puts.iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 5], "{}", run.describe());
    let events = eb.accepted();
    let got = sorted(events.iter().map(line).collect());
    assert_eq!(got, sorted(ce.expected_lines(DAY, DAY_END)));
    assert_eq!(ids(&events).into_iter().collect::<BTreeSet<_>>().len(), 25);
    for entry in puts.iter().flatten() {
        let detail = entry["Detail"].as_str().unwrap();
        let event: Value = serde_json::from_str(detail).unwrap();
        assert_eq!(entry["Source"], "cloud.aws.billing");
        assert_eq!(entry["Source"], event["source"]);
        assert_eq!(entry["DetailType"], event["type"]);
        assert_eq!(entry["EventBusName"], "default");
        let time = OffsetDateTime::parse(event["time"].as_str().unwrap(), &Rfc3339).unwrap();
        assert_eq!(entry["Time"], time.unix_timestamp());
        // The whole CloudEvent, money as the exact strings Cost Explorer sent.
        assert_eq!(event["specversion"], "1.0");
        assert!(event["estimated"].is_boolean(), "{event}");
        assert!(detail.contains(&format!("\"amount\":\"{}\"", line(&event).amount)));
    }
    // PutEvents calls are not Cost Explorer requests: the ledger holds only the one page.
    let status = status_json(&sandbox, &ce, &eb);
    assert_eq!(status["ce_requests_this_month"], 1, "{status}");
    assert_eq!(ce.request_count(), 1);
    assert_eq!(status["spool_events"], 0);
    assert_eq!(status["delivered_through"], DAY);
}

#[test]
fn a_partial_failure_sends_again_only_the_throttled_entry_and_dead_letters_the_refused_one() {
    let ce = FakeCostExplorer::with_groups(4, 100);
    let eb = FakeEventBridge::start("us-east-1");
    let (throttled_service, refused_service) = (service_name(1), service_name(2));
    let (t, r) = (throttled_service.clone(), refused_service.clone());
    eb.set_rule(move |event, before| {
        let service = event["data"]["service"].as_str().unwrap_or_default();
        if service == t && before == 0 {
            return Some(("ThrottlingException".into(), "Rate exceeded".into()));
        }
        (service == r).then(|| {
            let message = "Parameter Detail is not valid. Reason: no";
            ("InvalidArgument".to_string(), message.to_string())
        })
    });
    let sandbox = Sandbox::new("eb-partial");
    let run = once(&sandbox, &ce, &eb, "default", "");
    run.assert_code(1);
    eb.assert_no_violations();
    let puts = eb.puts();
    assert_eq!(puts.len(), 2, "{}", run.describe());
    assert_eq!(puts[0].len(), 4);
    assert_eq!(puts[1].len(), 1, "only the throttled entry is sent again");
    let again: Value = serde_json::from_str(puts[1][0]["Detail"].as_str().unwrap()).unwrap();
    assert_eq!(again["data"]["service"], throttled_service.as_str());
    let first: Vec<Value> = puts[0]
        .iter()
        .map(|e| serde_json::from_str(e["Detail"].as_str().unwrap()).unwrap())
        .collect();
    assert!(
        ids(&first).contains(&again["id"].as_str().unwrap().to_string()),
        "same id"
    );
    // Taken once each: all but the refused line.
    let mut want = ce.expected_lines(DAY, DAY_END);
    want.retain(|l| l.service != refused_service);
    assert_eq!(
        sorted(eb.accepted().iter().map(line).collect()),
        sorted(want)
    );
    let dead = dead_letters(&sandbox);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["status"], 200);
    assert_eq!(
        dead[0]["reason"],
        "EventBridge: InvalidArgument: Parameter Detail is not valid. Reason: no"
    );
    assert_eq!(
        dead[0]["event"]["data"]["service"],
        refused_service.as_str()
    );
    assert_eq!(
        run.stderr_lines_with(&["EventBridge rejected the event for", "InvalidArgument"])
            .len(),
        1,
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr_lines_with(&[
            "did not take 1 of 4 entries (ThrottlingException: Rate exceeded); retrying in"
        ])
        .len(),
        1,
        "{}",
        run.stderr
    );
    // Nothing is left to send: the day is done, its rejection told by the exit status.
    assert_eq!(status_json(&sandbox, &ce, &eb)["spool_events"], 0);
}

#[test]
fn a_throttled_or_failing_request_is_sent_again_whole_to_the_bus_of_the_arn() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    // The ARN's region signs the requests: the fake refuses any other scope.
    let eb = FakeEventBridge::start("eu-west-1");
    eb.script([
        throttled(),
        error(500, "InternalException", "Internal error"),
    ]);
    let sandbox = Sandbox::new("eb-whole");
    let run = once(&sandbox, &ce, &eb, ARN, "");
    run.assert_code(0);
    eb.assert_no_violations();
    let sent = eb.requests_for(PUT_EVENTS);
    assert_eq!(sent.len(), 3, "{}", run.describe());
    let bodies: Vec<Value> = sent.iter().map(|r| r.json().unwrap()).collect();
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "the same entries each time"
    );
    assert_eq!(bodies[0]["Entries"][0]["EventBusName"], ARN);
    assert_eq!(eb.accepted().len(), 3);
    assert_eq!(
        sorted(eb.accepted().iter().map(line).collect()),
        sorted(ce.expected_lines(DAY, DAY_END))
    );
    for problem in [
        "EventBridge refused the request (HTTP 400): ThrottlingException: Rate exceeded; retrying in",
        "EventBridge refused the request (HTTP 500): InternalException: Internal error; retrying in",
    ] {
        assert_eq!(run.stderr_lines_with(&[problem]).len(), 1, "{}", run.stderr);
    }
}

#[test]
fn an_event_too_large_for_an_entry_is_dead_lettered_and_large_ones_split_requests() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let huge = "H".repeat(300 * 1024);
    let large: Vec<String> = (0..3)
        // The key stands three times in an event (data, subject, partitionkey): entries of
        // about 110 KiB, two of which fit in 256 KiB and three do not.
        .map(|i| format!("{i}{}", "L".repeat(36 * 1024)))
        .collect();
    let mut groups: Vec<(Vec<&str>, &str)> = vec![(vec![huge.as_str()], "1.5")];
    groups.extend(large.iter().map(|s| (vec![s.as_str()], "0.25")));
    ce.push(answer(
        &json!({"ResultsByTime": [day_result(DAY, &groups)]}),
    ));
    let eb = FakeEventBridge::start("us-east-1");
    let sandbox = Sandbox::new("eb-large");
    let run = once(&sandbox, &ce, &eb, "default", "");
    run.assert_code(1);
    eb.assert_no_violations();
    let sizes: Vec<usize> = eb.puts().iter().map(Vec::len).collect();
    assert_eq!(
        sizes,
        [2, 1],
        "two entries of about 110 KiB fit in 256 KiB, three do not"
    );
    let taken: BTreeSet<String> = eb.accepted().iter().map(|e| line(e).service).collect();
    assert_eq!(taken, large.iter().cloned().collect());
    let dead = dead_letters(&sandbox);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["status"], 0, "never sent");
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("EventBridge: too large for EventBridge: ")
            && reason.ends_with(" bytes as a PutEvents entry, at most 262144; not sent"),
        "{reason}"
    );
    assert_eq!(dead[0]["event"]["data"]["service"], huge.as_str());
}

#[test]
fn a_refusal_of_the_whole_request_keeps_the_events_in_the_spool_until_it_is_fixed() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let eb = FakeEventBridge::start("us-east-1");
    let denied = "User: arn:aws:iam::123456789012:user/billing is not authorized to perform: events:PutEvents";
    eb.always(Some(error(400, "AccessDeniedException", denied)));
    let sandbox = Sandbox::new("eb-denied");
    let run = once(&sandbox, &ce, &eb, "default", "");
    run.assert_code(1);
    assert_eq!(
        eb.requests_for(PUT_EVENTS).len(),
        1,
        "a refusal is not retried"
    );
    assert!(
        dead_letters(&sandbox).is_empty(),
        "nothing is dead-lettered"
    );
    let line = format!(
        "EventBridge refused the request (HTTP 400): AccessDeniedException: {denied} (the rest stays in the spool)"
    );
    assert_eq!(run.stderr_lines_with(&[&line]).len(), 1, "{}", run.stderr);
    assert_eq!(status_json(&sandbox, &ce, &eb)["spool_events"], 3);

    eb.always(None);
    let fixed = once(&sandbox, &ce, &eb, "default", "");
    fixed.assert_code(0);
    assert_eq!(ce.request_count(), 1, "the spooled day is not pulled again");
    let sent: Vec<Value> = eb.requests_for(PUT_EVENTS)[0].json().unwrap()["Entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(e["Detail"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(ids(&eb.accepted()), ids(&sent), "the ids of the first try");
    assert_eq!(status_json(&sandbox, &ce, &eb)["delivered_through"], DAY);
}

#[test]
fn send_timeout_s_bounds_a_bus_that_keeps_throttling() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let eb = FakeEventBridge::start("us-east-1");
    eb.always(Some(throttled()));
    let sandbox = Sandbox::new("eb-timeout");
    let run = once(&sandbox, &ce, &eb, "default", "send_timeout_s: 2\n");
    run.assert_code(1);
    assert!(eb.requests_for(PUT_EVENTS).len() >= 2, "{}", run.describe());
    let gave_up = "ThrottlingException: Rate exceeded; giving up after send_timeout_s 2s (the rest stays in the spool)";
    assert_eq!(run.stderr_lines_with(&[gave_up]).len(), 1, "{}", run.stderr);
    assert_eq!(status_json(&sandbox, &ce, &eb)["spool_events"], 3);
}

#[test]
fn the_service_delivers_to_the_bus_and_goes_idle() {
    let ce = FakeCostExplorer::with_groups(12, 100);
    let eb = FakeEventBridge::start("us-east-1");
    let sandbox = Sandbox::new("eb-run");
    let running = cmd(&sandbox, &ce, &eb, "default", "pull_hour: 0\n")
        .env("LOG_LEVEL", "debug")
        .arg("run")
        .spawn();
    let all = wait_until(WITHIN, || eb.accepted().len() >= 12);
    assert!(
        all && running.wait_for_stderr(IDLE, WITHIN),
        "{}",
        running.stderr()
    );
    let finished = stop(running);
    eb.assert_no_violations();
    let sizes: Vec<usize> = eb.puts().iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 2], "{}", finished.describe());
}

#[test]
fn check_describes_the_bus_and_names_a_missing_one() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let eb = FakeEventBridge::start("eu-west-1");
    let sandbox = Sandbox::new("eb-check");
    let run = cmd(&sandbox, &ce, &eb, ARN, "").arg("check").run(WITHIN);
    run.assert_code(0);
    eb.assert_no_violations();
    let described = eb.requests_for(DESCRIBE_EVENT_BUS);
    assert_eq!(described.len(), 1);
    assert_eq!(described[0].json().unwrap(), json!({"Name": ARN}));
    assert!(
        eb.requests_for(PUT_EVENTS).is_empty(),
        "check sends no event"
    );
    let passed = format!(
        "target EventBridge bus {ARN} in eu-west-1 at {} (DescribeEventBus: {ARN})",
        eb.url()
    );
    assert_eq!(
        run.stderr_lines_with(&["check passed", &passed]).len(),
        1,
        "{}",
        run.stderr
    );

    let missing = "arn:aws:events:eu-west-1:123456789012:event-bus/nosuch";
    let run = cmd(&sandbox, &ce, &eb, missing, "")
        .arg("check")
        .run(WITHIN);
    run.assert_code(1);
    let failed = format!(
        "check failed: EventBridge refused the request (HTTP 400): ResourceNotFoundException: Event bus {missing} does not exist."
    );
    assert_eq!(run.stderr_lines_with(&[&failed]).len(), 1, "{}", run.stderr);
}

#[test]
fn a_bad_bus_or_endpoint_is_one_line_and_exit_2() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let eb = FakeEventBridge::start("us-east-1");
    let sandbox = Sandbox::new("eb-bad");
    let run = cmd(&sandbox, &ce, &eb, "my bus", "")
        .arg("check")
        .run(WITHIN);
    run.assert_code(2);
    let line = "config.yml: target: expected eventbridge:<bus name or ARN> such as eventbridge:default or eventbridge:arn:aws:events:us-east-1:123456789012:event-bus/billing, found \"eventbridge:my bus\"";
    assert_eq!(run.stderr_lines_with(&[line]).len(), 1, "{}", run.stderr);
    let run = sandbox
        .cmd(&ce.url(), "eventbridge:default", "")
        .env("AWS_ENDPOINT_URL_EVENTBRIDGE", "http://127.0.0.1:99999")
        .arg("check")
        .run(WITHIN);
    run.assert_code(2);
    assert_eq!(
        run.stderr_lines_with(&[
            "AWS_ENDPOINT_URL_EVENTBRIDGE: expected an http:// or https:// URL"
        ])
        .len(),
        1,
        "{}",
        run.stderr
    );
    assert_eq!(ce.request_count(), 0);
    assert!(eb.requests().is_empty());
}
