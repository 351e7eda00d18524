//! Revisions: estimated days pulled again in the daily request, by hand with `revise`, and over a crash.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support;
use crate::support::runner::stop;
use crate::support::{
    Cmd, FakeCostExplorer, FakeReceiver, Received, Reply, Sandbox, days_ago, wait_until,
};

const WITHIN: Duration = Duration::from_secs(30);
use crate::support::IDLE;

/// (date, service, amount, revision, estimated) of an accepted binary-mode event.
type Seen = (String, String, String, Option<u32>, bool);

fn seen(r: &Received) -> Seen {
    let e = r.event().expect("an event");
    let revision = r
        .request
        .header("ce-revision")
        .map(|v| v.parse::<u32>().expect("ce-revision is an integer"));
    let estimated = match r.request.header("ce-estimated") {
        Some("true") => true,
        Some("false") => false,
        other => panic!("ce-estimated is {other:?}"),
    };
    (e.date, e.service, e.amount, revision, estimated)
}

fn accepted(receiver: &FakeReceiver) -> Vec<Seen> {
    receiver.accepted().iter().map(seen).collect()
}

fn revisions(receiver: &FakeReceiver) -> BTreeSet<Seen> {
    accepted(receiver)
        .into_iter()
        .filter(|s| s.3.is_some())
        .collect()
}

fn line(date: &str, service: &str, amount: &str, revision: Option<u32>, estimated: bool) -> Seen {
    (
        date.into(),
        service.into(),
        amount.into(),
        revision,
        estimated,
    )
}

fn service(sandbox: &Sandbox, ce: &FakeCostExplorer, receiver: &FakeReceiver) -> Cmd {
    sandbox
        .cmd(&ce.url(), &receiver.url(), "pull_hour: 0\n")
        .env("LOG_LEVEL", "debug")
        .arg("run")
}

fn amount(ce: &FakeCostExplorer, date: &str, service: &str) -> String {
    ce.expected_lines(date, &support::next_day(date))
        .into_iter()
        .find(|l| l.service == service)
        .expect("generated line")
        .amount
}

#[test]
fn the_daily_pull_revises_estimated_days_in_the_same_request_until_they_are_final() {
    let ce = FakeCostExplorer::with_groups(3, 2);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("revise-daily");
    let (d2, d1) = (days_ago(2), days_ago(1));
    // The line that vanishes below must not be 0 already (one day in eight the generator
    // gives it 0, and a zero that stays zero is no revision).
    ce.revise(&d2, "Service 0002", "7.25");
    sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", &d2])
        .run(WITHIN)
        .assert_code(0);
    let first = accepted(&receiver);
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|s| s.3.is_none() && s.4), "{first:?}");

    // AWS finishes metering: one service costs more, one is gone.
    ce.revise(&d2, "Service 0001", "99.5");
    ce.remove(&d2, "Service 0002");
    let running = service(&sandbox, &ce, &receiver).spawn();
    support::wait_idle(&running, &receiver, 8, WITHIN);
    let run = stop(running);
    let bodies = ce.bodies();
    assert_eq!(
        bodies.len(),
        2 + 3,
        "once (2 pages), then one range request of 3 pages\n{}",
        run.describe()
    );
    for body in &bodies[2..] {
        assert_eq!(
            body["TimePeriod"]["Start"],
            d2.as_str(),
            "{}",
            run.describe()
        );
        assert_eq!(body["TimePeriod"]["End"], days_ago(0).as_str());
    }
    assert_eq!(
        revisions(&receiver),
        BTreeSet::from([
            line(&d2, "Service 0001", "99.5", Some(1), true),
            line(&d2, "Service 0002", "0", Some(1), true),
        ])
    );
    let news: Vec<Seen> = accepted(&receiver)
        .into_iter()
        .filter(|s| s.0 == d1)
        .collect();
    assert_eq!(news.len(), 3);
    assert!(
        news.iter().all(|s| s.3.is_none()),
        "first deliveries have no revision: {news:?}"
    );

    // By hand: the day is now final and one amount moved again; only that line goes out.
    ce.revise(&d2, "Service 0001", "100");
    ce.finalize_through(&d2);
    sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .arg("revise")
        .run(WITHIN)
        .assert_code(0);
    assert_eq!(receiver.accepted_count(), 9);
    assert!(revisions(&receiver).contains(&line(&d2, "Service 0001", "100", Some(2), false)));

    // A final day is not pulled again: the next revise asks only for the day still estimated.
    ce.revise(&d2, "Service 0001", "101");
    let before = ce.request_count();
    let again = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .arg("revise")
        .run(WITHIN);
    again.assert_code(0);
    assert_eq!(receiver.accepted_count(), 9, "{}", again.describe());
    let asked: Vec<_> = ce.bodies()[before..]
        .iter()
        .map(|b| b["TimePeriod"]["Start"].clone())
        .collect();
    assert!(
        !asked.is_empty() && asked.iter().all(|s| *s == d1.as_str()),
        "{asked:?}"
    );
    ce.assert_no_violations();
}

