//! The records `status` reads (heartbeat.json, last-pull.json) damaged, a state_dir that is
//! not there, and a lock that is not a file: each named in one line, never a hang.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::runner::stop;
use crate::support::{self, Cmd, FakeCostExplorer, FakeReceiver, Finished, Sandbox, days_ago};

/// Deadline for a run or a condition; a passing test never waits this long.
const WITHIN: Duration = Duration::from_secs(15);

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
    serde_json::from_str(run.stdout.trim()).expect("status --json prints JSON")
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().expect("UTF-8 path")).expect("no NUL");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// The ways a record file was found damaged (a FIFO: see `put`).
const DAMAGE: [(&str, &[u8]); 6] = [
    ("empty", b""),
    ("garbage", b"garbage\n"),
    ("non-UTF-8", b"{\"pid\":1,\"acted\":\"\xff\"}\n"),
    ("zero-filled", &[0u8; 96]),
    ("cut mid-line", b"{\"time\":\"2026-11-30T02:00:01Z\",\"da"),
    ("fifo", b""),
];

fn put(path: &Path, kind: &str, bytes: &[u8]) {
    if kind == "fifo" {
        mkfifo(path);
    } else {
        std::fs::write(path, bytes).expect("write damage");
    }
}

fn kept_aside(sandbox: &Sandbox, name: &str) -> usize {
    std::fs::read_dir(sandbox.state_dir())
        .expect("state_dir")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{name}.corrupt-"))
        })
        .count()
}

#[test]
fn damaged_records_are_named_by_status_and_replaced_at_the_next_write() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    for (kind, bytes) in DAMAGE {
        let sandbox = Sandbox::new("damaged-records");
        let receiver = FakeReceiver::start();
        sandbox.write_config(&ce.url(), &receiver.url(), "pull_hour: 0\n");
        put(&sandbox.state_dir().join("heartbeat.json"), kind, bytes);
        put(&sandbox.state_dir().join("last-pull.json"), kind, bytes);

        // Damage is reported, not a failure of status.
        let human = status(&sandbox, &[]);
        human.assert_code(0);
        for line in ["last pull          damaged", "heartbeat          damaged"] {
            assert!(human.stdout.contains(line), "{kind}: {}", human.describe());
        }
        for name in ["heartbeat.json: damaged: ", "last-pull.json: damaged: "] {
            let named = human
                .stdout_lines()
                .into_iter()
                .filter(|l| l.starts_with("damaged            ") && l.contains(name))
                .count();
            assert_eq!(named, 1, "{kind}: {name}\n{}", human.describe());
        }
        let report = status_json(&sandbox);
        assert_eq!(report["last_pull"], Value::Null, "{kind}: {report}");
        assert_eq!(report["heartbeat"], Value::Null, "{kind}: {report}");
        assert_eq!(
            report["damaged_records"].as_array().map(Vec::len),
            Some(2),
            "{kind}: {report}"
        );
        // Whether the service is alive cannot be told: --check fails, and says why.
        let check = status(&sandbox, &["--check"]);
        check.assert_code(1);
        assert!(
            check.stdout.contains("heartbeat.json: damaged")
                && check.stdout.contains("cannot be told"),
            "{kind}: {}",
            check.describe()
        );

        // A pull writes last-pull.json again and keeps the damaged one aside.
        let once = sandbox
            .cmd(&ce.url(), &receiver.url(), "pull_hour: 0\n")
            .args(["once", "--date", &days_ago(1)])
            .run(WITHIN);
        once.assert_code(0);
        assert_eq!(
            once.stderr_lines_with(&["last-pull.json: damaged", "kept it as"])
                .len(),
            1,
            "{kind}: {}",
            once.describe()
        );
        assert_eq!(kept_aside(&sandbox, "last-pull.json"), 1, "{kind}");
        let report = status_json(&sandbox);
        assert_eq!(report["last_pull"]["ok"], true, "{kind}: {report}");
        assert_eq!(
            report["damaged_records"].as_array().map(Vec::len),
            Some(1),
            "{kind}: the heartbeat waits for the service: {report}"
        );

        // The service writes its heartbeat again at once.
        let running = sandbox
            .cmd(&ce.url(), &receiver.url(), "pull_hour: 0\n")
            .env("LOG_LEVEL", "debug")
            .arg("run")
            .spawn();
        assert!(
            running.wait_for_stderr(support::IDLE, WITHIN),
            "{}",
            running.stderr()
        );
        status(&sandbox, &["--check"]).assert_code(0);
        let report = status_json(&sandbox);
        assert_eq!(report.get("damaged_records"), None, "{kind}: {report}");
        assert_eq!(kept_aside(&sandbox, "heartbeat.json"), 1, "{kind}");
        let finished = stop(running);
        assert_eq!(
            finished
                .stderr_lines_with(&["heartbeat.json: damaged", "kept it as"])
                .len(),
            1,
            "{kind}: {}",
            finished.describe()
        );
    }
}

#[test]
fn status_on_a_state_dir_that_does_not_exist_says_so_and_exits_1() {
    let sandbox = Sandbox::new("status-no-dir");
    let missing = sandbox.path("never-made");
    sandbox.write(
        "config.yml",
        &format!(
            "target: \"http://127.0.0.1:9\"\nstate_dir: \"{}\"\n",
            missing.display()
        ),
    );
    for args in [&[][..], &["--json"], &["--check"]] {
        let run = status(&sandbox, args);
        run.assert_code(1);
        let said = format!("{}{}", run.stdout, run.stderr);
        let lines: Vec<&str> = said
            .lines()
            .filter(|l| l.contains("does not exist"))
            .collect();
        assert_eq!(lines.len(), 1, "{args:?}: {}", run.describe());
        assert!(
            lines[0].contains(&missing.display().to_string()),
            "{}",
            lines[0]
        );
        assert!(!missing.exists(), "status makes nothing");
    }
}

#[test]
fn a_fifo_for_the_lock_is_named_and_never_waited_on() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("fifo-lock");
    mkfifo(&sandbox.state_dir().join("lock"));
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["once", "--date", &days_ago(1)])
        .run(WITHIN);
    run.assert_code(1);
    assert_eq!(
        run.stderr_lines_with(&["lock: not a regular file (a FIFO)"])
            .len(),
        1,
        "{}",
        run.describe()
    );
    assert_eq!(ce.request_count(), 0, "nothing is pulled without the lock");
}
