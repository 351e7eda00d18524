//! Guards for the review fixes: redirects stay spooled, no re-pulls, big 2xx bodies, redacted URLs, one-page check, forced re-sends kept, the state_dir lock, dates at the end of time.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::support;
use crate::support::assert_one_id_per_key;
use crate::support::runner::{config_yaml, stop};
use crate::support::sorted;
use crate::support::{
    Cmd, Event, FakeCostExplorer, FakeReceiver, Finished, Line, Reply, Sandbox, days_ago, next_day,
    wait_until,
};

const DAY: &str = "2022-06-13";
const DAY_END: &str = "2022-06-14";
/// Deadline for a run or a condition; a passing test never waits this long.
const WITHIN: Duration = Duration::from_secs(15);
/// What the service logs (at debug) when it goes to sleep.
use crate::support::IDLE;
/// Must never appear in any output when they are part of the target URL.
const URL_PASSWORD: &str = "s3cretpw";
const URL_TOKEN: &str = "t0ps3cret";

fn lines_of(events: &[Event]) -> Vec<Line> {
    sorted(events.iter().map(Event::line).collect())
}

/// A 301 pointing somewhere else, as a misconfigured ingress would answer.
fn moved() -> Reply {
    Reply::status(301).header("Location", "https://elsewhere/")
}

/// The service (`run`) with yesterday due at once, logging at debug so its sleeps show.
fn service(sandbox: &Sandbox, ce: &FakeCostExplorer, target: &str) -> Cmd {
    sandbox
        .cmd(&ce.url(), target, "pull_hour: 0\nretry_max_backoff_s: 1\n")
        .env("LOG_LEVEL", "debug")
        .arg("run")
}

/// The service's log line once nothing is due before tomorrow's pull (pull_hour 0).
fn idle_until_tomorrow() -> String {
    format!("{IDLE} {}T00:00:00Z", next_day(&days_ago(0)))
}

fn dead_letters(sandbox: &Sandbox) -> String {
    std::fs::read_to_string(sandbox.state_dir().join("dead-letter.jsonl")).unwrap_or_default()
}

/// Files under state_dir/spool and their text.
fn spool_files(sandbox: &Sandbox) -> Vec<(PathBuf, String)> {
    let spool = sandbox.state_dir().join("spool");
    sandbox
        .state_files()
        .into_iter()
        .filter(|(path, _)| path.starts_with(&spool))
        .map(|(path, bytes)| (path, String::from_utf8_lossy(&bytes).into_owned()))
        .collect()
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

/// `http://user:s3cretpw@127.0.0.1:PORT/hook?token=t0ps3cret`
fn url_with_secrets(port: u16) -> String {
    format!("http://user:{URL_PASSWORD}@127.0.0.1:{port}/hook?token={URL_TOKEN}")
}

// 1
#[test]
fn the_service_keeps_redirected_events_spooled_pulls_once_and_sends_them_when_the_target_is_fixed()
{
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    receiver.script([moved(), moved(), moved()]);
    let sandbox = Sandbox::new("svc-redirect");
    let running = service(&sandbox, &ce, &receiver.url()).spawn();
    assert!(
        receiver.wait_for_accepted(3, WITHIN),
        "the events never arrived after the target stopped redirecting\n{}",
        running.stderr()
    );
    assert!(
        running.wait_for_stderr(&idle_until_tomorrow(), WITHIN),
        "{}",
        running.stderr()
    );
    let run = stop(running);

    assert_eq!(
        ce.request_count(),
        1,
        "the spooled day was pulled again\n{}",
        run.describe()
    );
    assert_eq!(dead_letters(&sandbox), "", "{}", run.describe());
    let all = receiver.all_events();
    assert_eq!(
        (all.len(), receiver.accepted_count()),
        (6, 3),
        "three redirected attempts, then each event once\n{}",
        run.describe()
    );
    assert_one_id_per_key(&all);
    let yesterday = days_ago(1);
    assert_eq!(
        lines_of(&receiver.accepted_events()),
        sorted(ce.expected_lines(&yesterday, &next_day(&yesterday))),
        "{}",
        run.describe()
    );
    assert!(
        !run.stderr_lines_with(&["301"]).is_empty(),
        "the redirect is reported\n{}",
        run.describe()
    );
}

// 2
#[test]
fn once_keeps_redirected_events_in_the_spool_and_a_later_once_sends_them_without_pulling() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    receiver.set_default(moved());
    let sandbox = Sandbox::new("once-redirect");
    let once = || {
        sandbox
            .cmd(&ce.url(), &receiver.url(), "")
            .args(["once", "--date", DAY])
    };
    let run = once().run(WITHIN);
    run.assert_code(1);
    assert_eq!(dead_letters(&sandbox), "", "{}", run.describe());
    let spool: String = spool_files(&sandbox)
        .into_iter()
        .map(|(_, text)| text)
        .collect();
    for line in ce.expected_lines(DAY, DAY_END) {
        assert!(
            spool.contains(&line.service),
            "{} is not in the spool\n{}",
            line.service,
            run.describe()
        );
    }

    receiver.set_default(Reply::ok());
    let run = once().run(WITHIN);
    run.assert_code(0);
    assert_eq!(ce.request_count(), 1, "{}", run.describe());
    assert_eq!(
        lines_of(&receiver.accepted_events()),
        sorted(ce.expected_lines(DAY, DAY_END)),
        "{}",
        run.describe()
    );
    assert_eq!(receiver.accepted_count(), 3, "each event once");
    assert_one_id_per_key(&receiver.all_events());
}