#[test]
fn revise_preview_prints_revisions_and_records_nothing() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("revise-preview");
    let d2 = days_ago(2);
    sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", &d2])
        .run(WITHIN)
        .assert_code(0);
    ce.revise(&d2, "Service 0003", "7");
    let state_before = sandbox.delivery_state();
    for _ in 0..2 {
        let run = sandbox
            .cmd(&ce.url(), &receiver.url(), "")
            .args(["revise", "--target", "-"])
            .run(WITHIN);
        run.assert_code(0);
        let lines = run.stdout_lines();
        assert_eq!(lines.len(), 1, "{}", run.describe());
        let event: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(event["revision"], 1);
        assert_eq!(event["estimated"], true);
        assert_eq!(event["data"]["service"], "Service 0003");
        assert_eq!(event["data"]["amount"], "7");
    }
    assert_eq!(receiver.accepted_count(), 3);
    assert_eq!(
        sandbox.delivery_state(),
        state_before,
        "a preview writes no state"
    );
    // Revisions off (--days 0): nothing to pull.
    let before = ce.request_count();
    sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["revise", "--days", "0"])
        .run(WITHIN)
        .assert_code(0);
    assert_eq!(ce.request_count(), before);
}

#[test]
fn a_crash_after_pulling_neither_loses_nor_doubles_a_revision() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("revise-crash");
    let (d2, d1) = (days_ago(2), days_ago(1));
    sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", &d2])
        .run(WITHIN)
        .assert_code(0);
    ce.revise(&d2, "Service 0001", "5");

    // The service pulls the revision into the spool; the target is down; kill -9.
    receiver.set_default(Reply::status(503));
    let mut running = service(&sandbox, &ce, &receiver).spawn();
    let spool = sandbox.state_dir().join("spool");
    let batch = spool.join(format!("{d2}_{d1}.jsonl"));
    assert!(
        wait_until(WITHIN, || batch.exists() && receiver.request_count() > 3),
        "{}",
        running.stderr()
    );
    running.kill9();
    assert!(running.wait_for_exit(WITHIN).is_some());
    assert!(
        spool.join(format!("{d2}_{d1}.revise")).exists(),
        "the snapshot waits beside its batch"
    );

    // Back up: the spooled revision goes out once, with the id it was spooled with, and a
    // revise afterwards finds nothing new (the snapshot was promoted with the batch).
    receiver.set_default(Reply::ok());
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .arg("revise")
        .run(WITHIN);
    run.assert_code(0);
    let revised: Vec<Seen> = accepted(&receiver)
        .into_iter()
        .filter(|s| s.3.is_some())
        .collect();
    assert_eq!(
        revised,
        [line(&d2, "Service 0001", "5", Some(1), true)],
        "{}",
        run.describe()
    );
    assert_eq!(accepted(&receiver).iter().filter(|s| s.0 == d1).count(), 3);
    assert!(!spool.join(format!("{d2}_{d1}.revise")).exists());
}

