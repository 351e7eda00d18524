//! Events a consumer can trust without our state: ids from content on any host and state_dir, subject and partition key, FOCUS columns, the schema command.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::support::{Cmd, Event, FakeCostExplorer, FakeReceiver, Reply, Sandbox, days_ago};

const DAY: &str = "2022-06-13";
const WITHIN: Duration = Duration::from_secs(30);

/// (service, amount) → id of every accepted event.
fn ids_by_line(events: &[Event]) -> BTreeMap<(String, String), String> {
    events
        .iter()
        .map(|e| ((e.service.clone(), e.amount.clone()), e.id.clone()))
        .collect()
}

#[test]
fn two_fresh_state_dirs_deliver_the_same_ids_in_either_mode() {
    let ce = FakeCostExplorer::with_groups(6, 4);
    let mut seen = Vec::new();
    for (tag, extra) in [
        ("ids-a", ""),
        ("ids-b", "content_mode: structured\n"),
        ("ids-c", "pull_hour: 7\nrevise_days: 0\n"),
    ] {
        let receiver = FakeReceiver::start();
        Sandbox::new(tag)
            .cmd(&ce.url(), &receiver.url(), extra)
            .args(["once", "--date", DAY])
            .run(WITHIN)
            .assert_code(0);
        let events = receiver.accepted_events();
        assert_eq!(events.len(), 6);
        seen.push(ids_by_line(&events));
    }
    assert_eq!(seen[0].len(), 6, "one id per line: {:?}", seen[0]);
    assert_eq!(
        seen[0], seen[1],
        "another state_dir, another mode: the same ids"
    );
    assert_eq!(
        seen[0], seen[2],
        "settings that do not change the event: the same ids"
    );
}

#[test]
fn a_revision_gets_a_new_id_and_the_same_revision_pulled_elsewhere_the_same_id() {
    let d2 = days_ago(2);
    let mut histories = Vec::new();
    for tag in ["revid-a", "revid-b"] {
        let ce = FakeCostExplorer::with_groups(3, 100);
        let receiver = FakeReceiver::start();
        let sandbox = Sandbox::new(tag);
        let run = |args: &[&str]| {
            sandbox
                .cmd(&ce.url(), &receiver.url(), "")
                .args(args)
                .run(WITHIN)
                .assert_code(0);
        };
        ce.revise(&d2, "Service 0001", "7.25");
        run(&["once", "--date", &d2]);
        ce.revise(&d2, "Service 0001", "8.5");
        run(&["revise"]);
        let received = receiver.accepted();
        let history: Vec<(String, Option<String>, String)> = received
            .iter()
            .map(|r| {
                let e = r.event().expect("an event");
                let revision = r.request.header("ce-revision").map(str::to_string);
                (e.service, revision, e.id)
            })
            .collect();
        assert_eq!(history.len(), 4, "{history:?}");
        histories.push(history);
    }
    assert_eq!(histories[0], histories[1], "the same facts, the same ids");
    let ids: BTreeSet<&String> = histories[0].iter().map(|(_, _, id)| id).collect();
    assert_eq!(ids.len(), 4, "the revision is a new id: {:?}", histories[0]);
    assert_eq!(histories[0][3].1.as_deref(), Some("1"));
}