// 3
#[test]
fn a_200_with_a_100_kb_body_is_delivered_once() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    receiver.set_default(Reply::status(200).body(&"x".repeat(100 * 1024)));
    let sandbox = Sandbox::new("big-body");
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "send_timeout_s: 3\n")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    assert_eq!(
        receiver.request_count(),
        3,
        "each event sent exactly once\n{}",
        run.describe()
    );
    assert_eq!(
        lines_of(&receiver.accepted_events()),
        sorted(ce.expected_lines(DAY, DAY_END))
    );
}

// 4
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
        .run(WITHIN);
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
    support::wait_idle(&running, &receiver, 6, WITHIN);
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
        .run(WITHIN);
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
        .run(WITHIN);
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

// 5
#[test]
fn check_makes_one_cost_explorer_request_when_the_answer_has_three_pages() {
    let ce = FakeCostExplorer::with_groups(6, 2);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("check-pages");
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .arg("check")
        .run(WITHIN);
    run.assert_code(0);
    assert_eq!(ce.request_count(), 1, "{}", run.describe());
    assert!(
        ce.served()[0].next_token.is_some(),
        "the answer had more pages"
    );
    assert_eq!(receiver.request_count(), 0);
}

// 6
#[test]
fn a_forced_resend_that_times_out_stays_spooled_and_the_next_once_sends_it_without_pulling() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("forced-kept");
    let once = |extra: &str| {
        sandbox
            .cmd(&ce.url(), &receiver.url(), extra)
            .args(["once", "--date", DAY])
    };
    once("").run(WITHIN).assert_code(0);
    let first_ids: BTreeSet<String> = receiver
        .accepted_events()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(first_ids.len(), 3);

    receiver.set_default(Reply::status(503));
    let forced = once("send_timeout_s: 2\n").arg("--force").run(WITHIN);
    forced.assert_code(1);
    assert_eq!(ce.request_count(), 2, "{}", forced.describe());
    let tried: BTreeSet<String> = receiver
        .all_events()
        .into_iter()
        .map(|e| e.id)
        .filter(|id| !first_ids.contains(id))
        .collect();
    assert!(!tried.is_empty(), "{}", forced.describe());

    receiver.set_default(Reply::ok());
    let run = once("").run(WITHIN);
    run.assert_code(0);
    assert_eq!(
        ce.request_count(),
        2,
        "the spooled forced events are sent, not pulled again\n{}",
        run.describe()
    );
    let resent: Vec<Event> = receiver
        .accepted_events()
        .into_iter()
        .filter(|e| !first_ids.contains(&e.id))
        .collect();
    assert_eq!(
        lines_of(&resent),
        sorted(ce.expected_lines(DAY, DAY_END)),
        "every forced event delivered once\n{}\n{}",
        forced.describe(),
        run.describe()
    );
    let resent_ids: BTreeSet<String> = resent.iter().map(|e| e.id.clone()).collect();
    assert!(
        tried.is_subset(&resent_ids),
        "delivered with the ids they were first sent with"
    );
}

