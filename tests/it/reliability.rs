//! Lose nothing, pull nothing twice: outages, redirects, kill -9, restarts, catch-up and its holes, corrupt state, signals as PID 1, dead letters, full disks, forced re-sends, a busy state_dir.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support;
use crate::support::assert_one_id_per_key;
use crate::support::cost_explorer;
use crate::support::runner::{children_of, config_yaml, signal_pid, stop};
use crate::support::{
    Cmd, Event, FakeCostExplorer, FakeReceiver, Finished, Reply, Running, Sandbox, days_ago,
    wait_until,
};
use crate::support::{sorted, sorted_lines};

const DAY: &str = "2022-06-13";
const DAY_END: &str = "2022-06-14";
const WITHIN: Duration = Duration::from_secs(30);
/// A tighter deadline, for runs and conditions that come within seconds (redirected
/// deliveries, a forced re-send, a busy state_dir).
const SOON: Duration = Duration::from_secs(15);
/// What the service logs (at debug) when it goes to sleep until the next pull.
use crate::support::IDLE;

fn keys_of(events: &[Event]) -> BTreeSet<(String, String)> {
    events.iter().map(Event::key).collect()
}

/// Each (date, service) accepted exactly once.
fn assert_accepted_once(receiver: &FakeReceiver) {
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for event in receiver.accepted_events() {
        *counts.entry(event.key()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "accepted more than once: {twice:?}");
}

/// The service (`run`), logging at debug so its sleep can be seen.
fn service(sandbox: &Sandbox, ce: &FakeCostExplorer, receiver: &FakeReceiver, extra: &str) -> Cmd {
    sandbox
        .cmd(
            &ce.url(),
            &receiver.url(),
            &format!("pull_hour: 0\n{extra}"),
        )
        .env("LOG_LEVEL", "debug")
        .arg("run")
}

/// A 301 pointing somewhere else, as a misconfigured ingress would answer.
fn moved() -> Reply {
    Reply::status(301).header("Location", "https://elsewhere/")
}

/// The service's log line once nothing is due before tomorrow's pull (pull_hour 0).
fn idle_until_tomorrow() -> String {
    format!("{IDLE} {}T00:00:00Z", support::next_day(&days_ago(0)))
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

/// `once` for `day`, delivered by hand through a fake Cost Explorer and receiver of its own.
fn deliver_by_hand(sandbox: &Sandbox, day: &str) {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let receiver = FakeReceiver::start();
    sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", day])
        .run(WITHIN)
        .assert_code(0);
}

// 1
#[test]
fn receiver_down_then_503_then_429_then_up_delivers_everything_once() {
    let ce = FakeCostExplorer::with_groups(4, 100);
    let receiver = FakeReceiver::start_later();
    receiver.script([
        Reply::status(503),
        Reply::status(503),
        Reply::status(429).header("Retry-After", "1"),
    ]);
    let sandbox = Sandbox::new("outage");
    let mut running = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", DAY])
        .spawn();
    // The outage: connections are refused for a while; `once` must not give up.
    let exited_early = wait_until(Duration::from_millis(2500), || running.exited().is_some());
    assert!(
        !exited_early,
        "gave up while the receiver was down\n{}",
        running.finish().describe()
    );
    assert_eq!(receiver.request_count(), 0);
    receiver.go_live();
    let run = running.wait(WITHIN);
    run.assert_code(0);

    let all = receiver.all_events();
    assert!(
        all.len() >= 7,
        "three refusals answered, four deliveries\n{}",
        run.describe()
    );
    assert_one_id_per_key(&all);
    assert_accepted_once(&receiver);
    let accepted = receiver.accepted_events();
    assert_eq!(
        sorted(accepted.iter().map(Event::line).collect()),
        sorted(ce.expected_lines(DAY, DAY_END))
    );
    let received = receiver.received();
    let after_429 = received
        .iter()
        .position(|r| r.status == Some(429))
        .expect("a 429");
    let gap = received[after_429 + 1]
        .request
        .received_at
        .duration_since(received[after_429].answered_at.expect("answered"));
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After: 1 not honoured ({gap:?})"
    );
    assert_eq!(ce.request_count(), 1);
}

#[test]
fn the_service_keeps_redirected_events_spooled_pulls_once_and_sends_them_when_the_target_is_fixed()
{
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    receiver.script([moved(), moved(), moved()]);
    let sandbox = Sandbox::new("svc-redirect");
    let running = service(&sandbox, &ce, &receiver, "retry_max_backoff_s: 1\n").spawn();
    assert!(
        receiver.wait_for_accepted(3, SOON),
        "the events never arrived after the target stopped redirecting\n{}",
        running.stderr()
    );
    assert!(
        running.wait_for_stderr(&idle_until_tomorrow(), SOON),
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
        sorted_lines(&receiver),
        sorted(ce.expected_lines(&yesterday, &support::next_day(&yesterday))),
        "{}",
        run.describe()
    );
    assert!(
        !run.stderr_lines_with(&["301"]).is_empty(),
        "the redirect is reported\n{}",
        run.describe()
    );
}

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
    let run = once().run(SOON);
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
    let run = once().run(SOON);
    run.assert_code(0);
    assert_eq!(ce.request_count(), 1, "{}", run.describe());
    assert_eq!(
        sorted_lines(&receiver),
        sorted(ce.expected_lines(DAY, DAY_END)),
        "{}",
        run.describe()
    );
    assert_eq!(receiver.accepted_count(), 3, "each event once");
    assert_one_id_per_key(&receiver.all_events());
}

