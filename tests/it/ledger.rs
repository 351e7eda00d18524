//! The Cost Explorer request ledger through damage and power cuts: `max_monthly_requests`
//! holds whatever happens to `ce-requests.json`, counted against the fake's own count.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::process;
use crate::support::runner::{config_yaml, secret_yaml};
use crate::support::{Cmd, FakeCostExplorer, FakeReceiver, Finished, Sandbox, days_ago};

/// Deadline for a run or a condition; a passing test never waits this long.
const WITHIN: Duration = Duration::from_secs(15);

const CAP: u64 = 5;

fn once(sandbox: &Sandbox, ce: &FakeCostExplorer, receiver: &FakeReceiver, day: &str) -> Finished {
    sandbox
        .cmd(
            &ce.url(),
            &receiver.url(),
            &format!("max_monthly_requests: {CAP}\n"),
        )
        .args(["once", "--date", day])
        .run(WITHIN)
}

fn status_json(config: &Path) -> Value {
    let run = Cmd::new()
        .config(config)
        .args(["status", "--json"])
        .run(WITHIN);
    run.assert_code(0);
    serde_json::from_str(run.stdout.trim()).expect("status --json prints JSON")
}

/// What was done to the ledger, by its bytes as written.
fn damaged(kind: &str, whole: &[u8]) -> Vec<u8> {
    let cut = |n: usize| whole[..n.min(whole.len())].to_vec();
    match kind {
        "emptied" => Vec::new(),
        "zero-filled" => vec![0; whole.len()],
        "garbled" => whole.iter().map(|b| b.wrapping_mul(7) ^ 0x5a).collect(),
        "one byte changed" => {
            let mut b = whole.to_vec();
            let at = b.iter().position(|c| c.is_ascii_digit()).expect("a digit");
            b[at] = if b[at] == b'9' { b'0' } else { b[at] + 1 };
            b
        }
        "torn at 40" => cut(40),
        "torn at a third" => cut(whole.len() / 3),
        "torn at the middle plus 40" => cut(whole.len() / 2 + 40),
        "torn one byte short" => cut(whole.len() - 1),
        "garbage appended" => [whole, b"\x00garbage\xff\n"].concat(),
        other => panic!("no damage {other}"),
    }
}

/// A cap of CAP, 2 requests a day (3 groups, 2 a page): one day pulled, the ledger damaged,
/// then a day after day until the cap stops it: never more than CAP requests in all.
fn the_cap_holds_through(kind: &str) {
    let sandbox = Sandbox::new("ledger-damage");
    let ce = FakeCostExplorer::with_groups(3, 2);
    let receiver = FakeReceiver::start();
    once(&sandbox, &ce, &receiver, &days_ago(6)).assert_code(0);
    assert_eq!(ce.request_count(), 2);
    let ledger = sandbox.state_dir().join("ce-requests.json");
    let whole = std::fs::read(&ledger).expect("the ledger");
    std::fs::write(&ledger, damaged(kind, &whole)).expect("damage the ledger");

    let mut named = 0;
    let mut refused = None;
    for n in (1..=5).rev() {
        let run = once(&sandbox, &ce, &receiver, &days_ago(n));
        named += run.stderr_lines_with(&["ce-requests.json: damaged"]).len();
        if run.code == Some(1) {
            refused = Some(run);
            break;
        }
        run.assert_code(0);
    }
    let paid = ce.request_count() as u64;
    assert!(
        paid <= CAP,
        "{kind}: {paid} paid requests past a cap of {CAP}"
    );
    assert!(paid >= 2, "{kind}");
    let refused = refused.unwrap_or_else(|| panic!("{kind}: the cap never stopped a run"));
    let cap_lines = refused.stderr_lines_with(&["max_monthly_requests 5"]);
    assert_eq!(cap_lines.len(), 1, "{kind}: {}", refused.describe());
    if kind == "torn one byte short" || kind == "garbage appended" {
        // Both records whole: the count is exact.
        assert_eq!(paid, CAP, "{kind}");
    }
    if paid == 2 {
        // Nothing readable: the month's count is lost and the cap taken as reached, with
        // the way to reset it.
        assert!(
            cap_lines[0].contains("taken as reached") && cap_lines[0].contains("delete"),
            "{kind}: {}",
            cap_lines[0]
        );
    }
    assert_eq!(named, 1, "{kind}: the damage is named once");
    let kept = std::fs::read_dir(sandbox.state_dir())
        .expect("state_dir")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("ce-requests.json.corrupt-")
        })
        .count();
    assert_eq!(kept, 1, "{kind}: a copy of the damaged ledger is kept");
    let report = status_json(&sandbox.path("config.yml"));
    assert_eq!(report.get("damaged_records"), None, "{kind}: {report}");

    if paid == 2 {
        // The documented reset: delete the file.
        std::fs::remove_file(&ledger).expect("delete the ledger");
        once(&sandbox, &ce, &receiver, &days_ago(5)).assert_code(0);
        assert_eq!(ce.request_count(), 4, "{kind}");
    }
}

