//! No input, environment or full/closed stream makes the binary panic: full stdout is exit 1 and one line, a closed pipe a quiet stop.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support;
use crate::support::{FakeCostExplorer, Sandbox};

const DAY: &str = "2022-06-13";
const WITHIN: Duration = Duration::from_secs(20);
/// A tighter deadline, for runs that end at once.
const SOON: Duration = Duration::from_secs(15);

/// Runs the binary with `stdout` as its standard output; environment scrubbed of our variables.
fn run_to(args: &[OsString], stdout: Stdio, env: &[(&str, OsString)]) -> Output {
    let mut command = Command::new(support::runner::binary());
    command.args(args);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().to_string();
        if name.starts_with("AWS_")
            || name.starts_with("CONNECTOR_")
            || name.contains("PROXY")
            || name.contains("proxy")
            || name == "LOG_LEVEL"
        {
            command.env_remove(&name);
        }
    }
    for (k, v) in env {
        command.env(k, v);
    }
    command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .expect("run the binary")
}

fn assert_no_panic(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !stderr.contains("panicked") && out.status.signal() != Some(libc::SIGABRT),
        "panicked: {:?}\n{stderr}",
        out.status
    );
    stderr
}

fn dev_full() -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full"),
    )
}

/// The write end of a pipe whose read end is already closed: every write fails with EPIPE.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Stdio::from(writer)
}

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

#[test]
fn help_and_version_to_a_full_stdout_exit_1_with_one_line() {
    for flag in ["--help", "--version"] {
        let out = run_to(&args(&[flag]), dev_full(), &[]);
        let stderr = assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(1), "{flag}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{flag}: {stderr}");
        assert!(
            lines[0].contains("stdout: No space left on device"),
            "{stderr}"
        );
    }
}

#[test]
fn help_and_version_to_a_closed_pipe_stop_quietly() {
    for flag in ["--help", "--version"] {
        let out = run_to(&args(&[flag]), closed_pipe(), &[]);
        let stderr = assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(0), "{flag}: {stderr}");
        assert!(stderr.is_empty(), "{flag}: {stderr}");
    }
}

/// `once --target -` (events on stdout) with stdout going to `stdout`.
fn preview_to(stdout: Stdio) -> Output {
    let ce = FakeCostExplorer::with_groups(3, 100);
    let sandbox = Sandbox::new("preview-stdout");
    let config = sandbox.write_config(&ce.url(), "-", "");
    let secret = sandbox.write_secret();
    let list = [
        OsString::from("once"),
        "--date".into(),
        DAY.into(),
        "--config".into(),
        config.into_os_string(),
        "--secret".into(),
        secret.into_os_string(),
    ];
    run_to(&list, stdout, &[])
}

#[test]
fn events_to_a_full_stdout_exit_1_with_a_clear_line() {
    let out = preview_to(dev_full());
    let stderr = assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("stdout: No space left on device"),
        "{stderr}"
    );
}

#[test]
fn events_to_a_closed_pipe_stop_quietly() {
    let out = preview_to(closed_pipe());
    let stderr = assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("ERROR"), "{stderr}");
}

#[test]
fn arguments_and_variables_that_are_not_utf8_are_refused() {
    let bad = || OsString::from_vec(vec![b'x', 0xff]);
    let out = run_to(
        &[OsString::from("once"), "--date".into(), bad()],
        Stdio::null(),
        &[],
    );
    let stderr = assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("argument 3") && stderr.contains("UTF-8"),
        "{stderr}"
    );
    for var in [
        "CONNECTOR_STATE_DIR",
        "HTTPS_PROXY",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        let out = run_to(&args(&["once"]), Stdio::null(), &[(var, bad())]);
        let stderr = assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(2), "{var}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(var) && stderr.contains("UTF-8"), "{stderr}");
    }
}

#[test]
fn dates_out_of_any_billing_range_are_refused_before_any_call() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new("far-dates");
    for range in [
        &["--date", "-9999-01-01"][..],
        &["--date", "0000-01-01"],
        &["--from", "1066-10-14", "--to", "2022-06-13"],
        &["--date", "9999-12-31"],
        &["--from", "2022-06-13", "--to", "9999-12-31"],
    ] {
        let run = sandbox
            .cmd(&ce.url(), "-", "")
            .arg("once")
            .args(range.iter().copied())
            .run(WITHIN);
        run.assert_code(2);
        assert_eq!(run.stderr_lines().len(), 1, "{}", run.describe());
    }
    assert_eq!(ce.request_count(), 0);
}

#[test]
fn once_for_the_last_representable_day_is_a_usage_error_not_a_panic() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new("end-of-time");
    let run = sandbox
        .cmd(&ce.url(), "-", "")
        .args(["once", "--date", "9999-12-31", "--target", "-"])
        .run(SOON);
    run.assert_code(2);
    assert_eq!(run.stderr_lines().len(), 1, "{}", run.describe());
    assert_eq!(run.stdout, "", "{}", run.describe());
    assert_eq!(ce.request_count(), 0);
}

#[test]
fn huge_numbers_in_the_config_are_refused() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new("huge");
    for extra in [
        "pull_hour: 99999999999999999999999999\n",
        "max_catchup_days: 18446744073709551616\n",
        "send_timeout_s: -1\n",
        "max_spool_mb: 1e300\n",
    ] {
        let run = sandbox
            .cmd(&ce.url(), "-", extra)
            .args(["once", "--date", DAY])
            .run(WITHIN);
        run.assert_code(2);
        assert_eq!(run.stderr_lines().len(), 1, "{}", run.describe());
    }
    assert_eq!(ce.request_count(), 0);
}