// 2
#[test]
fn kill_9_mid_delivery_then_once_again_sends_the_rest_without_pulling() {
    let ce = FakeCostExplorer::with_groups(12, 5);
    let receiver = FakeReceiver::start();
    receiver.set_delay(Duration::from_millis(150));
    let sandbox = Sandbox::new("kill9");
    let mut running = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", DAY])
        .spawn();
    assert!(
        receiver.wait_for_accepted(4, WITHIN),
        "{}",
        running.stderr()
    );
    running.kill9();
    let killed = running.finish();
    assert_eq!(killed.signal, Some(libc::SIGKILL), "{}", killed.describe());
    let pulls = ce.request_count();
    let first_accepted = receiver.accepted_events();
    assert!(
        first_accepted.len() < 12,
        "killed too late to test anything"
    );

    receiver.set_delay(Duration::ZERO);
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    assert_eq!(
        ce.request_count(),
        pulls,
        "no Cost Explorer request on the second run\n{}",
        run.describe()
    );

    let all = receiver.all_events();
    assert_one_id_per_key(&all);
    let accepted = receiver.accepted_events();
    let expected: BTreeSet<(String, String)> = ce
        .expected_lines(DAY, DAY_END)
        .into_iter()
        .map(|l| (l.date, l.service))
        .collect();
    assert_eq!(keys_of(&accepted), expected, "nothing missing");
    let resent = accepted.len() - expected.len();
    assert!(
        resent <= 1,
        "{resent} events delivered twice; at most the one in flight may be"
    );
}

// 3
#[test]
fn a_restarted_service_does_not_pull_a_delivered_day_again() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("restart");
    let running = service(&sandbox, &ce, &receiver, "").spawn();
    support::wait_idle(&running, &receiver, 3, WITHIN);
    let first = stop(running);
    let yesterday = days_ago(1);
    assert_eq!(
        sorted(receiver.accepted_events().iter().map(Event::line).collect()),
        sorted(ce.expected_lines(&yesterday, &support::next_day(&yesterday))),
        "{}",
        first.describe()
    );

    let ce = FakeCostExplorer::with_groups(3, 100);
    let receiver = FakeReceiver::start();
    let running = service(&sandbox, &ce, &receiver, "").spawn();
    assert!(
        running.wait_for_stderr(IDLE, WITHIN),
        "{}",
        running.stderr()
    );
    let second = stop(running);
    assert_eq!(ce.request_count(), 0, "{}", second.describe());
    assert_eq!(receiver.request_count(), 0, "{}", second.describe());
}