#[test]
fn a_crash_before_the_batch_is_visible_keeps_the_old_snapshot() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("revise-torn");
    let (d2, d1) = (days_ago(2), days_ago(1));
    sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", &d2])
        .run(WITHIN)
        .assert_code(0);
    ce.revise(&d2, "Service 0001", "5");
    // What a crash between renaming the snapshot and renaming its batch leaves: a snapshot
    // that already says "5" was delivered, with no batch. Promoting it would lose the revision.
    let spool = sandbox.state_dir().join("spool");
    let kept = std::fs::read_to_string(
        sandbox
            .state_dir()
            .join("revise")
            .join(format!("{d2}.jsonl")),
    )
    .unwrap();
    let old = amount(&ce, &d2, "Service 0001");
    let torn = kept.replace(&format!("\"amount\":\"{old}\""), "\"amount\":\"5\"");
    assert_ne!(torn, kept);
    std::fs::write(spool.join(format!("{d2}_{d1}.revise")), torn).unwrap();
    std::fs::write(spool.join(format!("{d2}_{d1}.jsonl.tmp")), "{\"torn").unwrap();
    sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .arg("revise")
        .run(WITHIN)
        .assert_code(0);
    assert_eq!(
        revisions(&receiver),
        BTreeSet::from([line(&d2, "Service 0001", "5", Some(1), true)])
    );
    let left: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// An exact sum of decimal strings with at most 10 fraction digits, done here with scaled
/// integers (independent of the crate's decimal module).
fn scaled_sum(amounts: &[String]) -> String {
    let total: i128 = amounts
        .iter()
        .map(|a| {
            let (neg, digits) = a
                .strip_prefix('-')
                .map_or((false, a.as_str()), |d| (true, d));
            let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
            let v = format!("{int}{frac:0<10}").parse::<i128>().unwrap();
            if neg { -v } else { v }
        })
        .sum();
    let sign = if total < 0 { "-" } else { "" };
    let t = total.unsigned_abs();
    format!("{sign}{}.{:010}", t / 10_000_000_000, t % 10_000_000_000)
}

/// (revision, data) of each accepted summary event, in order.
fn summaries(receiver: &FakeReceiver) -> Vec<(Option<u32>, serde_json::Value)> {
    receiver
        .accepted()
        .iter()
        .filter(|r| r.request.header("ce-type") == Some("aws.service.daily.summary"))
        .map(|r| {
            let revision = r.request.header("ce-revision").map(|v| v.parse().unwrap());
            (revision, r.request.json().unwrap())
        })
        .collect()
}

/// The summary's data is exactly {date, lines, totals: {USD}, estimated}, and its total
/// equals the sum of `amounts` (compared as numbers: the scale may differ).
fn assert_summary(data: &serde_json::Value, date: &str, lines: u64, amounts: &[String]) {
    let total = data["totals"]["USD"]
        .as_str()
        .expect("a USD total string")
        .to_string();
    assert_eq!(
        scaled_sum(std::slice::from_ref(&total)),
        scaled_sum(amounts),
        "{data}"
    );
    assert_eq!(
        *data,
        serde_json::json!({"date": date, "lines": lines, "totals": {"USD": total}, "estimated": true})
    );
}