#[test]
fn the_cap_holds_through_an_emptied_ledger() {
    the_cap_holds_through("emptied");
}

#[test]
fn the_cap_holds_through_a_zero_filled_ledger() {
    the_cap_holds_through("zero-filled");
}

#[test]
fn the_cap_holds_through_a_garbled_ledger() {
    the_cap_holds_through("garbled");
    the_cap_holds_through("one byte changed");
    the_cap_holds_through("garbage appended");
}

#[test]
fn the_cap_holds_through_a_torn_ledger() {
    for kind in [
        "torn at 40",
        "torn at a third",
        "torn at the middle plus 40",
        "torn one byte short",
    ] {
        the_cap_holds_through(kind);
    }
}

#[test]
fn status_names_a_damaged_ledger_and_writes_nothing() {
    let sandbox = Sandbox::new("ledger-status");
    let ce = FakeCostExplorer::with_groups(3, 2);
    let receiver = FakeReceiver::start();
    once(&sandbox, &ce, &receiver, &days_ago(2)).assert_code(0);
    let ledger = sandbox.state_dir().join("ce-requests.json");
    std::fs::write(&ledger, b"").expect("empty the ledger");
    let before = sandbox.state_files();
    let report = status_json(&sandbox.path("config.yml"));
    assert_eq!(report["ce_requests_this_month"], Value::Null, "{report}");
    let damage = report["damaged_records"][0].as_str().unwrap_or_default();
    assert!(
        damage.contains("ce-requests.json: damaged") && damage.contains("lost"),
        "{report}"
    );
    // Taken as at the cap: the service's next pull is next month's first.
    assert!(
        !report["next_pull"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&days_ago(0)[..7]),
        "{report}"
    );
    let human = Cmd::new()
        .config(&sandbox.path("config.yml"))
        .arg("status")
        .run(WITHIN);
    human.assert_code(0);
    assert!(
        human.stdout.contains("lost to a damaged ledger"),
        "{}",
        human.describe()
    );
    assert_eq!(sandbox.state_files(), before, "status writes nothing");
}

/// A loop-mounted ext4 and its backing file; unmounted on drop.
struct Disk {
    image: PathBuf,
    mount: PathBuf,
}

impl Disk {
    /// Needs root, loop devices and e2fsprogs; None (and a line saying why) otherwise.
    fn new(sandbox: &Sandbox) -> Option<Disk> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("skipped: a loop mount needs root");
            return None;
        }
        let image = sandbox.path("disk.img");
        let mount = sandbox.path("mnt");
        std::fs::create_dir_all(&mount).expect("mount point");
        let file = std::fs::File::create(&image).expect("image");
        file.set_len(32 * 1024 * 1024).expect("image size");
        let ok = |mut c: Command| c.output().map(|o| o.status.success()).unwrap_or(false);
        let mut mkfs = Command::new("mkfs.ext4");
        mkfs.args(["-q", "-F"]).arg(&image);
        if !ok(mkfs) {
            println!("skipped: no mkfs.ext4");
            return None;
        }
        let mut mnt = Command::new("mount");
        mnt.args(["-o", "loop"]).arg(&image).arg(&mount);
        if !ok(mnt) {
            println!("skipped: cannot loop-mount here");
            return None;
        }
        Some(Disk { image, mount })
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        // Lazy: a failed test may leave a run using it, which must not keep it mounted.
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// What a power cut at this instant leaves: the image's bytes as the kernel has written
/// them to the "disk" (the loop device's backing file) — nothing of the page cache of the
/// mounted filesystem that was not written back — with the journal replayed by e2fsck,
/// then state/ copied out of it. None when the state directory is not on the disk yet.
fn cut_power(disk: &Disk, to: &Path) -> Option<PathBuf> {
    let snapshot = to.with_extension("img");
    std::fs::copy(&disk.image, &snapshot).expect("copy the disk");
    let mut fsck = Command::new("e2fsck");
    fsck.arg("-fy").arg(&snapshot);
    let checked = process::run(fsck, WITHIN);
    // 0: clean, 1: errors corrected (after a cut that is normal).
    assert!(
        matches!(checked.status.code(), Some(0 | 1)),
        "{}",
        checked.describe("e2fsck")
    );
    std::fs::create_dir_all(to).expect("dump dir");
    let mut dump = Command::new("debugfs");
    dump.arg("-R")
        .arg(format!("rdump /state {}", to.display()))
        .arg(&snapshot);
    process::run(dump, WITHIN);
    std::fs::remove_file(&snapshot).expect("remove snapshot");
    let state = to.join("state");
    state.is_dir().then_some(state)
}

