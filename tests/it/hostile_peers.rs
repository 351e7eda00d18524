//! The binary against peers that send too much or too slowly: memory stays under 32 MiB, every request ends by its deadline, peer text cannot forge a log line.

use std::io;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support;
use crate::support::cost_explorer::{CONTENT_TYPE, answer, day_result};
use crate::support::http::{Request, Server, drip, stream_body};
use crate::support::{FakeCostExplorer, FakeReceiver, Sandbox};

const DAY: &str = "2022-06-13";
const MIB: u64 = 1024 * 1024;
/// The Kubernetes manifest's memory limit.
const LIMIT_KIB: u64 = 32 * 1024;

/// A run of the binary: exit code, stderr, peak RSS in KiB.
struct Measured {
    code: Option<i32>,
    stderr: String,
    max_rss_kib: u64,
}

/// The binary's peak RSS so far (VmHWM), while it runs.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the binary with `args` (env cleared), reading its peak RSS (VmHWM, which only grows)
/// until it exits; kills it and panics if it has not exited within `within`. (wait4's
/// ru_maxrss would count the test process itself: a spawned child records the memory of
/// the process it was forked from.)
fn measured(sandbox: &Sandbox, args: &[&str], within: Duration) -> Measured {
    let stderr_path = sandbox.path("stderr.log");
    let mut child = Command::new(support::runner::binary())
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(sandbox.path("stdout.log")).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("spawn the binary");
    let deadline = Instant::now() + within;
    let mut max_rss_kib = 0;
    let status = loop {
        if let Some(kib) = vm_hwm_kib(child.id()) {
            max_rss_kib = max_rss_kib.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running after {within:?}: {}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(2)); // sampling a child that runs for seconds
    };
    Measured {
        code: status.code(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
        max_rss_kib,
    }
}

/// `once --date DAY` against Cost Explorer `ce` and `target`, measured (at most 120 s).
fn once_measured(sandbox: &Sandbox, ce: &str, target: &str) -> Measured {
    let config = sandbox.write_config(ce, target, "").display().to_string();
    let secret = sandbox.write_secret().display().to_string();
    let args = [
        "once", "--date", DAY, "--config", &config, "--secret", &secret,
    ];
    measured(sandbox, &args, Duration::from_secs(120))
}

fn assert_within_limit(run: &Measured) {
    assert!(
        run.max_rss_kib < LIMIT_KIB,
        "peak RSS {} KiB\n{}",
        run.max_rss_kib,
        run.stderr
    );
}

/// A fake Cost Explorer endpoint answering every request by `write`.
fn raw_ce(
    write: impl Fn(&Request, &mut TcpStream) -> io::Result<()> + Send + Sync + 'static,
) -> Server {
    Server::bind_raw(Arc::new(write)).expect("bind")
}

fn head(status: &str, length: Option<u64>) -> String {
    let length = match length {
        Some(n) => format!("Content-Length: {n}\r\n"),
        None => "Transfer-Encoding: chunked\r\n".to_string(),
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\n{length}Connection: close\r\n\r\n"
    )
}

#[test]
fn a_200_mb_answer_page_fails_the_pull_within_32_mib() {
    // Content-Length tells the truth here: 200 MB of a JSON string that never ends.
    let ce = raw_ce(|_, s| {
        stream_body(
            s,
            &head("200 OK", Some(200_000_000)),
            br#"{"ResultsByTime":[],"x":""#,
            b'a',
            200_000_000,
        )
    });
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("huge-page");
    let run = once_measured(&sandbox, &ce.url(), &receiver.url());
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("Cost Explorer sent an answer page larger than 2 MiB; not read further"),
        "{}",
        run.stderr
    );
    assert_within_limit(&run);
    assert_eq!(receiver.request_count(), 0);
}

#[test]
fn a_chunked_page_without_end_and_a_lying_length_are_capped_too() {
    // Chunked: no length at all. One 300 MB chunk whose bytes just keep coming.
    let ce = raw_ce(|_, s| {
        let mut prefix = format!("{:x}\r\n", 300_000_000u64).into_bytes();
        prefix.extend_from_slice(br#"{"ResultsByTime":[],"x":""#);
        stream_body(s, &head("200 OK", None), &prefix, b' ', 300_000_000)
    });
    let sandbox = Sandbox::new("chunked-page");
    let run = once_measured(&sandbox, &ce.url(), "-");
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("larger than 2 MiB"), "{}", run.stderr);
    assert_within_limit(&run);

    // Content-Length claims 1 TB and 100 MB follow: nothing is allocated for the claim.
    let ce = raw_ce(|_, s| stream_body(s, &head("200 OK", Some(1 << 40)), b"[", b' ', 100_000_000));
    let run = once_measured(&sandbox, &ce.url(), "-");
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("larger than 2 MiB"), "{}", run.stderr);
    assert_within_limit(&run);
}