#[test]
fn a_day_summary_follows_the_lines_and_each_revision_round_with_exact_totals() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("revise-summary");
    let d2 = days_ago(2);
    let run = |args: &[&str]| {
        sandbox
            .cmd(&ce.url(), &receiver.url(), "summary: true\n")
            .args(args)
            .run(WITHIN)
            .assert_code(0);
    };
    run(&["once", "--date", &d2]);
    let amounts: Vec<String> = ce
        .expected_lines(&d2, &support::next_day(&d2))
        .into_iter()
        .map(|l| l.amount)
        .collect();
    assert_eq!(receiver.accepted_count(), 4);
    let last = receiver
        .accepted()
        .last()
        .unwrap()
        .request
        .header("ce-type")
        .map(str::to_string);
    assert_eq!(
        last.as_deref(),
        Some("aws.service.daily.summary"),
        "after the day's lines"
    );
    let first = summaries(&receiver);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, None);
    assert_summary(&first[0].1, &d2, 3, &amounts);

    ce.revise(&d2, "Service 0001", "99.5");
    ce.remove(&d2, "Service 0002");
    run(&["revise"]);
    let second = summaries(&receiver);
    assert_eq!(second.len(), 2, "{second:?}");
    assert_eq!(second[1].0, Some(1));
    let s3 = amount(&ce, &d2, "Service 0003");
    assert_summary(&second[1].1, &d2, 2, &["99.5".into(), s3]);
    // Nothing changed: no lines and no summary.
    let count = receiver.accepted_count();
    run(&["revise"]);
    assert_eq!(receiver.accepted_count(), count);
}

#[test]
fn a_forced_re_pull_resends_lines_as_they_were_and_the_latest_revision_still_wins() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("revise-force");
    let d2 = days_ago(2);
    let run = |args: &[&str]| {
        sandbox
            .cmd(&ce.url(), &receiver.url(), "")
            .args(args)
            .run(WITHIN)
            .assert_code(0);
    };
    // Not 0 already, whatever the date (see the daily revision test).
    ce.revise(&d2, "Service 0002", "7.25");
    run(&["once", "--date", &d2]);
    ce.revise(&d2, "Service 0001", "5");
    run(&["revise"]);
    ce.revise(&d2, "Service 0001", "6");
    run(&["revise"]);
    assert_eq!(receiver.accepted_count(), 5);

    // Pulled again by force: every line goes out once more, an unchanged one as the
    // revision it was last delivered as, so with the id it had (a consumer deduplicating
    // on id drops it); the line that is gone gets its zero, as in a revise round.
    ce.remove(&d2, "Service 0002");
    run(&["once", "--date", &d2, "--force"]);
    let s3 = amount(&ce, &d2, "Service 0003");
    let forced: BTreeSet<Seen> = accepted(&receiver)[5..].iter().cloned().collect();
    assert_eq!(
        forced,
        BTreeSet::from([
            line(&d2, "Service 0001", "6", Some(2), true),
            line(&d2, "Service 0002", "0", Some(1), true),
            line(&d2, "Service 0003", &s3, None, true),
        ])
    );
    let ids: Vec<(String, String)> = receiver
        .accepted_events()
        .iter()
        .map(|e| (e.service.clone(), e.id.clone()))
        .collect();
    let before: BTreeSet<&(String, String)> = ids[..5].iter().collect();
    let again: Vec<&str> = ids[5..]
        .iter()
        .filter(|pair| before.contains(pair))
        .map(|(service, _)| service.as_str())
        .collect();
    assert_eq!(
        BTreeSet::from_iter(again),
        BTreeSet::from(["Service 0001", "Service 0003"]),
        "the unchanged lines keep their ids, the zero is new: {ids:?}"
    );

    // The next revise goes on from there.
    ce.revise(&d2, "Service 0001", "7");
    run(&["revise"]);
    assert_eq!(
        accepted(&receiver)[8..],
        [line(&d2, "Service 0001", "7", Some(3), true)]
    );
    // What a consumer keeping the highest revision per line ends up with is what AWS says now.
    let mut latest: std::collections::BTreeMap<String, (u32, String)> = Default::default();
    for s in accepted(&receiver) {
        let r = s.3.unwrap_or(0);
        if latest.get(&s.1).is_none_or(|(have, _)| r > *have) {
            latest.insert(s.1.clone(), (r, s.2.clone()));
        }
    }
    let kept: Vec<(&str, &str)> = latest
        .iter()
        .map(|(k, (_, a))| (k.as_str(), a.as_str()))
        .collect();
    assert_eq!(
        kept,
        [
            ("Service 0001", "7"),
            ("Service 0002", "0"),
            ("Service 0003", s3.as_str())
        ]
    );
}