#[test]
fn the_service_rereads_delivered_days_after_a_once_ran_while_it_waited() {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let redirecting = FakeReceiver::start();
    redirecting.set_default(moved());
    let sandbox = Sandbox::new("reread");
    let running = service(&sandbox, &ce, &redirecting, "retry_max_backoff_s: 1\n").spawn();
    assert!(
        redirecting.wait_for_requests(1, SOON),
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
    let delivered = wait_until(SOON, || {
        let run = Cmd::new()
            .config(&config)
            .secret(&secret)
            .args(["once", "--date", &yesterday])
            .run(SOON);
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
        running.wait_for_stderr(&idle_until_tomorrow(), SOON),
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

// 4
#[test]
fn catch_up_pulls_the_missed_days_in_one_range_request() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("catchup");
    let four_days_ago = days_ago(4);
    sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", &four_days_ago])
        .run(WITHIN)
        .assert_code(0);

    let ce = FakeCostExplorer::with_groups(2, 100);
    let receiver = FakeReceiver::start();
    // Revisions off: the estimated day delivered above would otherwise widen the range.
    let running = service(&sandbox, &ce, &receiver, "revise_days: 0\n").spawn();
    support::wait_idle(&running, &receiver, 6, WITHIN);
    let run = stop(running);
    let (start, end) = (days_ago(3), days_ago(0));
    let bodies = ce.bodies();
    assert_eq!(bodies.len(), 1, "one range request\n{}", run.describe());
    assert_eq!(bodies[0]["TimePeriod"]["Start"], start.as_str());
    assert_eq!(bodies[0]["TimePeriod"]["End"], end.as_str());
    assert_accepted_once(&receiver);
    assert_eq!(
        sorted(receiver.accepted_events().iter().map(Event::line).collect()),
        sorted(ce.expected_lines(&start, &end))
    );
}

#[test]
fn catch_up_is_capped_and_names_the_command_for_the_gap() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("catchup-cap");
    sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", &days_ago(10)])
        .run(WITHIN)
        .assert_code(0);

    let ce = FakeCostExplorer::with_groups(1, 100);
    let receiver = FakeReceiver::start();
    let running = service(&sandbox, &ce, &receiver, "max_catchup_days: 3\n").spawn();
    support::wait_idle(&running, &receiver, 3, WITHIN);
    let run = stop(running);
    let bodies = ce.bodies();
    assert_eq!(bodies.len(), 1, "{}", run.describe());
    assert_eq!(bodies[0]["TimePeriod"]["Start"], days_ago(3).as_str());
    let command = format!("once --from {} --to {}", days_ago(9), days_ago(4));
    assert!(
        !run.stderr_lines_with(&[&command]).is_empty(),
        "{}",
        run.describe()
    );
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

// 5
#[test]
fn the_service_delivers_after_cost_explorer_throttles_twice() {
    let ce = FakeCostExplorer::with_groups(3, 2);
    ce.push(cost_explorer::throttling());
    ce.push(cost_explorer::limit_exceeded());
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("svc-throttle");
    let running = service(&sandbox, &ce, &receiver, "").spawn();
    support::wait_idle(&running, &receiver, 3, WITHIN);
    let run = stop(running);
    assert_eq!(
        ce.request_count(),
        4,
        "two throttled, two pages\n{}",
        run.describe()
    );
    assert_accepted_once(&receiver);
    let yesterday = days_ago(1);
    assert_eq!(
        sorted(receiver.accepted_events().iter().map(Event::line).collect()),
        sorted(ce.expected_lines(&yesterday, &support::next_day(&yesterday)))
    );
}

/// A file under state_dir whose bytes contain `needle`.
fn file_containing(files: &[(PathBuf, Vec<u8>)], needle: &str) -> Option<PathBuf> {
    files
        .iter()
        .find(|(_, bytes)| String::from_utf8_lossy(bytes).contains(needle))
        .map(|(path, _)| path.clone())
}

// 6
#[test]
fn a_corrupt_state_file_and_spool_line_are_moved_aside_and_nothing_else_is_lost() {
    const DELIVERED_DAY: &str = "2022-06-10";
    let ce = FakeCostExplorer::with_groups(4, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("corrupt");
    sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", DELIVERED_DAY])
        .run(WITHIN)
        .assert_code(0);

    // DAY's events end up in the spool: the target refuses until once gives up.
    receiver.set_default(Reply::status(503));
    let gave_up = sandbox
        .cmd(&ce.url(), &receiver.url(), "send_timeout_s: 2\n")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    gave_up.assert_code(1);
    let spooled = receiver.all_events();
    let spooled: Vec<&Event> = spooled.iter().filter(|e| e.date == DAY).collect();
    assert!(!spooled.is_empty());
    let spooled_id = spooled[0].id.clone();

    let files = sandbox.state_files();
    let spool = file_containing(&files, &spooled_id).expect("a spool file holding the event ids");
    let state = files
        .iter()
        .find(|(path, bytes)| {
            *path != spool
                && String::from_utf8_lossy(bytes).contains(DELIVERED_DAY)
                && !path.ends_with("dead-letter.jsonl")
        })
        .map(|(path, _)| path.clone())
        .expect("a state file naming the delivered day");

    const STATE_GARBAGE: &str = "\u{0}\u{0}not a state file {";
    const SPOOL_GARBAGE: &str = "{\"this is\": not an event";
    std::fs::write(&state, STATE_GARBAGE).expect("corrupt state");
    let mut spool_text = std::fs::read_to_string(&spool).expect("read spool");
    spool_text.push_str(SPOOL_GARBAGE);
    spool_text.push('\n');
    std::fs::write(&spool, spool_text).expect("corrupt spool");

    receiver.set_default(Reply::ok());
    let pulls = ce.request_count();
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    assert_eq!(
        ce.request_count(),
        pulls,
        "the spooled events are sent, not pulled again\n{}",
        run.describe()
    );

    // Nothing else lost: every spooled event delivered with the id it was spooled with.
    let delivered: Vec<Event> = receiver
        .accepted_events()
        .into_iter()
        .filter(|e| e.date == DAY)
        .collect();
    assert_eq!(
        sorted(delivered.iter().map(Event::line).collect()),
        sorted(ce.expected_lines(DAY, DAY_END)),
        "{}",
        run.describe()
    );
    assert_one_id_per_key(&receiver.all_events());

    // Moved aside, not dropped, and reported with both paths.
    let after = sandbox.state_files();
    for (original, garbage) in [(&state, STATE_GARBAGE), (&spool, SPOOL_GARBAGE)] {
        let aside = after
            .iter()
            .find(|(path, bytes)| {
                path != original && String::from_utf8_lossy(bytes).contains(garbage)
            })
            .map(|(path, _)| path.clone())
            .unwrap_or_else(|| {
                panic!(
                    "the bad bytes of {} were not kept\n{}",
                    original.display(),
                    run.describe()
                )
            });
        let named = run.stderr_lines_with(&[&original.display().to_string(), &file_name(&aside)]);
        assert!(
            !named.is_empty(),
            "no line names {} and {}\n{}",
            original.display(),
            aside.display(),
            run.describe()
        );
        assert!(
            named
                .iter()
                .any(|l| l.to_ascii_lowercase().contains("error")),
            "reported at error level\n{}",
            run.describe()
        );
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

// 7
/// Runs `run` as PID 1 of a new PID namespace, or says why it cannot.
pub(crate) fn as_pid_1(cmd: Cmd) -> Option<(Running, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: unshare --pid needs root");
        return None;
    }
    let probe = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "true"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            println!(
                "skipped: unshare --pid does not work here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Err(e) => {
            println!("skipped: no unshare: {e}");
            return None;
        }
    }
    let running = cmd
        .wrapped_in(&["unshare", "--pid", "--fork", "--kill-child"])
        .spawn();
    let mut inner = None;
    assert!(
        wait_until(Duration::from_secs(5), || {
            inner = children_of(running.pid()).first().copied();
            inner.is_some()
        }),
        "unshare started no child"
    );
    let inner = inner.expect("child pid");
    let status = std::fs::read_to_string(format!("/proc/{inner}/status")).unwrap_or_default();
    let nspid = status
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .unwrap_or("");
    assert!(
        nspid.split_whitespace().last() == Some("1"),
        "not PID 1 in its namespace: {nspid}"
    );
    Some((running, inner))
}

/// SIGTERM the inner PID 1, expect the whole thing to exit 0 within 2 s.
fn stop_pid_1(mut running: Running, inner: u32) -> support::Finished {
    let sent = Instant::now();
    signal_pid(inner, libc::SIGTERM);
    let status = running.wait_for_exit(Duration::from_secs(2));
    let took = sent.elapsed();
    let finished = running.finish();
    assert!(
        status.is_some(),
        "PID 1 did not exit within 2 s of SIGTERM\n{}",
        finished.describe()
    );
    finished.assert_code(0);
    assert!(took <= Duration::from_secs(2));
    finished
}

#[test]
fn sigterm_while_sleeping_as_pid_1_exits_0_within_2_s() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("pid1-sleep");
    let Some((running, inner)) = as_pid_1(service(&sandbox, &ce, &receiver, "")) else {
        return;
    };
    support::wait_idle(&running, &receiver, 1, WITHIN);
    stop_pid_1(running, inner);
}

#[test]
fn sigterm_while_delivering_as_pid_1_exits_0_within_2_s_and_keeps_the_rest() {
    let ce = FakeCostExplorer::with_groups(6, 100);
    let receiver = FakeReceiver::start();
    receiver.set_delay(Duration::from_millis(700));
    let sandbox = Sandbox::new("pid1-deliver");
    let Some((running, inner)) = as_pid_1(service(&sandbox, &ce, &receiver, "")) else {
        return;
    };
    assert!(
        receiver.wait_for_requests(2, WITHIN),
        "{}",
        running.stderr()
    );
    stop_pid_1(running, inner);
    let pulls = ce.request_count();
    assert!(
        receiver.request_count() < 6,
        "stopped too late to test anything"
    );

    // The rest was persisted: once for that day sends it without pulling.
    receiver.set_delay(Duration::ZERO);
    let yesterday = days_ago(1);
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", &yesterday])
        .run(WITHIN);
    run.assert_code(0);
    assert_eq!(ce.request_count(), pulls, "{}", run.describe());
    assert_one_id_per_key(&receiver.all_events());
    let expected: BTreeSet<(String, String)> = ce
        .expected_lines(&yesterday, &support::next_day(&yesterday))
        .into_iter()
        .map(|l| (l.date, l.service))
        .collect();
    assert_eq!(keys_of(&receiver.accepted_events()), expected);
}

#[test]
fn sigterm_while_sleeping_exits_0_within_2_s() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("sigterm");
    let running = service(&sandbox, &ce, &receiver, "").spawn();
    support::wait_idle(&running, &receiver, 1, WITHIN);
    stop(running);
}

// 8
#[test]
fn a_rejected_event_goes_to_dead_letter_and_the_rest_are_delivered() {
    let ce = FakeCostExplorer::with_groups(4, 100);
    let receiver = FakeReceiver::start();
    receiver.set_rule(|request| {
        request
            .body_text()
            .contains("Service 0002")
            .then(|| Reply::status(400).body("schema says no"))
    });
    let sandbox = Sandbox::new("dead-letter");
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(1);
    assert!(
        !run.stderr_lines_with(&["reject"]).is_empty(),
        "once says an event was rejected\n{}",
        run.describe()
    );

    let all = receiver.all_events();
    let rejected: Vec<&Event> = all.iter().filter(|e| e.service == "Service 0002").collect();
    assert_eq!(
        rejected.len(),
        1,
        "a 400 is not retried\n{}",
        run.describe()
    );
    let accepted = receiver.accepted_events();
    assert_eq!(accepted.len(), 3);
    assert!(accepted.iter().all(|e| e.service != "Service 0002"));

    let path = sandbox.state_dir().join("dead-letter.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", path.display(), run.describe()));
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{text}");
    let entry: Value = serde_json::from_str(lines[0]).expect("dead letter is a JSON line");
    assert!(lines[0].contains("400"), "status recorded: {entry}");
    assert!(
        lines[0].contains("schema says no"),
        "reason recorded: {entry}"
    );
    assert!(
        lines[0].contains(&rejected[0].id),
        "the event (with its id) recorded: {entry}"
    );
    assert!(lines[0].contains("Service 0002"), "{entry}");
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

// 9
#[test]
fn a_state_write_over_the_file_size_limit_fails_clearly_and_keeps_the_old_state() {
    const FIRST: &str = "2022-06-10";
    let ce = FakeCostExplorer::with_groups(6, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("fsize");
    sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", FIRST])
        .run(WITHIN)
        .assert_code(0);
    let before = sandbox.delivery_state();
    assert!(!before.is_empty(), "state was written");
    let delivered_before = receiver.request_count();

    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", DAY])
        .file_size_limit(300)
        .run(WITHIN);
    assert!(
        matches!(run.code, Some(c) if c != 0),
        "expected a failure exit, not a signal or success\n{}",
        run.describe()
    );
    let lower = run.stderr.to_ascii_lowercase();
    assert!(
        lower.contains("file too large")
            || lower.contains("too large")
            || lower.contains("no space"),
        "a clear error about the write\n{}",
        run.describe()
    );
    assert_eq!(
        receiver.request_count(),
        delivered_before,
        "nothing is sent before it is in the spool\n{}",
        run.describe()
    );
    let after = sandbox.delivery_state();
    for (path, bytes) in &before {
        let now = after.iter().find(|(p, _)| p == path).map(|(_, b)| b);
        assert_eq!(
            now,
            Some(bytes),
            "{} changed or vanished\n{}",
            path.display(),
            run.describe()
        );
    }

    // The old state still works: the first day is known as delivered, the second goes out.
    let pulls = ce.request_count();
    sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", FIRST])
        .run(WITHIN)
        .assert_code(0);
    assert_eq!(
        ce.request_count(),
        pulls,
        "the delivered day is not pulled again"
    );
    sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", DAY])
        .run(WITHIN)
        .assert_code(0);
    let delivered: BTreeSet<(String, String)> = keys_of(&receiver.accepted_events());
    let expected: BTreeSet<(String, String)> = ce
        .expected_lines(FIRST, DAY_END)
        .into_iter()
        .filter(|l| l.date == FIRST || l.date == DAY)
        .map(|l| (l.date, l.service))
        .collect();
    assert_eq!(delivered, expected);
}

// Beyond the numbered list: the preview and once's own rules.
#[test]
fn stdout_preview_neither_reads_nor_writes_state() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("preview");
    sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", DAY])
        .run(WITHIN)
        .assert_code(0);
    let before = sandbox.delivery_state();

    let run = sandbox
        .cmd(&ce.url(), "-", "")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    assert_eq!(
        run.stdout_lines().len(),
        2,
        "a delivered day is still previewed\n{}",
        run.describe()
    );
    assert_eq!(sandbox.delivery_state(), before, "state untouched");

    let fresh = Sandbox::new("preview-fresh");
    let run = fresh
        .cmd(&ce.url(), "-", "")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    assert!(
        fresh.delivery_state().is_empty(),
        "nothing written by a preview"
    );
}

#[test]
fn once_for_a_delivered_day_says_so_unless_forced() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("already");
    let once = || {
        sandbox
            .cmd(&ce.url(), &receiver.url(), "")
            .args(["once", "--date", DAY])
    };
    once().run(WITHIN).assert_code(0);
    assert_eq!((ce.request_count(), receiver.accepted_count()), (1, 2));

    let run = once().run(WITHIN);
    run.assert_code(0);
    assert_eq!(
        (ce.request_count(), receiver.accepted_count()),
        (1, 2),
        "{}",
        run.describe()
    );
    assert!(
        !run.stderr_lines_with(&["already delivered"]).is_empty(),
        "{}",
        run.describe()
    );

    let run = once().arg("--force").run(WITHIN);
    run.assert_code(0);
    assert_eq!(
        (ce.request_count(), receiver.accepted_count()),
        (2, 4),
        "{}",
        run.describe()
    );
    let ids: BTreeSet<String> = receiver
        .accepted_events()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(
        ids.len(),
        2,
        "a forced pull of the same numbers sends the same ids, so a consumer drops them"
    );
}

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
    once("").run(SOON).assert_code(0);
    let first_ids: BTreeSet<String> = receiver
        .accepted_events()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(first_ids.len(), 3);

    receiver.set_default(Reply::status(503));
    let forced = once("send_timeout_s: 2\n").arg("--force").run(SOON);
    forced.assert_code(1);
    assert_eq!(ce.request_count(), 2, "{}", forced.describe());
    let tried: BTreeSet<String> = receiver.all_events()[3..]
        .iter()
        .map(|e| e.id.clone())
        .collect();
    assert!(!tried.is_empty(), "{}", forced.describe());
    assert!(
        tried.is_subset(&first_ids),
        "the same numbers, the same ids\n{}",
        forced.describe()
    );

    receiver.set_default(Reply::ok());
    let run = once("").run(SOON);
    run.assert_code(0);
    assert_eq!(
        ce.request_count(),
        2,
        "the spooled forced events are sent, not pulled again\n{}",
        run.describe()
    );
    let resent: Vec<Event> = receiver.accepted_events()[3..].to_vec();
    assert_eq!(
        sorted(resent.iter().map(Event::line).collect()),
        sorted(ce.expected_lines(DAY, DAY_END)),
        "every forced event delivered once\n{}\n{}",
        forced.describe(),
        run.describe()
    );
    let resent_ids: BTreeSet<String> = resent.iter().map(|e| e.id.clone()).collect();
    assert_eq!(
        resent_ids, first_ids,
        "delivered with the ids they were first sent with"
    );
}

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
    assert!(receiver.wait_for_requests(1, SOON), "{}", first.stderr());
    let second = once().run(SOON);
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

    let first = first.wait(SOON);
    first.assert_code(0);
    assert_eq!(receiver.request_count(), 3, "nothing sent twice");
    assert_eq!(
        sorted_lines(&receiver),
        sorted(ce.expected_lines(DAY, DAY_END))
    );
}

#[test]
fn a_named_state_dir_that_cannot_be_used_exits_2() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("bad-state-dir");
    let blocker = sandbox.write("a-file", "not a directory");
    let state_dir = blocker.join("state");
    let config = sandbox.write(
        "config.yml",
        &format!(
            "target: \"{}\"\nendpoint: \"{}\"\nstate_dir: \"{}\"\n",
            receiver.url(),
            ce.url(),
            state_dir.display()
        ),
    );
    let secret = sandbox.write_secret();
    let run = Cmd::new()
        .config(&config)
        .secret(&secret)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(2);
    assert!(
        !run.stderr_lines_with(&["state_dir"]).is_empty(),
        "{}",
        run.describe()
    );
    assert_eq!((ce.request_count(), receiver.request_count()), (0, 0));
}
