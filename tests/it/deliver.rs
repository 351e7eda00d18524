//! The binary against the fake receiver: CloudEvents bytes in binary and structured mode, stdout lines, retries, exact amounts, any 2xx; the target URL's credentials and token in no log line.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::cost_explorer::TRICKY_AMOUNTS;
use crate::support::runner::stop;
use crate::support::{
    Cmd, Event, FakeCostExplorer, FakeReceiver, Finished, Line, Mode, Reply, Sandbox, is_uuid_v8,
};
use crate::support::{sorted, sorted_lines, wait_idle};

const DAY: &str = "2022-06-13";
const DAY_END: &str = "2022-06-14";
const WITHIN: Duration = Duration::from_secs(30);
/// A tighter deadline, for runs that end within seconds.
const SOON: Duration = Duration::from_secs(15);
/// Must never appear in any output when they are part of the target URL.
const URL_PASSWORD: &str = "s3cretpw";
const URL_TOKEN: &str = "t0ps3cret";

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

const DATA_KEYS: [&str; 6] = [
    "vanceSource",
    "vanceType",
    "date",
    "service",
    "amount",
    "unit",
];
const EVENT_KEYS: [&str; 10] = [
    "specversion",
    "id",
    "source",
    "type",
    "datacontenttype",
    "time",
    "estimated",
    "partitionkey",
    "subject",
    "data",
];

/// A CloudEvents time in RFC 3339, UTC, close to now.
fn assert_recent_utc(time: &str) {
    let parsed = OffsetDateTime::parse(time, &Rfc3339)
        .unwrap_or_else(|e| panic!("time {time:?} is not RFC 3339: {e}"));
    assert!(parsed.offset().is_utc(), "time {time:?} is not UTC");
    assert!(time.ends_with('Z'), "time {time:?} should end in Z");
    let age = OffsetDateTime::now_utc() - parsed;
    assert!(
        age.whole_seconds().abs() < 300,
        "time {time:?} is not the pull time"
    );
}

/// The data object carried by every event, exactly.
fn assert_data(data: &Value, line: &Line) {
    assert_eq!(keys(data), BTreeSet::from(DATA_KEYS), "data keys: {data}");
    assert_eq!(data["vanceSource"], "cloud.aws.billing");
    assert_eq!(data["vanceType"], "aws.service.daily");
    assert_eq!(data["date"], line.date.as_str());
    assert_eq!(data["service"], line.service.as_str());
    assert_eq!(
        data["amount"],
        line.amount.as_str(),
        "amount must be the exact string"
    );
    assert_eq!(data["unit"], line.unit.as_str());
}

#[test]
fn binary_mode_sends_ce_headers_and_the_data_as_body() {
    let ce = FakeCostExplorer::with_groups(8, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("binary");
    let run = sandbox
        .cmd(&ce.url(), &receiver.url_with("/in/events?tenant=a&x=1"), "")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);

    let received = receiver.received();
    assert_eq!(received.len(), 8, "{}", run.describe());
    let expected = ce.expected_lines(DAY, DAY_END);
    let mut ids = BTreeSet::new();
    let mut seen = Vec::new();
    for r in &received {
        let request = &r.request;
        assert!(r.accepted());
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.target, "/in/events?tenant=a&x=1",
            "target path and query kept"
        );
        assert_eq!(request.header("ce-specversion"), Some("1.0"));
        assert_eq!(request.header("ce-source"), Some("cloud.aws.billing"));
        assert_eq!(request.header("ce-type"), Some("aws.service.daily"));
        let id = request.header("ce-id").expect("ce-id");
        assert!(is_uuid_v8(id), "ce-id {id:?} is not a UUID v8");
        assert!(ids.insert(id.to_string()), "ce-id {id} used twice");
        assert_recent_utc(request.header("ce-time").expect("ce-time"));
        let content_type = request.header("content-type").expect("content-type");
        assert!(
            content_type == "application/json" || content_type.starts_with("application/json;"),
            "content-type {content_type:?}"
        );
        assert_eq!(
            request.header("ce-datacontenttype"),
            None,
            "binary mode maps it to Content-Type"
        );
        for name in ["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time"] {
            assert_eq!(request.headers_named(name).len(), 1, "{name} once");
        }

        let data = request.json().expect("body is JSON");
        let event = r.event().expect("decodes");
        assert_eq!(event.mode, Mode::Binary);
        let line = event.line();
        assert_data(&data, &line);
        let encoded = |s: &str| s.replace(' ', "%20");
        assert_eq!(
            request.header("ce-subject"),
            Some(encoded(&format!("{}/{}", line.date, line.service)).as_str())
        );
        assert_eq!(
            request.header("ce-partitionkey"),
            Some(encoded(&line.service).as_str())
        );
        // Money is a JSON string, byte for byte as Cost Explorer sent it.
        let raw = request.body_text();
        assert!(
            raw.contains(&format!("\"{}\"", line.amount)),
            "amount not a verbatim string in {raw}"
        );
        seen.push(line);
    }
    assert_eq!(sorted(seen), sorted(expected));
    let connections: BTreeSet<u64> = received.iter().map(|r| r.request.connection).collect();
    assert_eq!(
        connections.len(),
        1,
        "all events over one keep-alive connection"
    );
}