/// Mounts `dir` read-only in a private mount namespace, then runs the binary: wrapper words
/// for `Cmd::wrapped_in`, or None (and why) where that is not possible.
fn read_only(dir: &std::path::Path) -> Option<Vec<String>> {
    let script = r#"mount --bind -o ro "$1" "$1" && shift && exec "$@""#;
    let words: Vec<String> = ["unshare", "-m", "sh", "-c", script, "sh"]
        .iter()
        .map(|w| w.to_string())
        .chain([dir.display().to_string()])
        .collect();
    let probe = std::process::Command::new(&words[0])
        .args(&words[1..])
        .args(["sh", "-c", "! touch \"$0/.probe\" 2>/dev/null"])
        .arg(dir)
        .output();
    match probe {
        Ok(out) if out.status.success() => Some(words),
        Ok(out) => {
            println!(
                "skipped: cannot mount read-only here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            None
        }
        Err(e) => {
            println!("skipped: no unshare: {e}");
            None
        }
    }
}

#[test]
fn revise_preview_works_on_a_read_only_state_dir() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("revise-preview-ro");
    let d2 = days_ago(2);
    sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", &d2])
        .run(WITHIN)
        .assert_code(0);
    ce.revise(&d2, "Service 0003", "7");
    let Some(wrapper) = read_only(&sandbox.state_dir()) else {
        return;
    };
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["revise", "--target", "-"])
        .wrapped_in(&wrapper)
        .run(WITHIN);
    run.assert_code(0);
    let lines = run.stdout_lines();
    assert_eq!(lines.len(), 1, "{}", run.describe());
    let event: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(
        (&event["data"]["amount"], &event["revision"]),
        (&serde_json::json!("7"), &serde_json::json!(1))
    );
}

#[test]
fn the_catch_up_warning_names_only_holes_the_revision_range_does_not_reach() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("revise-catchup");
    let config = "pull_hour: 0\nmax_catchup_days: 2\nrevise_days: 8\n";
    let d = |n| days_ago(n);
    // d10 is final when delivered (no revision record); d7 is estimated (revised).
    ce.finalize_through(&d(10));
    for day in [d(10), d(7)] {
        sandbox
            .cmd(&ce.url(), &receiver.url(), config)
            .args(["once", "--date", &day])
            .run(WITHIN)
            .assert_code(0);
    }
    assert_eq!(receiver.accepted_count(), 2);
    let running = sandbox
        .cmd(&ce.url(), &receiver.url(), config)
        .env("LOG_LEVEL", "debug")
        .arg("run")
        .spawn();
    assert!(
        running.wait_for_stderr(IDLE, WITHIN),
        "{}",
        running.stderr()
    );
    let run = stop(running);
    // The daily request starts at d7, the day it revises: the holes d6..d3, older than
    // max_catchup_days, are delivered with d2 and d1.
    assert_eq!(
        ce.bodies().last().unwrap()["TimePeriod"]["Start"],
        d(7).as_str(),
        "{}",
        run.describe()
    );
    let dates: BTreeSet<String> = accepted(&receiver).into_iter().map(|s| s.0).collect();
    for n in 1..=6 {
        assert!(
            dates.contains(&d(n)),
            "{} delivered\n{}",
            d(n),
            run.describe()
        );
    }
    // Only d9..d8 are left out, and the warning says so.
    assert!(!dates.contains(&d(9)) && !dates.contains(&d(8)));
    let warned = run.stderr_lines_with(&["max_catchup_days"]);
    assert!(!warned.is_empty(), "{}", run.describe());
    let command = format!("once --from {} --to {}", d(9), d(8));
    assert!(
        warned.iter().all(|l| l.contains(&command)),
        "{warned:#?}\n{}",
        run.describe()
    );
}
