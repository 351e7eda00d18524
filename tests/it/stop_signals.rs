//! Stop signals: SIGTERM, SIGINT, SIGHUP and SIGQUIT each stop the service cleanly (exit 0,
//! marked stopped), also as PID 1, and no Cost Explorer request goes out after a stop.

use std::time::Duration;

use serde_json::Value;

use crate::reliability::as_pid_1;
use crate::support::runner::signal_pid;
use crate::support::{self, Cmd, FakeCostExplorer, FakeReceiver, Finished, Running, Sandbox};

/// Deadline for a run or a condition; a passing test never waits this long.
const WITHIN: Duration = Duration::from_secs(15);

const SIGNALS: [(i32, &str); 4] = [
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGQUIT, "SIGQUIT"),
];

/// The service, logging at debug, with yesterday due at once.
fn service(sandbox: &Sandbox, ce: &FakeCostExplorer, receiver: &FakeReceiver) -> Cmd {
    sandbox
        .cmd(&ce.url(), &receiver.url(), "pull_hour: 0\n")
        .env("LOG_LEVEL", "debug")
        .arg("run")
}

fn status_json(sandbox: &Sandbox) -> Value {
    let run = Cmd::new()
        .config(&sandbox.path("config.yml"))
        .args(["status", "--json"])
        .run(WITHIN);
    run.assert_code(0);
    serde_json::from_str(run.stdout.trim()).expect("status --json prints JSON")
}

/// Sends `signal` to `pid` and expects `running` to exit 0 within 2 s, its heartbeat
/// marked stopped.
fn stops_cleanly(mut running: Running, pid: u32, signal: i32, name: &str, sandbox: &Sandbox) {
    signal_pid(pid, signal);
    let exited = running.wait_for_exit(Duration::from_secs(2));
    let finished: Finished = running.finish();
    assert!(
        exited.is_some(),
        "did not exit within 2 s of {name}\n{}",
        finished.describe()
    );
    finished.assert_code(0);
    assert_eq!(
        finished
            .stderr_lines_with(&[&format!("{name} received")])
            .len(),
        1,
        "{}",
        finished.describe()
    );
    let report = status_json(sandbox);
    assert_eq!(report["heartbeat"]["stopped"], true, "{name}: {report}");
}

#[test]
fn each_stop_signal_stops_the_service_cleanly() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    for (signal, name) in SIGNALS {
        let receiver = FakeReceiver::start();
        let sandbox = Sandbox::new("stop-signal");
        let running = service(&sandbox, &ce, &receiver).spawn();
        support::wait_idle(&running, &receiver, 1, WITHIN);
        let pid = running.pid();
        stops_cleanly(running, pid, signal, name, &sandbox);
    }
}

#[test]
fn each_stop_signal_stops_the_service_cleanly_as_pid_1() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    for (signal, name) in SIGNALS {
        let receiver = FakeReceiver::start();
        let sandbox = Sandbox::new("stop-signal-pid1");
        let Some((running, inner)) = as_pid_1(service(&sandbox, &ce, &receiver)) else {
            return;
        };
        support::wait_idle(&running, &receiver, 1, WITHIN);
        stops_cleanly(running, inner, signal, name, &sandbox);
    }
}

#[test]
fn no_request_goes_out_after_a_stop_during_a_long_pull() {
    // 40 groups, 2 a page: a pull of 20 pages; the third is held in flight.
    let ce = FakeCostExplorer::with_groups(40, 2);
    ce.hold_from(3);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("stop-mid-pull");
    let running = service(&sandbox, &ce, &receiver).spawn();
    assert!(
        support::wait_until(WITHIN, || ce.request_count() == 3),
        "{}",
        running.stderr()
    );
    let pid = running.pid();
    signal_pid(pid, libc::SIGTERM);
    let asked = running.wait_for_stderr("SIGTERM received", WITHIN);
    // The page in flight is answered now, well within the grace period.
    ce.release();
    assert!(asked, "{}", running.stderr());
    let mut running = running;
    let exited = running.wait_for_exit(WITHIN);
    let finished = running.finish();
    assert!(exited.is_some(), "{}", finished.describe());
    finished.assert_code(0);
    assert_eq!(
        ce.request_count(),
        3,
        "no request after the stop\n{}",
        finished.describe()
    );
    assert_eq!(
        receiver.request_count(),
        0,
        "nothing of the cut pull is sent"
    );
    let report = status_json(&sandbox);
    assert_eq!(
        report["ce_requests_this_month"], 3,
        "counted as sent: {report}"
    );
    assert_eq!(report["heartbeat"]["stopped"], true, "{report}");
}

#[test]
fn a_stop_whose_request_outlasts_the_grace_still_exits_0_marked_stopped() {
    let ce = FakeCostExplorer::with_groups(40, 2);
    ce.hold_from(2);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("stop-grace");
    let mut running = service(&sandbox, &ce, &receiver).spawn();
    assert!(
        support::wait_until(WITHIN, || ce.request_count() == 2),
        "{}",
        running.stderr()
    );
    signal_pid(running.pid(), libc::SIGTERM);
    // The held page is never answered: the grace period ends the process.
    let exited = running.wait_for_exit(WITHIN);
    ce.release();
    let finished = running.finish();
    assert!(exited.is_some(), "{}", finished.describe());
    finished.assert_code(0);
    assert_eq!(
        finished
            .stderr_lines_with(&["the request in flight was abandoned"])
            .len(),
        1,
        "{}",
        finished.describe()
    );
    assert_eq!(ce.request_count(), 2);
    let report = status_json(&sandbox);
    assert_eq!(report["heartbeat"]["stopped"], true, "{report}");
}