#[test]
fn structured_mode_sends_the_whole_event() {
    let ce = FakeCostExplorer::with_groups(8, 3);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("structured");
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "content_mode: structured\n")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);

    let received = receiver.received();
    assert_eq!(received.len(), 8, "{}", run.describe());
    let mut ids = BTreeSet::new();
    let mut seen = Vec::new();
    for r in &received {
        let request = &r.request;
        assert_eq!(request.method, "POST");
        assert_eq!(request.path(), "/");
        let content_type = request.header("content-type").expect("content-type");
        assert!(
            content_type.starts_with("application/cloudevents+json"),
            "content-type {content_type:?}"
        );
        let body = request.json().expect("body is JSON");
        assert_eq!(
            keys(&body),
            BTreeSet::from(EVENT_KEYS),
            "event keys: {body}"
        );
        assert_eq!(body["specversion"], "1.0");
        assert_eq!(body["source"], "cloud.aws.billing");
        assert_eq!(body["type"], "aws.service.daily");
        assert_eq!(body["datacontenttype"], "application/json");
        // The fake marks every day estimated, as Cost Explorer does for recent days.
        assert_eq!(body["estimated"], true);
        let id = body["id"].as_str().expect("id");
        assert!(is_uuid_v8(id), "id {id:?} is not a UUID v8");
        assert!(ids.insert(id.to_string()), "id {id} used twice");
        assert_recent_utc(body["time"].as_str().expect("time"));
        let event = r.event().expect("decodes");
        assert_eq!(event.mode, Mode::Structured);
        assert_data(&body["data"], &event.line());
        assert_eq!(body["subject"], format!("{}/{}", event.date, event.service));
        assert_eq!(body["partitionkey"], event.service);
        let raw = request.body_text();
        assert!(
            raw.contains(&format!("\"{}\"", event.amount)),
            "amount not verbatim in {raw}"
        );
        seen.push(event.line());
    }
    assert_eq!(sorted(seen), sorted(ce.expected_lines(DAY, DAY_END)));
}

#[test]
fn stdout_target_prints_one_structured_line_per_event() {
    let ce = FakeCostExplorer::with_groups(8, 5);
    let sandbox = Sandbox::new("stdout");
    let run = sandbox
        .cmd(&ce.url(), "http://127.0.0.1:9/never", "")
        .args(["once", "--date", DAY, "--target", "-"])
        .run(WITHIN);
    run.assert_code(0);
    let lines = run.stdout_lines();
    assert_eq!(lines.len(), 8, "{}", run.describe());
    let mut seen = Vec::new();
    let mut ids = BTreeSet::new();
    for line in lines {
        assert!(!line.contains('\n'));
        let event: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(
            keys(&event),
            BTreeSet::from(EVENT_KEYS),
            "event keys: {event}"
        );
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["source"], "cloud.aws.billing");
        assert_eq!(event["type"], "aws.service.daily");
        assert_eq!(event["datacontenttype"], "application/json");
        let id = event["id"].as_str().expect("id");
        assert!(is_uuid_v8(id) && ids.insert(id.to_string()));
        assert_recent_utc(event["time"].as_str().expect("time"));
        let data = &event["data"];
        let l = Line {
            date: data["date"].as_str().expect("date").to_string(),
            service: data["service"].as_str().expect("service").to_string(),
            amount: data["amount"].as_str().expect("amount").to_string(),
            unit: data["unit"].as_str().expect("unit").to_string(),
        };
        assert_data(data, &l);
        assert!(line.contains(&format!("\"{}\"", l.amount)));
        seen.push(l);
    }
    assert_eq!(sorted(seen), sorted(ce.expected_lines(DAY, DAY_END)));
}