// 7
#[test]
fn a_second_once_on_a_busy_state_dir_exits_1_at_once() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    receiver.set_delay(Duration::from_millis(1000));
    let sandbox = Sandbox::new("busy");
    let once = || {
        sandbox
            .cmd(&ce.url(), &receiver.url(), "")
            .args(["once", "--date", DAY])
    };
    let mut first = once().spawn();
    assert!(receiver.wait_for_requests(1, WITHIN), "{}", first.stderr());
    let second = once().run(WITHIN);
    assert!(
        first.exited().is_none(),
        "the second once waited for the first one\n{}",
        second.describe()
    );
    second.assert_code(1);
    assert!(
        !second
            .stderr_lines_with(&["state_dir", "in use"])
            .is_empty(),
        "{}",
        second.describe()
    );
    assert_eq!(ce.request_count(), 1, "{}", second.describe());

    let first = first.wait(WITHIN);
    first.assert_code(0);
    assert_eq!(receiver.request_count(), 3, "nothing sent twice");
    assert_eq!(
        lines_of(&receiver.accepted_events()),
        sorted(ce.expected_lines(DAY, DAY_END))
    );
}

#[test]
fn the_service_rereads_delivered_days_after_a_once_ran_while_it_waited() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let redirecting = FakeReceiver::start();
    redirecting.set_default(moved());
    let sandbox = Sandbox::new("reread");
    let running = service(&sandbox, &ce, &redirecting.url()).spawn();
    assert!(
        redirecting.wait_for_requests(1, WITHIN),
        "{}",
        running.stderr()
    );

    // Meanwhile an operator points a `once` at a working target; it runs while the
    // service waits between tries (the state_dir lock is free then).
    let working = FakeReceiver::start();
    let yesterday = days_ago(1);
    let config = sandbox.write(
        "once.yml",
        &config_yaml(&ce.url(), &working.url(), &sandbox.state_dir(), ""),
    );
    let secret = sandbox.write_secret();
    let mut attempts = Vec::new();
    let delivered = wait_until(WITHIN, || {
        let run = Cmd::new()
            .config(&config)
            .secret(&secret)
            .args(["once", "--date", &yesterday])
            .run(WITHIN);
        let done = run.code == Some(0);
        if !done {
            assert!(
                !run.stderr_lines_with(&["in use"]).is_empty(),
                "once failed for another reason\n{}",
                run.describe()
            );
        }
        attempts.push(run);
        done
    });
    assert!(
        delivered,
        "once never got the state_dir\n{}",
        attempts.last().map(Finished::describe).unwrap_or_default()
    );
    assert_eq!(working.accepted_count(), 3);

    // The service's next round sees the day delivered and sleeps until tomorrow's pull.
    assert!(
        running.wait_for_stderr(&idle_until_tomorrow(), WITHIN),
        "{}",
        running.stderr()
    );
    let run = stop(running);
    assert_eq!(
        ce.request_count(),
        1,
        "the day once delivered was pulled again\n{}",
        run.describe()
    );
    assert_eq!(redirecting.accepted_count(), 0);
}

// 8
#[test]
fn once_for_the_last_representable_day_is_a_usage_error_not_a_panic() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new("end-of-time");
    let run = sandbox
        .cmd(&ce.url(), "-", "")
        .args(["once", "--date", "9999-12-31", "--target", "-"])
        .run(WITHIN);
    run.assert_code(2);
    assert_eq!(run.stderr_lines().len(), 1, "{}", run.describe());
    assert_eq!(run.stdout, "", "{}", run.describe());
    assert_eq!(ce.request_count(), 0);
}
