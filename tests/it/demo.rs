//! `make demo`: only the events on stdout (one CloudEvent a line; the build and the logs on stderr), from the binaries where CARGO_TARGET_DIR says.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::Sandbox;
use crate::support::process::run;
use crate::support::runner::binary;

#[test]
fn make_demo_prints_only_events_and_runs_the_binaries_of_cargo_target_dir() {
    let built = binary();
    let fake = built.with_file_name("examples").join("fake-cost-explorer");
    if !fake.is_file() || Command::new("make").arg("--version").output().is_err() {
        // `cargo test` builds the examples; a run without them (or without make) says so.
        eprintln!("skipped: needs make and {}", fake.display());
        return;
    }
    // A CARGO_TARGET_DIR of its own whose binary says it was the one run.
    let sandbox = Sandbox::new("demo");
    let debug = sandbox.path("cargo-target/debug");
    std::fs::create_dir_all(debug.join("examples")).expect("mkdir");
    std::os::unix::fs::symlink(&fake, debug.join("examples/fake-cost-explorer")).expect("link");
    let wrapper = debug.join("source-aws-billing");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho 'demo used CARGO_TARGET_DIR' >&2\nexec '{}' \"$@\"\n",
            built.display()
        ),
    )
    .expect("write the wrapper");
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");

    let mut make = Command::new("make");
    make.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .args(["--no-print-directory", "demo", "CARGO=true"])
        .env("CARGO_TARGET_DIR", sandbox.path("cargo-target"));
    let out = run(make, Duration::from_secs(60));
    assert!(out.status.success(), "{}", out.describe("make demo"));
    assert!(
        out.stderr.contains("demo used CARGO_TARGET_DIR"),
        "{}",
        out.describe("make demo")
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(!lines.is_empty(), "{}", out.describe("make demo"));
    for line in lines {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "not an event ({e}): {line:?}\n{}",
                out.describe("make demo")
            )
        });
        assert_eq!(event["specversion"], "1.0", "{line}");
        assert_eq!(event["data"]["date"], "2022-06-13", "{line}");
    }
}