#[test]
fn exact_amount_strings_survive_every_path() {
    // Eight groups on one day use every tricky amount once.
    let ce = FakeCostExplorer::with_groups(TRICKY_AMOUNTS.len(), 3);
    let expected: BTreeSet<String> = TRICKY_AMOUNTS.iter().map(|a| a.to_string()).collect();
    let got: BTreeSet<String> = ce
        .expected_lines(DAY, DAY_END)
        .into_iter()
        .map(|l| l.amount)
        .collect();
    assert_eq!(got, expected, "the generator covers every tricky amount");

    for mode in ["binary", "structured"] {
        let receiver = FakeReceiver::start();
        let sandbox = Sandbox::new("amounts");
        let run = sandbox
            .cmd(
                &ce.url(),
                &receiver.url(),
                &format!("content_mode: {mode}\n"),
            )
            .args(["once", "--date", DAY])
            .run(WITHIN);
        run.assert_code(0);
        let amounts: BTreeSet<String> = receiver
            .accepted_events()
            .into_iter()
            .map(|e| e.amount)
            .collect();
        assert_eq!(amounts, expected, "{mode}");
    }
}

#[test]
fn receiver_503_then_204_delivers_with_the_same_ids() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    receiver.script([Reply::status(503), Reply::status(503).body("busy")]);
    let sandbox = Sandbox::new("503");
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);

    let all = receiver.all_events();
    assert_eq!(
        all.len(),
        5,
        "two 503s, then three deliveries\n{}",
        run.describe()
    );
    let mut ids: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for event in &all {
        ids.entry(event.key()).or_default().insert(event.id.clone());
    }
    for (key, id_set) in &ids {
        assert_eq!(
            id_set.len(),
            1,
            "{key:?} was sent with different ids: {id_set:?}"
        );
    }
    let accepted = receiver.accepted_events();
    assert_eq!(accepted.len(), 3);
    assert_eq!(
        sorted(accepted.iter().map(Event::line).collect()),
        sorted(ce.expected_lines(DAY, DAY_END))
    );
    assert_eq!(all[0].id, all[1].id, "the retried event keeps its id");
    assert_eq!(all[1].id, all[2].id, "the retried event keeps its id");
}

#[test]
fn retry_after_is_honoured() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let receiver = FakeReceiver::start();
    receiver.script([Reply::status(429).header("Retry-After", "2")]);
    let sandbox = Sandbox::new("retry-after");
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "retry_max_backoff_s: 5\n")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    let received = receiver.received();
    assert_eq!(received.len(), 2, "{}", run.describe());
    let answered = received[0].answered_at.expect("answered");
    let gap = received[1].request.received_at.duration_since(answered);
    assert!(
        gap >= Duration::from_millis(1900),
        "retried after {gap:?}, Retry-After said 2 s"
    );
    assert_eq!(
        received[0].event().unwrap().id,
        received[1].event().unwrap().id
    );
}

#[test]
fn a_408_and_a_500_are_retried_too() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let receiver = FakeReceiver::start();
    receiver.script([Reply::status(408), Reply::status(500)]);
    let sandbox = Sandbox::new("408");
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    assert_eq!(receiver.request_count(), 3, "{}", run.describe());
    assert_eq!(receiver.accepted_count(), 1);
}

#[test]
fn any_2xx_is_delivered() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    receiver.script([Reply::status(200).body("ok"), Reply::status(202)]);
    let sandbox = Sandbox::new("2xx");
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    assert_eq!(
        receiver.request_count(),
        3,
        "no retries of 200/202\n{}",
        run.describe()
    );
}

