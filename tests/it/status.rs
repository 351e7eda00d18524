//! `status`, `status --check` and the monthly Cost Explorer spend cap, through the real binary.

use std::time::Duration;

use serde_json::Value;

use crate::support;
use crate::support::runner::stop;
use crate::support::{
    Cmd, FakeCostExplorer, FakeReceiver, Finished, Reply, Running, Sandbox, days_ago,
};

/// Deadline for a run or a condition; a passing test never waits this long.
const WITHIN: Duration = Duration::from_secs(15);

fn this_month() -> String {
    days_ago(0)[..7].to_string()
}

/// `status` with the config written in the sandbox and no secret at all.
fn status(sandbox: &Sandbox, args: &[&str]) -> Finished {
    Cmd::new()
        .config(&sandbox.path("config.yml"))
        .arg("status")
        .args(args)
        .run(WITHIN)
}

fn status_json(sandbox: &Sandbox) -> Value {
    let run = status(sandbox, &["--json"]);
    run.assert_code(0);
    let lines = run.stdout_lines();
    assert_eq!(lines.len(), 1, "one JSON object\n{}", run.describe());
    serde_json::from_str(lines[0]).expect("status --json prints JSON")
}

fn check_code(sandbox: &Sandbox, grace: &str) -> Option<i32> {
    status(sandbox, &["--check", "--grace", grace]).code
}

/// The service, logging at debug, with yesterday due at once.
fn service(sandbox: &Sandbox, ce: &FakeCostExplorer, target: &str, extra: &str) -> Running {
    sandbox
        .cmd(
            &ce.url(),
            target,
            &format!("pull_hour: 0\nretry_max_backoff_s: 1\n{extra}"),
        )
        .env("LOG_LEVEL", "debug")
        .arg("run")
        .spawn()
}

fn once(
    sandbox: &Sandbox,
    ce: &FakeCostExplorer,
    target: &str,
    extra: &str,
    day: &str,
) -> Finished {
    sandbox
        .cmd(&ce.url(), target, extra)
        .args(["once", "--date", day])
        .run(WITHIN)
}