#[test]
/// A damaged batch's days are pulled again above what may have been sent (issue 17: its
/// events may have reached the target as revision 0 with other numbers), so a consumer that
/// keeps the highest revision keeps these: every line as revision 1, under new ids, the
/// same on any host.
fn a_damaged_spool_pulled_again_goes_out_above_what_may_have_been_sent() {
    let ce = FakeCostExplorer::with_groups(4, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("damaged-ids");
    receiver.set_default(Reply::status(503));
    sandbox
        .cmd(&ce.url(), &receiver.url(), "send_timeout_s: 2\n")
        .args(["once", "--date", DAY])
        .run(WITHIN)
        .assert_code(1);
    let tried: BTreeSet<String> = receiver.all_events().into_iter().map(|e| e.id).collect();
    assert!(!tried.is_empty());
    let spool = std::fs::read_dir(sandbox.state_dir().join("spool"))
        .expect("a spool")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .expect("a spooled batch");
    std::fs::write(&spool, "\u{0}not one event\n").expect("damage the spool");

    receiver.set_default(Reply::ok());
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    assert!(
        !run.stderr_lines_with(&["corrupt"]).is_empty(),
        "{}",
        run.describe()
    );
    let sent: Vec<(Option<String>, String)> = receiver
        .accepted()
        .iter()
        .map(|r| {
            let revision = r.request.header("ce-revision").map(str::to_string);
            (revision, r.event().expect("an event").id)
        })
        .collect();
    assert_eq!(sent.len(), 4, "{}", run.describe());
    assert!(
        sent.iter()
            .all(|(r, id)| r.as_deref() == Some("1") && !tried.contains(id)),
        "pulled again after damage, every line goes out as revision 1: {sent:?}\n{}",
        run.describe()
    );
}

#[test]
fn format_focus_puts_focus_columns_with_the_served_metrics_in_data() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("focus");
    let extra = "format: focus\nbilling_account_id: \"123456789012\"\n\
                 group_by: [SERVICE, LINKED_ACCOUNT]\ndataschema: urn:example:billing\n";
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), extra)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    let body = &ce.bodies()[0];
    assert_eq!(
        body["Metrics"],
        serde_json::json!([
            "BilledCost",
            "NetAmortizedCost",
            "ListCost",
            "ContractedCost"
        ])
    );
    let served: BTreeMap<String, Vec<String>> = ce
        .expected_lines(DAY, "2022-06-14")
        .into_iter()
        .map(|l| (l.service, vec![l.amount]))
        .collect();
    let received = receiver.accepted();
    assert_eq!(received.len(), 3, "{}", run.describe());
    for r in &received {
        let data = r.request.json().expect("JSON data");
        let service = data["ServiceName"]
            .as_str()
            .expect("ServiceName")
            .to_string();
        assert_eq!(served[&service][0], data["BilledCost"], "{data}");
        for column in ["EffectiveCost", "ListCost", "ContractedCost"] {
            assert!(data[column].is_string(), "{column}: {data}");
        }
        assert_eq!(data["BillingCurrency"], "USD");
        assert_eq!(data["ChargePeriodStart"], "2022-06-13T00:00:00Z");
        assert_eq!(data["ChargePeriodEnd"], "2022-06-14T00:00:00Z");
        assert_eq!(data["BillingPeriodStart"], "2022-06-01T00:00:00Z");
        assert_eq!(data["BillingPeriodEnd"], "2022-07-01T00:00:00Z");
        assert_eq!(data["BillingAccountId"], "123456789012");
        assert!(data["SubAccountId"].is_string(), "{data}");
        assert_eq!(data["ServiceCategory"], "Other");
        assert_eq!(data["x_Estimated"], true);
        assert_eq!(data["x_Revision"], 0);
        assert_eq!(
            r.request.header("ce-dataschema"),
            Some("urn:example:billing")
        );
        let subject = r.request.header("ce-subject").expect("ce-subject");
        assert!(subject.starts_with("2022-06-13/Service%20"), "{subject}");
    }
}

#[test]
fn focus_events_wait_in_the_spool_and_go_out_as_they_were() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("focus-spool");
    let extra = "format: focus\nbilling_account_id: \"123456789012\"\n";
    receiver.set_default(Reply::status(503));
    sandbox
        .cmd(
            &ce.url(),
            &receiver.url(),
            &format!("{extra}send_timeout_s: 2\n"),
        )
        .args(["once", "--date", DAY])
        .run(WITHIN)
        .assert_code(1);
    let tried: Vec<(String, Vec<u8>)> = receiver
        .received()
        .iter()
        .map(|r| {
            (
                r.request.header("ce-id").unwrap().to_string(),
                r.request.body.clone(),
            )
        })
        .collect();
    receiver.set_default(Reply::ok());
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), extra)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    assert!(
        run.stderr_lines_with(&["corrupt"]).is_empty(),
        "{}",
        run.describe()
    );
    assert_eq!(
        ce.request_count(),
        1,
        "sent from the spool, not pulled again"
    );
    let sent: BTreeMap<String, Vec<u8>> = receiver
        .accepted()
        .iter()
        .map(|r| {
            (
                r.request.header("ce-id").unwrap().to_string(),
                r.request.body.clone(),
            )
        })
        .collect();
    assert_eq!(sent.len(), 3, "{}", run.describe());
    for (id, body) in tried {
        assert_eq!(
            sent.get(&id),
            Some(&body),
            "{id} went out as it was spooled"
        );
    }
}

#[test]
fn schema_prints_the_data_schema_without_target_or_credentials() {
    let sandbox = Sandbox::new("schema");
    let config = sandbox.write(
        "schema.yml",
        "summary: true\ngroup_by: [SERVICE, 'TAG:team']\n",
    );
    let run = Cmd::new().arg("schema").config(&config).run(WITHIN);
    run.assert_code(0);
    let doc: Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(
        doc["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let defs = doc["$defs"].as_object().expect("$defs");
    assert!(defs.contains_key("aws.service.daily"));
    assert!(defs.contains_key("aws.service.daily.summary"));
    assert_eq!(
        defs["aws.service.daily"]["properties"]["tags"]["required"],
        serde_json::json!(["team"])
    );
    let focus = Cmd::new()
        .args(["schema", "--format", "focus"])
        .config(&config)
        .run(WITHIN);
    focus.assert_code(0);
    assert!(
        focus.stdout.contains("\"BilledCost\""),
        "{}",
        focus.describe()
    );

    let bad = sandbox.write("bad.yml", "dataschema: schema.json\n");
    let run = Cmd::new().arg("schema").config(&bad).run(WITHIN);
    run.assert_code(2);
    assert!(
        !run.stderr_lines_with(&["dataschema: expected an absolute URI"])
            .is_empty(),
        "{}",
        run.describe()
    );
}
