//! Breakdowns through the binary and the fake Cost Explorer: group_by, several metrics, filter, routing attributes, bad config.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::cost_explorer::{Generated, breakdown_lines};
use crate::support::{FakeCostExplorer, FakeReceiver, Sandbox};

const DAY: &str = "2022-06-13";
const DAY_END: &str = "2022-06-14";
const WITHIN: Duration = Duration::from_secs(30);

fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn entry(kind: &str, key: &str) -> (String, String) {
    (kind.to_string(), key.to_string())
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The value after `key$`, as the event must carry a tag or cost category.
fn after_dollar(key: &str) -> String {
    key.split_once('$').expect("key$value").1.to_string()
}

/// RFC 3986 percent-decoding of a header value.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("two hex digits");
            out.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8")
}

#[test]
fn two_keys_and_several_metrics_are_asked_in_one_request_and_carried_exactly() {
    let ce = FakeCostExplorer::with_groups(6, 4);
    let sandbox = Sandbox::new("breakdown-two");
    let config = "group_by: [LINKED_ACCOUNT, 'TAG:team']\n\
                  metric: [UnblendedCost, UsageQuantity, BlendedCost]\n\
                  filter:\n  Not:\n    Dimensions: {Key: RECORD_TYPE, Values: [Credit, Refund]}\n";
    let run = sandbox
        .cmd(&ce.url(), "-", config)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    ce.assert_no_violations();
    assert!(!run.stderr.contains("unknown key"), "{}", run.describe());
    let bodies = ce.bodies();
    assert_eq!(
        bodies.len(),
        2,
        "6 groups at 4 per page\n{}",
        run.describe()
    );
    for body in &bodies {
        assert_eq!(
            body["GroupBy"],
            json!([{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}, {"Type": "TAG", "Key": "team"}])
        );
        assert_eq!(
            body["Metrics"],
            json!(["UnblendedCost", "UsageQuantity", "BlendedCost"])
        );
        assert_eq!(
            body["Filter"],
            json!({"Not": {"Dimensions": {"Key": "RECORD_TYPE", "Values": ["Credit", "Refund"]}}}),
            "the filter goes out verbatim"
        );
    }
    let expected: Vec<Generated> = breakdown_lines(
        ce.options(),
        DAY,
        DAY_END,
        &[entry("DIMENSION", "LINKED_ACCOUNT"), entry("TAG", "team")],
        &strings(&["UnblendedCost", "UsageQuantity", "BlendedCost"]),
    );
    let events = events(&run.stdout);
    assert_eq!(events.len(), expected.len(), "{}", run.describe());
    let mut untagged = 0;
    for (event, line) in events.iter().zip(&expected) {
        let data = &event["data"];
        let team = after_dollar(&line.keys[1]);
        untagged += usize::from(team.is_empty());
        let metrics: serde_json::Map<String, Value> = line
            .metrics
            .iter()
            .map(|(m, a, u)| (m.clone(), json!({"amount": a, "unit": u})))
            .collect();
        assert_eq!(
            *data,
            json!({
                "vanceSource": "cloud.aws.billing",
                "vanceType": "aws.service.daily",
                "date": DAY,
                "linkedAccount": line.keys[0],
                "tags": {"team": team},
                "amount": line.metrics[0].1,
                "unit": line.metrics[0].2,
                "metrics": metrics,
            })
        );
        assert_eq!(event["linkedaccount"], json!(line.keys[0]));
        assert_eq!(event["tagteam"], json!(team));
        assert!(event.get("service").is_none(), "SERVICE is not grouped");
    }
    assert_eq!(untagged, 2, "untagged lines carry \"\"");
}

#[test]
fn tags_and_cost_categories_become_fields_and_binary_headers_encode_them() {
    let ce = FakeCostExplorer::with_groups(4, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("breakdown-binary");
    let run = sandbox
        .cmd(
            &ce.url(),
            &receiver.url(),
            "group_by: ['TAG:team', 'COST_CATEGORY:Teams']\n",
        )
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    ce.assert_no_violations();
    let expected = breakdown_lines(
        ce.options(),
        DAY,
        DAY_END,
        &[entry("TAG", "team"), entry("COST_CATEGORY", "Teams")],
        &strings(&["BlendedCost"]),
    );
    let received = receiver.accepted();
    assert_eq!(received.len(), expected.len(), "{}", run.describe());
    let mut quoted = 0;
    for (r, line) in received.iter().zip(&expected) {
        let team = after_dollar(&line.keys[0]);
        let category = after_dollar(&line.keys[1]);
        let data = r.request.json().unwrap();
        assert_eq!(data["tags"], json!({"team": team}));
        assert_eq!(data["costCategories"], json!({"Teams": category}));
        assert!(data.get("metrics").is_none(), "one metric: no metrics map");
        let header = r.request.header("ce-tagteam").expect("ce-tagteam");
        assert!(
            header
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b'"'),
            "{header:?}"
        );
        assert_eq!(percent_decode(header), team);
        quoted += usize::from(team.contains('"'));
        let header = r
            .request
            .header("ce-costcategoryteams")
            .expect("ce-costcategoryteams");
        assert_eq!(percent_decode(header), category);
    }
    assert!(
        quoted > 0,
        "a value with quotes and é went through a header"
    );
}