#[test]
fn a_50_mb_error_body_is_read_only_to_64_kib() {
    let ce = raw_ce(|_, s| {
        stream_body(
            s,
            &head("500 Internal Server Error", Some(50_000_000)),
            b"<html>",
            b'x',
            50_000_000,
        )
    });
    let sandbox = Sandbox::new("huge-error");
    let run = once_measured(&sandbox, &ce.url(), "-");
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("Cost Explorer answered HTTP 500 with a non-JSON body: \"<html>xxx"),
        "{}",
        run.stderr
    );
    assert_within_limit(&run);
    // The log line shows a snippet, not the body.
    assert!(run.stderr.lines().all(|l| l.len() < 1000), "{}", run.stderr);
}

#[test]
fn a_target_answer_of_100_mb_is_not_read_past_64_kib() {
    let ce = FakeCostExplorer::with_groups(2, 10);
    let target = Server::bind_raw(Arc::new(|_: &Request, s: &mut TcpStream| {
        stream_body(
            s,
            &head("200 OK", Some(100_000_000)),
            b"",
            b'k',
            100_000_000,
        )
    }))
    .expect("bind");
    let sandbox = Sandbox::new("huge-target-answer");
    let run = once_measured(&sandbox, &ce.url(), &target.url());
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_within_limit(&run);
}

#[test]
fn a_page_just_under_the_cap_is_read_and_parsed_within_32_mib() {
    // The worst page that passes: as many tiny groups as 2 MiB holds (about 28,000).
    let page = |n: usize| {
        let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        let groups: Vec<(Vec<&str>, &str)> =
            names.iter().map(|k| (vec![k.as_str()], "1")).collect();
        serde_json::json!({"ResultsByTime": [day_result(DAY, &groups)]})
    };
    let mut n = 35_000;
    let body = loop {
        let body = page(n);
        let len = body.to_string().len() as u64;
        if len <= 2 * MIB {
            assert!(len > 2 * MIB - 64 * 1024, "{len}");
            break body;
        }
        n -= ((len - 2 * MIB) / 80).max(1) as usize;
    };
    let ce = FakeCostExplorer::with_groups(1, 10);
    ce.always(answer(&body));
    let sandbox = Sandbox::new("page-at-cap");
    let run = once_measured(&sandbox, &ce.url(), "-");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("{n} groups in 1 page(s)")),
        "{}",
        run.stderr
    );
    eprintln!(
        "peak RSS parsing a {n}-group page at the cap: {} KiB",
        run.max_rss_kib
    );
    assert_within_limit(&run);
}

#[test]
fn a_cost_explorer_error_cannot_forge_log_lines() {
    let ce = FakeCostExplorer::with_groups(1, 10);
    let message =
        "denied\r\n2026-11-24T02:00:00Z INFO delivered 42 events\u{1b}[2K\u{1b}]0;pwned\u{7}";
    ce.always(support::cost_explorer::error_response(
        400,
        serde_json::json!({"__type": "AccessDeniedException\u{1b}[31m", "message": message})
            .to_string(),
    ));
    let sandbox = Sandbox::new("forged-log");
    let run = sandbox
        .cmd(&ce.url(), "-", "")
        .args(["once", "--date", DAY])
        .run(Duration::from_secs(30));
    run.assert_code(1);
    assert!(
        !run.stderr.contains('\u{1b}')
            && !run.stderr.contains('\r')
            && !run.stderr.contains('\u{7}'),
        "{:?}",
        run.stderr
    );
    let forged: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("2026-11-24T02:00:00Z"))
        .collect();
    assert!(forged.is_empty(), "{forged:?}");
    assert!(
        run.stderr.contains(
            r"denied 2026-11-24T02:00:00Z INFO delivered 42 events\u{1b}[2K\u{1b}]0;pwned\u{7}"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn a_target_that_drips_its_headers_is_given_up_within_send_timeout_plus_30_s() {
    // The status line, then one header line a second, for ten minutes.
    let target = Server::bind_raw(Arc::new(|_: &Request, s: &mut TcpStream| {
        drip(
            s,
            "HTTP/1.1 200 OK\r\n",
            b"X-Drip: 1\r\n",
            Duration::from_secs(1),
            600,
        )
    }))
    .expect("bind");
    let ce = FakeCostExplorer::with_groups(1, 10);
    let sandbox = Sandbox::new("drip-target");
    let started = Instant::now();
    // The runner kills it and fails the test past send_timeout_s + 30 s (+ 15 s of slack).
    let run = sandbox
        .cmd(&ce.url(), &target.url(), "send_timeout_s: 5\n")
        .args(["once", "--date", DAY])
        .run(Duration::from_secs(5 + 30 + 15));
    run.assert_code(1);
    assert!(run.stderr.contains("timed out"), "{}", run.describe());
    assert!(
        run.stderr.contains("giving up after send_timeout_s 5s"),
        "{}",
        run.describe()
    );
    eprintln!("once gave up after {:?}", started.elapsed());
}