#[test]
fn a_200_with_a_100_kb_body_is_delivered_once() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    receiver.set_default(Reply::status(200).body(&"x".repeat(100 * 1024)));
    let sandbox = Sandbox::new("big-body");
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "send_timeout_s: 3\n")
        .args(["once", "--date", DAY])
        .run(SOON);
    run.assert_code(0);
    assert_eq!(
        receiver.request_count(),
        3,
        "each event sent exactly once\n{}",
        run.describe()
    );
    assert_eq!(
        sorted_lines(&receiver),
        sorted(ce.expected_lines(DAY, DAY_END))
    );
}

/// `http://user:s3cretpw@127.0.0.1:PORT/hook?token=t0ps3cret`
fn url_with_secrets(port: u16) -> String {
    format!("http://user:{URL_PASSWORD}@127.0.0.1:{port}/hook?token={URL_TOKEN}")
}

fn assert_no_url_secrets(run: &Finished) {
    for secret in [URL_PASSWORD, URL_TOKEN] {
        assert!(
            !run.stderr.contains(secret) && !run.stdout.contains(secret),
            "{secret:?} from the target URL appeared in the output\n{}",
            run.describe()
        );
    }
}

/// The service (`run`) delivering to `target`, with yesterday due at once, logging at debug.
fn service(sandbox: &Sandbox, ce: &FakeCostExplorer, target: &str) -> Cmd {
    sandbox
        .cmd(&ce.url(), target, "pull_hour: 0\nretry_max_backoff_s: 1\n")
        .env("LOG_LEVEL", "debug")
        .arg("run")
}

#[test]
fn credentials_and_query_token_of_the_target_never_reach_the_logs_while_it_answers_503() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    receiver.script([Reply::status(503), Reply::status(503), Reply::status(503)]);
    let target = url_with_secrets(receiver.port());
    let sandbox = Sandbox::new("url-secrets-503");
    let run = sandbox
        .cmd(&ce.url(), &target, "")
        .env("LOG_LEVEL", "debug")
        .args(["once", "--date", DAY])
        .run(SOON);
    run.assert_code(0);
    assert_no_url_secrets(&run);
    assert_eq!(receiver.accepted_count(), 3, "{}", run.describe());
    assert!(
        receiver
            .received()
            .iter()
            .all(|r| r.request.target.contains(URL_TOKEN)),
        "the query string is still sent to the target"
    );

    // The service too, from its first line on.
    receiver.script([Reply::status(503), Reply::status(503)]);
    let service_sandbox = Sandbox::new("url-secrets-svc");
    let running = service(&service_sandbox, &ce, &target).spawn();
    wait_idle(&running, &receiver, 6, SOON);
    assert_no_url_secrets(&stop(running));
}

#[test]
fn credentials_and_query_token_of_the_target_never_reach_the_logs_when_nothing_listens() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let receiver = FakeReceiver::start_later();
    let sandbox = Sandbox::new("url-secrets-down");
    let run = sandbox
        .cmd(
            &ce.url(),
            &url_with_secrets(receiver.port()),
            "send_timeout_s: 2\n",
        )
        .env("LOG_LEVEL", "debug")
        .args(["once", "--date", DAY])
        .run(SOON);
    run.assert_code(1);
    assert!(
        !run.stderr_lines_with(&["127.0.0.1"]).is_empty(),
        "the failure names the target's host\n{}",
        run.describe()
    );
    assert_no_url_secrets(&run);
}

#[test]
fn check_names_the_target_without_its_credentials_or_query_token() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("url-secrets-check");
    let run = sandbox
        .cmd(&ce.url(), &url_with_secrets(receiver.port()), "")
        .arg("check")
        .run(SOON);
    run.assert_code(0);
    let passed = run.stderr_lines_with(&["check passed"]);
    assert_eq!(passed.len(), 1, "{}", run.describe());
    assert!(
        passed[0].contains(&format!("127.0.0.1:{}/hook", receiver.port())),
        "the success line still names the target\n{}",
        run.describe()
    );
    assert_no_url_secrets(&run);
}