#[test]
fn the_cap_stops_the_second_once_mid_pull_and_nothing_of_it_is_delivered() {
    let sandbox = Sandbox::new("cap-once");
    // 3 groups, 2 a page: two requests a day.
    let ce = FakeCostExplorer::with_groups(3, 2);
    let receiver = FakeReceiver::start();
    let cap = "max_monthly_requests: 3\n";
    once(&sandbox, &ce, &receiver.url(), cap, &days_ago(3)).assert_code(0);
    assert_eq!((ce.request_count(), receiver.accepted_count()), (2, 3));

    let second = once(&sandbox, &ce, &receiver.url(), cap, &days_ago(2));
    second.assert_code(1);
    assert_eq!(
        ce.request_count(),
        3,
        "the request past the cap is never made"
    );
    assert_eq!(
        receiver.request_count(),
        3,
        "nothing of the stopped pull is delivered"
    );
    let month = this_month();
    let lines =
        second.stderr_lines_with(&["max_monthly_requests 3", "3 Cost Explorer requests", &month]);
    assert_eq!(lines.len(), 1, "{}", second.describe());
    assert!(
        sandbox
            .state_files()
            .iter()
            .all(|(p, _)| !p.to_string_lossy().contains(&days_ago(2))),
        "nothing of the stopped pull is spooled: {:?}",
        sandbox
            .state_files()
            .iter()
            .map(|(p, _)| p)
            .collect::<Vec<_>>()
    );

    let report = status_json(&sandbox);
    assert_eq!(report["delivered_through"], days_ago(3));
    assert_eq!(report["ce_requests_this_month"], 3);
    assert_eq!(report["ce_cost_this_month_usd"], "0.03");
    assert_eq!(report["last_pull"]["ok"], false);
    assert_eq!(report["last_pull"]["days"]["first"], days_ago(2));
    assert!(
        report["last_pull"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("max_monthly_requests"),
        "{report}"
    );
    // At the cap, the service would pull next on the first day of next month.
    assert!(
        !report["next_pull"].as_str().unwrap().starts_with(&month),
        "{report}"
    );

    // A raised cap lets the same command through.
    once(
        &sandbox,
        &ce,
        &receiver.url(),
        "max_monthly_requests: 5\n",
        &days_ago(2),
    )
    .assert_code(0);
    assert_eq!((ce.request_count(), receiver.accepted_count()), (5, 6));
}

#[test]
fn the_json_fields_match_what_happened() {
    let sandbox = Sandbox::new("status-json");
    let ce = FakeCostExplorer::with_groups(3, 2);
    let receiver = FakeReceiver::start();
    once(&sandbox, &ce, &receiver.url(), "", &days_ago(5)).assert_code(0);
    // One rejection: the day is done, the event is a dead letter.
    receiver.script([Reply::status(400).body("bad event")]);
    once(&sandbox, &ce, &receiver.url(), "", &days_ago(3)).assert_code(1);
    // A target that is down: the day's 3 events stay in the spool.
    let dead = FakeReceiver::start_later();
    once(
        &sandbox,
        &ce,
        &dead.url(),
        "send_timeout_s: 1\n",
        &days_ago(2),
    )
    .assert_code(1);
    assert_eq!(ce.request_count(), 6);

    // Written without a secret file and with no credentials anywhere: status needs none.
    let report = status_json(&sandbox);
    let expected = [
        "state_dir",
        "delivered_through",
        "missing_days",
        "spool_events",
        "dead_letters",
        "last_pull",
        "next_pull",
        "next_wake",
        "next_wake_reason",
        "month",
        "ce_requests_this_month",
        "ce_cost_this_month_usd",
        "max_monthly_requests",
        "damaged",
        "heartbeat",
    ];
    assert_eq!(
        report.as_object().unwrap().len(),
        expected.len(),
        "{report}: revision_days only once revisions exist"
    );
    // The keys come in this order, every time.
    let raw = status(&sandbox, &["--json"]).stdout;
    let at: Vec<usize> = expected
        .iter()
        .map(|k| {
            raw.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} in {raw}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{raw}");
    assert_eq!(report["delivered_through"], days_ago(3));
    assert_eq!(
        report["missing_days"],
        serde_json::json!([days_ago(4), days_ago(2), days_ago(1)])
    );
    assert_eq!(report["spool_events"], 3);
    assert_eq!(report["dead_letters"], 1);
    assert_eq!(report["damaged"], serde_json::json!([]));
    assert_eq!(report["last_pull"]["ok"], true);
    assert_eq!(report["last_pull"]["error"], Value::Null);
    assert_eq!(report["last_pull"]["days"]["last"], days_ago(2));
    assert_eq!(report["month"], this_month());
    assert_eq!(report["ce_requests_this_month"], 6);
    assert_eq!(report["ce_cost_this_month_usd"], "0.06");
    assert_eq!(report["max_monthly_requests"], 1000);
    assert_eq!(report["heartbeat"], Value::Null, "no service ran");
    let now = time::OffsetDateTime::now_utc();
    let pull_day = if now.hour() < 2 {
        days_ago(0)
    } else {
        support::next_day(&days_ago(0))
    };
    assert_eq!(
        report["next_pull"],
        format!("{pull_day}T02:00:00Z").as_str()
    );
    assert_eq!(report["next_wake"], report["next_pull"], "no service waits");
    assert_eq!(
        report["next_wake_reason"],
        "pull_hour, for a service; none is running"
    );

    let human = status(&sandbox, &[]);
    human.assert_code(0);
    for want in [
        format!("delivered through  {}", days_ago(3)),
        "spool              3 event(s)".to_string(),
        "dead letters       1".to_string(),
        format!(
            "Cost Explorer      6 request(s) in {}, $0.06 (cap 1000)",
            this_month()
        ),
    ] {
        assert!(
            human.stdout.contains(&want),
            "{want:?}\n{}",
            human.describe()
        );
    }
    // A preview's requests are paid too: counted in the ledger of an existing state_dir.
    once(&sandbox, &ce, "-", "", &days_ago(5)).assert_code(0);
    assert_eq!(status_json(&sandbox)["ce_requests_this_month"], 8);
    let check = status(&sandbox, &["--check"]);
    check.assert_code(1);
    assert!(
        check.stdout.contains("no service has written a heartbeat"),
        "{}",
        check.describe()
    );
}

#[test]
fn a_sleeping_service_is_alive() {
    let sandbox = Sandbox::new("check-sleeping");
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    let service = service(&sandbox, &ce, &receiver.url(), "");
    assert!(
        service.wait_for_stderr("sleeping until", WITHIN),
        "{}",
        service.stderr()
    );
    assert!(support::wait_until(WITHIN, || check_code(&sandbox, "0") == Some(0)));
    let report = status_json(&sandbox);
    assert_eq!(report["heartbeat"]["pid"], service.pid());
    assert_eq!(
        report["heartbeat"]["next_act"],
        format!("{}T00:00:00Z", support::next_day(&days_ago(0))).as_str(),
        "{report}"
    );
    assert_eq!(report["delivered_through"], days_ago(1));
    // One next time, the one it sleeps until; the heartbeat line names none.
    let human = status(&sandbox, &[]);
    let next: Vec<&str> = human
        .stdout
        .lines()
        .filter(|l| l.starts_with("next") || l.contains("next by"))
        .collect();
    assert_eq!(
        next,
        [format!(
            "next               {}T00:00:00Z (pull_hour)",
            support::next_day(&days_ago(0))
        )],
        "{}",
        human.describe()
    );
    stop(service);
    let after = status(&sandbox, &["--check"]);
    after.assert_code(1);
    assert!(
        after.stdout.contains("the service stopped at"),
        "{}",
        after.describe()
    );
}

#[test]
fn a_service_retrying_a_dead_target_is_alive_and_a_stopped_process_is_not() {
    let sandbox = Sandbox::new("check-sigstop");
    let ce = FakeCostExplorer::with_groups(3, 100);
    let dead = FakeReceiver::start_later();
    let service = service(&sandbox, &ce, &dead.url(), "");
    let retrying = || status_json(&sandbox)["heartbeat"]["doing"] == "retrying the target";
    assert!(
        support::wait_until(WITHIN, retrying),
        "{}",
        service.stderr()
    );
    // The one next time is the retry's, not the pull hour's.
    let human = || status(&sandbox, &[]).stdout;
    assert!(
        support::wait_until(WITHIN, || human().contains(") (retrying the target)\n")
            || human()
                .lines()
                .any(|l| l.starts_with("next ") && l.ends_with("(retrying the target)"))),
        "{}",
        human()
    );
    assert_eq!(
        human().lines().filter(|l| l.contains("next")).count(),
        1,
        "{}",
        human()
    );
    // Retrying is working: every check while it retries says so.
    for retries in 2..5 {
        let needle = "retrying in";
        assert!(support::wait_until(WITHIN, || service
            .stderr()
            .matches(needle)
            .count()
            >= retries));
        assert_eq!(check_code(&sandbox, "3"), Some(0), "{}", service.stderr());
    }

    service.signal(libc::SIGSTOP);
    assert!(
        support::wait_until(WITHIN, || check_code(&sandbox, "1") == Some(1)),
        "a stopped process goes stale past its grace"
    );
    let stale = status(&sandbox, &["--check", "--grace", "1"]);
    let line = stale.stdout_lines();
    assert_eq!(line.len(), 1, "{}", stale.describe());
    assert!(
        line[0].starts_with("the service has not acted since ")
            && line[0].contains(", it was due at "),
        "{}",
        stale.describe()
    );
    service.signal(libc::SIGCONT);
    assert!(
        support::wait_until(WITHIN, || check_code(&sandbox, "1") == Some(0)),
        "alive again after SIGCONT"
    );
    assert_eq!(dead.request_count(), 0);
    stop(service);
}

#[test]
fn the_service_reports_the_cap_once_and_sleeps_until_next_month() {
    let sandbox = Sandbox::new("cap-service");
    let ce = FakeCostExplorer::with_groups(3, 2);
    let receiver = FakeReceiver::start();
    let service = service(&sandbox, &ce, &receiver.url(), "max_monthly_requests: 1\n");
    assert!(
        support::wait_until(WITHIN, || status_json(&sandbox)["heartbeat"]["doing"]
            == "sleeping until the next pull or retry"),
        "{}",
        service.stderr()
    );
    let report = status_json(&sandbox);
    let next_act = report["heartbeat"]["next_act"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        next_act.ends_with("-01T00:00:00Z") && !next_act.starts_with(&this_month()),
        "{report}"
    );
    assert_eq!(check_code(&sandbox, "0"), Some(0));
    assert_eq!(ce.request_count(), 1);
    assert_eq!(receiver.request_count(), 0);
    let finished = stop(service);
    assert_eq!(
        finished
            .stderr_lines_with(&["max_monthly_requests 1 reached"])
            .len(),
        1,
        "{}",
        finished.describe()
    );
}

#[test]
fn bad_status_usage_exits_2() {
    let sandbox = Sandbox::new("status-usage");
    sandbox.write_config("http://127.0.0.1:9", "http://127.0.0.1:9/", "");
    let run = status(&sandbox, &["--check", "--grace", "soon"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("--grace: expected seconds"),
        "{}",
        run.describe()
    );
    sandbox.write_config(
        "http://127.0.0.1:9",
        "http://127.0.0.1:9/",
        "max_monthly_requests: -5\n",
    );
    let run = status(&sandbox, &[]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("max_monthly_requests: expected a number"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_service_retrying_cost_explorer_is_alive() {
    let sandbox = Sandbox::new("check-ce-retry");
    let ce = FakeCostExplorer::with_groups(3, 100);
    ce.always(support::cost_explorer::throttling());
    let receiver = FakeReceiver::start();
    let service = service(&sandbox, &ce, &receiver.url(), "");
    let retrying = || status_json(&sandbox)["heartbeat"]["doing"] == "retrying Cost Explorer";
    assert!(
        support::wait_until(WITHIN, retrying),
        "{}",
        service.stderr()
    );
    assert_eq!(check_code(&sandbox, "3"), Some(0));
    let requests = ce.request_count() as u64;
    let counted = status_json(&sandbox)["ce_requests_this_month"]
        .as_u64()
        .unwrap();
    assert!(
        counted >= requests && counted <= requests + 1,
        "every retry counted: {counted} vs {requests}"
    );
    stop(service);
}

#[test]
fn without_a_state_dir_requests_are_counted_in_memory_and_the_cap_still_holds() {
    let sandbox = Sandbox::new("cap-memory");
    let ce = FakeCostExplorer::with_groups(3, 2);
    let nowhere = sandbox.path("no-such-dir");
    let config =
        support::runner::config_yaml(&ce.url(), "-", &nowhere, "max_monthly_requests: 1\n");
    let run = Cmd::new()
        .config(&sandbox.write("config.yml", &config))
        .secret(&sandbox.write_secret())
        .args(["once", "--date", &days_ago(2)])
        .env("LOG_LEVEL", "debug")
        .run(WITHIN);
    run.assert_code(1);
    assert_eq!(
        run.stderr_lines_with(&["counted in memory only"]).len(),
        1,
        "{}",
        run.describe()
    );
    assert_eq!(
        run.stderr_lines_with(&["max_monthly_requests 1 reached"])
            .len(),
        1,
        "{}",
        run.describe()
    );
    assert_eq!(ce.request_count(), 1);
    assert!(!nowhere.exists(), "a preview creates no state");
}

/// Every file under `dir` with its contents.
fn files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn revision_days_name_the_days_that_were_revised_and_status_writes_nothing() {
    let sandbox = Sandbox::new("status-revisions");
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    let (d3, d2) = (days_ago(3), days_ago(2));
    once(&sandbox, &ce, &receiver.url(), "", &d3).assert_code(0);
    once(&sandbox, &ce, &receiver.url(), "", &d2).assert_code(0);
    let report = status_json(&sandbox);
    assert!(
        report.get("revision_days").is_none(),
        "{report}: nothing was revised yet"
    );

    ce.revise(&d2, "Service 0002", "12.5");
    sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .arg("revise")
        .run(WITHIN)
        .assert_code(0);
    assert_eq!(receiver.accepted_count(), 7);
    let before = files(&sandbox.state_dir());
    let report = status_json(&sandbox);
    assert_eq!(report["revision_days"], serde_json::json!([d2]), "{report}");
    let human = status(&sandbox, &[]);
    human.assert_code(0);
    assert!(
        human.stdout.contains(&format!("revised days       {d2}\n")),
        "{}",
        human.describe()
    );
    assert_eq!(files(&sandbox.state_dir()), before, "status writes nothing");
}

#[test]
fn status_counts_large_files_within_a_small_pods_memory() {
    let sandbox = Sandbox::new("status-memory");
    let config = sandbox.write_config("http://127.0.0.1:9", "http://127.0.0.1:9", "");
    let state = sandbox.state_dir();
    std::fs::create_dir_all(state.join("spool")).unwrap();
    // Sparse files (no disk, no time to write): 48 MiB each, one line with no newline.
    let big = 48 << 20;
    let spool = std::fs::File::create(state.join("spool/2026-11-01_2026-11-01.jsonl")).unwrap();
    spool.set_len(big).unwrap();
    std::fs::write(state.join("spool/2026-11-01_2026-11-01.acked"), "5\n").unwrap();
    let dead = std::fs::File::create(state.join("dead-letter.jsonl")).unwrap();
    dead.set_len(big).unwrap();
    // An address-space limit of 32 MiB, the pod's: reading either file whole cannot fit.
    let run = Cmd::new()
        .wrapped_in(&["prlimit", "--as=33554432", "--"])
        .config(&config)
        .args(["status", "--json"])
        .run(WITHIN);
    run.assert_code(0);
    let report: Value = serde_json::from_str(run.stdout_lines()[0]).expect("JSON");
    // Both are one line of zeros: damaged, named, and never read whole.
    assert_eq!(report["spool_events"], 0, "{report}");
    assert_eq!(report["dead_letters"], 1, "{report}");
    let damaged: Vec<&str> = report["damaged"]
        .as_array()
        .expect("a damaged list")
        .iter()
        .map(|d| d["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        damaged,
        ["dead-letter.jsonl", "spool/2026-11-01_2026-11-01.jsonl"],
        "{report}"
    );
}

#[test]
fn peer_text_in_the_last_pull_error_is_escaped_in_the_human_output() {
    let sandbox = Sandbox::new("status-peer-text");
    sandbox.write_config("http://127.0.0.1:9", "http://127.0.0.1:9", "");
    let state = sandbox.state_dir();
    std::fs::create_dir_all(&state).unwrap();
    let error = "Cost Explorer: \u{1b}]0;owned\u{7}denied\nheartbeat          fine\u{202e}";
    let record = serde_json::json!({
        "time": "2026-11-30T02:00:01Z",
        "days": {"first": "2026-11-29", "last": "2026-11-29"},
        "ok": false,
        "error": error,
    });
    std::fs::write(state.join("last-pull.json"), record.to_string()).unwrap();
    let run = status(&sandbox, &[]);
    run.assert_code(0);
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("last pull"))
        .expect("a last pull line");
    assert_eq!(
        line,
        "last pull          2026-11-29 at 2026-11-30T02:00:01Z, failed: Cost Explorer: \\u{1b}]0;owned\\u{7}denied\\u{a}heartbeat          fine\\u{202e}"
    );
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.starts_with("heartbeat"))
            .count(),
        1,
        "no forged line\n{}",
        run.stdout
    );
    // The JSON keeps the text as it was, escaped the JSON way.
    assert_eq!(status_json(&sandbox)["last_pull"]["error"], error);
}

#[test]
fn a_pull_whose_batch_cannot_be_spooled_is_recorded_as_failed() {
    let sandbox = Sandbox::new("status-commit-fails");
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    // The day's 3 events (about 1.2 KB) wait in the spool writer's buffer until the batch is
    // committed; the flush there passes the file size limit, the small records do not.
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", "2022-06-11"])
        .file_size_limit(1000)
        .run(WITHIN);
    run.assert_code(1);
    assert!(
        run.stderr.to_ascii_lowercase().contains("too large"),
        "{}",
        run.describe()
    );
    assert_eq!(receiver.request_count(), 0);
    let report = status_json(&sandbox);
    assert_eq!(report["last_pull"]["ok"], false, "{report}");
    let error = report["last_pull"]["error"].as_str().unwrap_or_default();
    assert!(error.to_ascii_lowercase().contains("too large"), "{report}");
}

/// `status --healthy`, its exit code and its one line.
fn healthy(sandbox: &Sandbox) -> (Option<i32>, String) {
    let run = status(sandbox, &["--healthy"]);
    let lines = run.stdout_lines();
    assert_eq!(lines.len(), 1, "one line\n{}", run.describe());
    (run.code, lines[0].to_string())
}

#[test]
fn health_fails_after_a_failed_pull_and_recovers_after_a_good_one() {
    let sandbox = Sandbox::new("health");
    let receiver = FakeReceiver::start();
    let yesterday = days_ago(1);
    let denied = FakeCostExplorer::with_groups(2, 100);
    denied.always(support::cost_explorer::access_denied());
    once(&sandbox, &denied, &receiver.url(), "", &yesterday).assert_code(1);
    // Alive is not healthy: the liveness check knows nothing of pulls.
    let (code, line) = healthy(&sandbox);
    assert_eq!(code, Some(1), "{line}");
    assert!(
        line.starts_with(&format!("the last pull ({yesterday}, at "))
            && line.contains(
                ") failed: Cost Explorer refused the request (HTTP 400): AccessDeniedException"
            ),
        "{line}"
    );

    let ce = FakeCostExplorer::with_groups(2, 100);
    once(&sandbox, &ce, &receiver.url(), "", &yesterday).assert_code(0);
    let (code, line) = healthy(&sandbox);
    assert_eq!(code, Some(0), "{line}");
    assert!(
        line.starts_with("healthy: the last pull (")
            && line.ends_with(&format!("went well; delivered through {yesterday}")),
        "{line}"
    );
}

#[test]
fn health_fails_once_the_newest_delivered_day_is_more_than_a_day_behind() {
    let sandbox = Sandbox::new("health-behind");
    let ce = FakeCostExplorer::with_groups(2, 100);
    let receiver = FakeReceiver::start();
    // pull_hour 0: the day after the delivered one has been due since yesterday 00:00.
    let old = days_ago(3);
    once(&sandbox, &ce, &receiver.url(), "pull_hour: 0\n", &old).assert_code(0);
    let (code, line) = healthy(&sandbox);
    assert_eq!(code, Some(1), "{line}");
    assert_eq!(
        line,
        format!(
            "the newest delivered day is {old}, more than a day behind: {} has been due since {}T00:00:00Z",
            days_ago(2),
            days_ago(1)
        )
    );
}