#[test]
fn the_default_config_keeps_the_seed_event_exactly() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("breakdown-default");
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    for r in receiver.accepted() {
        let mut ce_headers: Vec<String> = r
            .request
            .headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .filter(|k| k.starts_with("ce-"))
            .collect();
        ce_headers.sort();
        // The seed's attributes, the estimated one of the revisions, and the line's
        // subject and partition key.
        assert_eq!(
            ce_headers,
            [
                "ce-estimated",
                "ce-id",
                "ce-partitionkey",
                "ce-source",
                "ce-specversion",
                "ce-subject",
                "ce-time",
                "ce-type"
            ]
        );
        let data = r.request.json().unwrap();
        let keys: Vec<&String> = data.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "amount",
                "date",
                "service",
                "unit",
                "vanceSource",
                "vanceType"
            ]
        );
    }
    // group_by: [SERVICE] written out asks the same but adds the routing attribute.
    let run = sandbox
        .cmd(&ce.url(), "-", "group_by: [SERVICE]\n")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    for event in events(&run.stdout) {
        assert_eq!(event["service"], event["data"]["service"]);
    }
}

#[test]
fn bad_breakdown_keys_exit_2_naming_the_key_before_any_request() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let sandbox = Sandbox::new("breakdown-bad");
    for (config, key) in [
        ("group_by: [SERVICE, LINKED_ACCOUNT, AZ]\n", "group_by"),
        ("group_by: []\n", "group_by"),
        ("group_by: [REGIONS]\n", "group_by"),
        ("group_by: ['TAG:']\n", "group_by"),
        ("group_by: SERVICE\n", "group_by"),
        ("group_by: {SERVICE: 1}\n", "group_by"),
        ("metric: [BlendedCost, Blended]\n", "metric"),
        ("filter: [RECORD_TYPE]\n", "filter"),
    ] {
        let run = sandbox
            .cmd(&ce.url(), "-", config)
            .args(["once", "--date", DAY])
            .run(WITHIN);
        run.assert_code(2);
        let needle = format!(": {key}: expected ");
        assert!(run.stderr.contains(&needle), "{config}: {}", run.describe());
        assert_eq!(ce.request_count(), 0, "{config}: no paid call");
    }
}

#[test]
fn an_answer_short_of_a_group_key_or_a_metric_is_refused_not_delivered() {
    use crate::support::cost_explorer::{answer, day_result};
    // day_result groups carry only BlendedCost.
    for (config, groups, complaint) in [
        (
            "group_by: [SERVICE, LINKED_ACCOUNT]\n",
            vec![(vec!["Amazon S3"], "1")],
            "expected 2 non-empty key(s)",
        ),
        (
            "metric: [BlendedCost, UnblendedCost]\n",
            vec![(vec!["Amazon S3"], "1")],
            "no UnblendedCost metric",
        ),
    ] {
        let ce = FakeCostExplorer::with_groups(1, 100);
        let page = json!({"ResultsByTime": [day_result(DAY, &groups)]});
        ce.always(answer(&page));
        let sandbox = Sandbox::new("breakdown-short");
        let run = sandbox
            .cmd(&ce.url(), "-", config)
            .args(["once", "--date", DAY])
            .run(WITHIN);
        run.assert_code(1);
        assert!(run.stdout.is_empty(), "{config}: {}", run.describe());
        assert!(
            run.stderr.contains(complaint),
            "{config}: {}",
            run.describe()
        );
    }
}

#[test]
fn cost_explorers_own_refusal_of_a_filter_is_shown_as_it_came() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let sandbox = Sandbox::new("breakdown-filter-refused");
    let config = "filter:\n  Dimensions: {Key: RECORD_TYPE, Values: [Credit]}\n  Tags: {Key: team, Values: [web]}\n";
    let run = sandbox
        .cmd(&ce.url(), "-", config)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(1);
    assert!(
        run.stderr.contains(
            "Cost Explorer refused the request (HTTP 400): ValidationException: Expression has more than one roots."
        ),
        "{}",
        run.describe()
    );
    assert_eq!(ce.request_count(), 1, "a refusal is not retried");
    assert!(run.stdout.is_empty());
}