#[test]
fn a_power_cut_at_any_moment_leaves_every_paid_request_counted_and_no_record_damaged() {
    let sandbox = Sandbox::new("power-cut");
    let Some(disk) = Disk::new(&sandbox) else {
        return;
    };
    // 4 groups, 1 a page: 4 requests a day.
    let ce = FakeCostExplorer::with_groups(4, 1);
    let receiver = FakeReceiver::start();
    let state_dir = disk.mount.join("state");
    let config = sandbox.write(
        "config.yml",
        &config_yaml(&ce.url(), &receiver.url(), &state_dir, "pull_hour: 0\n"),
    );
    let secret = sandbox.write("secret.yml", &secret_yaml());
    let runs = std::thread::spawn({
        let (config, secret) = (config.clone(), secret.clone());
        move || {
            // The service first, on a fresh state_dir: it makes its records (heartbeat,
            // last pull), then the runs' fsyncs commit the journal while cuts are taken.
            let running = Cmd::new()
                .config(&config)
                .secret(&secret)
                .env("LOG_LEVEL", "debug")
                .arg("run")
                .spawn();
            assert!(running.wait_for_stderr("sleeping until", Duration::from_secs(60)));
            crate::support::runner::stop(running);
            for round in 0..5 {
                let mut cmd = Cmd::new().config(&config).secret(&secret).args([
                    "once",
                    "--from",
                    &days_ago(10),
                    "--to",
                    &days_ago(1),
                ]);
                if round > 0 {
                    cmd = cmd.arg("--force");
                }
                cmd.run(Duration::from_secs(120)).assert_code(0);
            }
        }
    });
    let mut cuts = Vec::new();
    let mut n = 0;
    // What went wrong, asserted once the runs are over (a panic now would orphan them).
    let mut wrong: Option<String> = None;
    while !runs.is_finished() && wrong.is_none() {
        n += 1;
        let paid = ce.request_count() as u64;
        let Some(state) = cut_power(&disk, &sandbox.path(&format!("cut-{n}"))) else {
            if paid > 0 {
                wrong = Some(format!(
                    "cut {n}: {paid} requests paid, state_dir not on disk"
                ));
            }
            continue;
        };
        let cut_config = sandbox.write(
            &format!("cut-{n}.yml"),
            &config_yaml(&ce.url(), &receiver.url(), &state, "pull_hour: 0\n"),
        );
        let report = status_json(&cut_config);
        let counted = report["ce_requests_this_month"].as_u64().unwrap_or(0);
        if report.get("damaged_records").is_some() {
            wrong = Some(format!("cut {n}: a record came back damaged: {report}"));
        } else if counted < paid {
            wrong = Some(format!(
                "cut {n}: the ledger came back with {counted} requests, {paid} were paid"
            ));
        }
        cuts.push((paid, counted));
        std::fs::remove_dir_all(state.parent().expect("dump dir")).expect("remove dump");
    }
    runs.join().expect("the runs");
    assert_eq!(wrong, None, "cuts so far: {cuts:?}");
    let mid_run = cuts.iter().filter(|(paid, _)| *paid > 0).count();
    println!(
        "{} cuts, {mid_run} after the first paid request: {cuts:?}",
        cuts.len()
    );
    assert!(
        mid_run >= 3,
        "too few cuts during the runs to tell anything: {cuts:?}"
    );
    // The service's day (4), then the other nine days (36) and four times all ten (160).
    assert_eq!(ce.request_count(), 200);
}
