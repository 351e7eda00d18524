//! The demo's fake Cost Explorer: serves generated, paginated daily costs on loopback until killed.
//!
//! Usage: fake-cost-explorer [--groups N] [--page-size N] [--url-file PATH]
//! Prints `listening on http://127.0.0.1:PORT` on stdout once it accepts connections.

// The demo needs only the fake Cost Explorer of the shared support.
#[allow(dead_code, unused_imports)]
#[path = "mod.rs"]
mod support;

use std::io::Write;
use std::process::ExitCode;

use support::{CeOptions, FakeCostExplorer};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("fake-cost-explorer: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut options = CeOptions {
        groups_per_day: 7,
        page_size: 4,
        // The demo may use any credentials; signatures are never verified here.
        key_id: None,
        ..CeOptions::default()
    };
    let mut url_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--groups" => options.groups_per_day = parse_count("--groups", &value("--groups")?)?,
            "--page-size" => {
                options.page_size = parse_count("--page-size", &value("--page-size")?)?
            }
            "--url-file" => url_file = Some(value("--url-file")?),
            "--help" | "-h" => {
                println!(
                    "usage: fake-cost-explorer [--groups N] [--page-size N] [--url-file PATH]"
                );
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }

    let fake = FakeCostExplorer::start(options);
    let url = fake.url();
    if let Some(path) = url_file {
        // Write then rename, so a reader polling for the file never sees half a URL.
        let temporary = format!("{path}.tmp");
        std::fs::write(&temporary, format!("{url}\n"))
            .and_then(|()| std::fs::rename(&temporary, &path))
            .map_err(|e| format!("write {path}: {e}"))?;
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {url}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("stdout: {e}"))?;

    let mut seen = 0;
    let mut violations_seen = 0;
    loop {
        // Serve until killed, reporting each request on stderr as it comes.
        std::thread::sleep(std::time::Duration::from_millis(200));
        let requests = fake.requests();
        let served = fake.served();
        for (request, answer) in requests.iter().zip(served.iter()).skip(seen) {
            let period = request
                .json()
                .map(|b| format!("{} .. {}", b["TimePeriod"]["Start"], b["TimePeriod"]["End"]))
                .unwrap_or_default();
            eprintln!(
                "fake-cost-explorer: GetCostAndUsage {period} -> {} with {} groups{}",
                answer.status,
                answer.groups,
                if answer.next_token.is_some() {
                    ", more pages"
                } else {
                    ""
                }
            );
        }
        seen = served.len().min(requests.len());
        let violations = fake.violations();
        for violation in violations.iter().skip(violations_seen) {
            eprintln!("fake-cost-explorer: refused {violation}");
        }
        violations_seen = violations.len();
    }
}

fn parse_count(name: &str, value: &str) -> Result<usize, String> {
    value
        .parse()
        .map_err(|_| format!("{name} expects a number, got {value:?}"))
}
