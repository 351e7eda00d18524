//! Damaged state, one file kind and one damage at a time, under each command: a line names the file, nothing panics, nothing is lost (every line Cost Explorer serves ends up received, the latest numbers as its highest revision), and only the days the damage touched are pulled again.
//!
//! Every case starts from the same state, made once: three days delivered or spooled, one
//! of them revised, one rejection in dead-letter.jsonl, one batch half delivered. Each case
//! copies it into a sandbox of its own, damages one file, runs one command against a fresh
//! fake Cost Explorer serving the same numbers, and checks the outcome.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::support::runner::stop;
use crate::support::{FakeCostExplorer, FakeReceiver, IDLE, Received, Reply, Sandbox, days_ago};

const WITHIN: Duration = Duration::from_secs(30);
/// The line whose number moved after its first delivery (revision 1 of it went out).
const REVISED: (&str, &str) = ("Service 0001", "5");

/// (date, service, amount, revision, accepted) of one event the receiver got.
type Seen = (String, String, String, Option<u32>, bool);

fn seen(r: &Received) -> Seen {
    let e = r.event().expect("an event");
    let revision = r
        .request
        .header("ce-revision")
        .map(|v| v.parse().expect("an integer revision"));
    (e.date, e.service, e.amount, revision, r.accepted())
}

/// The days of the prepared state, oldest first: d3 delivered and revised, d1 delivered
/// with one line rejected, d2 spooled with two of its three events delivered.
fn days() -> [String; 3] {
    [days_ago(3), days_ago(2), days_ago(1)]
}

/// A fake Cost Explorer serving what the prepared state was pulled from, as it is now.
fn cost_explorer() -> FakeCostExplorer {
    let ce = FakeCostExplorer::with_groups(3, 100);
    ce.revise(&days()[0], REVISED.0, REVISED.1);
    ce
}

struct Prepared {
    /// Every file of state_dir, by its path under it.
    files: Vec<(PathBuf, Vec<u8>)>,
    /// What the receiver got while it was made.
    received: Vec<Seen>,
}

fn prepared() -> &'static Prepared {
    static PREPARED: OnceLock<Prepared> = OnceLock::new();
    PREPARED.get_or_init(|| {
        let [d3, d2, d1] = days();
        let sandbox = Sandbox::new("damage-prepare");
        let ce = FakeCostExplorer::with_groups(3, 100);
        let receiver = FakeReceiver::start();
        let run = |extra: &str, args: &[&str], code: i32| {
            sandbox
                .cmd(&ce.url(), &receiver.url(), extra)
                .args(args)
                .run(WITHIN)
                .assert_code(code);
        };
        run("", &["once", "--date", &d3], 0);
        ce.revise(&d3, REVISED.0, REVISED.1);
        run("", &["revise"], 0);
        receiver.script([Reply::status(400).body("not this one")]);
        run("", &["once", "--date", &d1], 1);
        receiver.script([Reply::ok(), Reply::ok()]);
        receiver.set_default(Reply::status(503));
        run("send_timeout_s: 1\n", &["once", "--date", &d2], 1);
        let state = sandbox.state_dir();
        let files = sandbox
            .state_files()
            .into_iter()
            .map(|(p, b)| (p.strip_prefix(&state).unwrap().to_path_buf(), b))
            .collect();
        let received: Vec<Seen> = receiver.received().iter().map(seen).collect();
        assert_eq!(
            received.iter().filter(|s| s.4).count(),
            3 + 1 + 2 + 2,
            "{received:?}"
        );
        Prepared { files, received }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Batch,
    Acks,
    BatchSnapshot,
    DayFile,
    DeadLetters,
    Delivered,
    Sent,
}

impl Kind {
    fn file(self) -> String {
        let [d3, d2, _] = days();
        match self {
            Kind::Batch => format!("spool/{d2}_{d2}.jsonl"),
            Kind::Acks => format!("spool/{d2}_{d2}.acked"),
            Kind::BatchSnapshot => format!("spool/{d2}_{d2}.revise"),
            Kind::DayFile => format!("revise/{d3}.jsonl"),
            Kind::DeadLetters => "dead-letter.jsonl".into(),
            Kind::Delivered => "delivered.json".into(),
            Kind::Sent => "sent.json".into(),
        }
    }

    /// The days this damage makes be pulled again: those whose record of what was sent it
    /// took (bytes appended to a whole file take nothing; a delivered.json or sent.json is
    /// rebuilt from the other files).
    fn pulled_again(self, damage: Damage) -> BTreeSet<String> {
        let [d3, d2, _] = days();
        match (self, damage) {
            (_, Damage::AppendGarbage) => BTreeSet::new(),
            (Kind::Batch | Kind::BatchSnapshot, _) => [d2].into(),
            (Kind::DayFile, _) => [d3].into(),
            _ => BTreeSet::new(),
        }
    }

    /// Whether the damage can be told at all: an acknowledgement log cut at a line (or
    /// emptied) reads as fewer acknowledgements, and those events go out again with the ids
    /// they have (at least once, the guarantee): nothing is lost, nothing to name.
    fn named(self, damage: Damage) -> bool {
        !matches!(
            (self, damage),
            (Kind::Acks, Damage::CutAtLine | Damage::Empty)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    CutAtLine,
    CutMidLine,
    Empty,
    ZeroFill,
    AppendGarbage,
    NotUtf8,
}

const DAMAGES: [Damage; 6] = [
    Damage::CutAtLine,
    Damage::CutMidLine,
    Damage::Empty,
    Damage::ZeroFill,
    Damage::AppendGarbage,
    Damage::NotUtf8,
];

impl Damage {
    fn apply(self, bytes: &[u8]) -> Vec<u8> {
        // The last line: from after the newline before it to its own newline.
        let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        match self {
            Damage::CutAtLine => bytes[..start].to_vec(),
            Damage::CutMidLine => {
                let half = ((body.len() - start) / 2).max(1);
                bytes[..start + half].to_vec()
            }
            Damage::Empty => Vec::new(),
            Damage::ZeroFill => vec![0; bytes.len()],
            Damage::AppendGarbage => [bytes, b"garbage {\"not\": a line\n".as_slice()].concat(),
            Damage::NotUtf8 => {
                let mut b = bytes.to_vec();
                b[bytes.len() / 2] = 0xff;
                b
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Once,
    Revise,
    Run,
    Status,
}

const COMMANDS: [Command; 4] = [
    Command::Once,
    Command::Revise,
    Command::Run,
    Command::Status,
];

/// `[Start, End)` of a Cost Explorer request, as days.
fn asked_days(body: &Value) -> BTreeSet<String> {
    let start = body["TimePeriod"]["Start"]
        .as_str()
        .expect("Start")
        .to_string();
    let end = body["TimePeriod"]["End"].as_str().expect("End").to_string();
    let mut days = BTreeSet::new();
    let mut d = start;
    while d < end {
        days.insert(d.clone());
        d = crate::support::next_day(&d);
    }
    days
}

fn status_json(sandbox: &Sandbox) -> Value {
    let run = sandbox
        .cmd("http://127.0.0.1:9", "http://127.0.0.1:9", "")
        .args(["status", "--json"])
        .run(WITHIN);
    run.assert_code(0);
    serde_json::from_str(run.stdout_lines()[0]).expect("status JSON")
}

/// Files `status` reports as found damaged (not the ones kept aside).
fn found_damaged(report: &Value) -> Vec<String> {
    report["damaged"]
        .as_array()
        .expect("a damaged list")
        .iter()
        .filter(|d| {
            !d["problem"]
                .as_str()
                .unwrap()
                .starts_with("a damaged file kept aside")
        })
        .map(|d| d["file"].as_str().unwrap().to_string())
        .collect()
}

fn case(kind: Kind, damage: Damage, command: Command) {
    let what = format!("{kind:?} {damage:?} under {command:?}");
    let prepared = prepared();
    let sandbox = Sandbox::new("damage");
    let state = sandbox.state_dir();
    for (path, bytes) in &prepared.files {
        let to = state.join(path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, bytes).unwrap();
    }
    let file = kind.file();
    let path = state.join(&file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{what}: {file}: {e}"));
    std::fs::write(&path, damage.apply(&bytes)).unwrap();

    let ce = cost_explorer();
    let receiver = FakeReceiver::start();
    let named = kind.named(damage);
    let says_so = |stderr: &str| {
        stderr
            .lines()
            .any(|l| l.contains("ERROR") && l.contains(&path.display().to_string()))
    };
    match command {
        Command::Once | Command::Revise => {
            let word = if command == Command::Once {
                "once"
            } else {
                "revise"
            };
            let run = sandbox
                .cmd(&ce.url(), &receiver.url(), "")
                .arg(word)
                .run(WITHIN);
            run.assert_code(0);
            assert_eq!(
                says_so(&run.stderr),
                named,
                "{what}: a line names {file}\n{}",
                run.describe()
            );
        }
        Command::Run => {
            let running = sandbox
                .cmd(&ce.url(), &receiver.url(), "pull_hour: 0\n")
                .env("LOG_LEVEL", "debug")
                .arg("run")
                .spawn();
            assert!(
                running.wait_for_stderr(IDLE, WITHIN),
                "{what}\n{}",
                running.stderr()
            );
            let run = stop(running);
            assert_eq!(
                says_so(&run.stderr),
                named,
                "{what}: a line names {file}\n{}",
                run.describe()
            );
        }
        Command::Status => {
            let report = status_json(&sandbox);
            let expected: Vec<String> = match named {
                true => vec![file.clone()],
                false => vec![],
            };
            assert_eq!(found_damaged(&report), expected, "{what}: {report}");
            let human = sandbox
                .cmd("http://127.0.0.1:9", "http://127.0.0.1:9", "")
                .arg("status")
                .run(WITHIN);
            human.assert_code(0);
            assert_eq!(
                human
                    .stdout
                    .contains(&format!("damaged            {file}: ")),
                named,
                "{what}\n{}",
                human.describe()
            );
            // Status repairs nothing; the next once does.
            let run = sandbox
                .cmd(&ce.url(), &receiver.url(), "")
                .arg("once")
                .run(WITHIN);
            run.assert_code(0);
            assert_eq!(says_so(&run.stderr), named, "{what}\n{}", run.describe());
        }
    }

    // Pulled again: only the days the damage touched (revise pulls its window besides).
    let again = kind.pulled_again(damage);
    let bodies = ce.bodies();
    let asked: Vec<BTreeSet<String>> = bodies.iter().map(asked_days).collect();
    match command {
        Command::Revise => {
            let own = usize::from(!again.is_empty());
            assert_eq!(asked.len(), own + 1, "{what}: {asked:?}");
            if own == 1 {
                assert_eq!(asked[0], again, "{what}");
            }
        }
        _ => {
            let expected: Vec<BTreeSet<String>> = match again.is_empty() {
                true => vec![],
                false => vec![again.clone()],
            };
            assert_eq!(asked, expected, "{what}");
        }
    }

    // Nothing lost: every line served was received, and the highest revision of each
    // carries the numbers Cost Explorer has now.
    let mut all: Vec<Seen> = prepared.received.clone();
    all.extend(receiver.received().iter().map(seen));
    let [d3, _, d1] = days();
    let served = ce.expected_lines(&d3, &crate::support::next_day(&d1));
    for line in &served {
        let amount = match (line.date == d3, line.service == REVISED.0) {
            (true, true) => REVISED.1.to_string(),
            _ => line.amount.clone(),
        };
        let of_line: Vec<&Seen> = all
            .iter()
            .filter(|s| s.0 == line.date && s.1 == line.service)
            .collect();
        assert!(!of_line.is_empty(), "{what}: {line:?} never received");
        let accepted: Vec<&&Seen> = of_line.iter().filter(|s| s.4).collect();
        if accepted.is_empty() {
            // The line the target rejected for good: a dead letter, received once.
            assert!(of_line.iter().all(|s| s.3.is_none()), "{what}: {of_line:?}");
            continue;
        }
        let top = accepted.iter().map(|s| s.3.unwrap_or(0)).max().unwrap();
        let latest: BTreeSet<&str> = accepted
            .iter()
            .filter(|s| s.3.unwrap_or(0) == top)
            .map(|s| s.2.as_str())
            .collect();
        assert_eq!(
            latest,
            BTreeSet::from([amount.as_str()]),
            "{what}: {line:?}, accepted {accepted:?}"
        );
    }

    // Repaired: status finds nothing more, the damaged file is kept aside, and the next
    // run pulls nothing and names nothing.
    let report = status_json(&sandbox);
    assert_eq!(
        found_damaged(&report),
        Vec::<String>::new(),
        "{what}: {report}"
    );
    let kept: Vec<&Value> = report["damaged"].as_array().unwrap().iter().collect();
    let aside = format!("{file}.corrupt-");
    assert_eq!(
        kept.iter()
            .any(|d| d["file"].as_str().unwrap().starts_with(&aside)),
        named,
        "{what}: {report}"
    );
    let missing: Vec<&Value> = report["missing_days"].as_array().unwrap().iter().collect();
    assert!(missing.is_empty(), "{what}: {report}");
    let requests = ce.request_count();
    let after = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .arg("once")
        .run(WITHIN);
    after.assert_code(0);
    assert_eq!(ce.request_count(), requests, "{what}\n{}", after.describe());
    assert!(
        !after.stderr.contains("ERROR"),
        "{what}\n{}",
        after.describe()
    );
}

fn kind(kind: Kind) {
    for damage in DAMAGES {
        for command in COMMANDS {
            case(kind, damage, command);
        }
    }
}

#[test]
fn a_damaged_spool_batch() {
    kind(Kind::Batch);
}

#[test]
fn a_damaged_acknowledgement_log() {
    kind(Kind::Acks);
}

#[test]
fn a_damaged_batch_snapshot() {
    kind(Kind::BatchSnapshot);
}

#[test]
fn a_damaged_day_snapshot() {
    kind(Kind::DayFile);
}

#[test]
fn a_damaged_dead_letter_file() {
    kind(Kind::DeadLetters);
}

#[test]
fn a_damaged_delivered_file() {
    kind(Kind::Delivered);
}

#[test]
fn a_damaged_sent_file() {
    kind(Kind::Sent);
}

#[test]
fn a_revise_preview_names_a_damaged_day_file_and_repairs_nothing() {
    let sandbox = Sandbox::new("damage-preview");
    let state = sandbox.state_dir();
    for (path, bytes) in &prepared().files {
        let to = state.join(path);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, bytes).unwrap();
    }
    let path = state.join(Kind::DayFile.file());
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, Damage::NotUtf8.apply(&bytes)).unwrap();
    let before = sandbox.delivery_state();
    let ce = cost_explorer();
    let receiver = FakeReceiver::start();
    let run = sandbox
        .cmd(&ce.url(), &receiver.url(), "")
        .args(["revise", "--target", "-"])
        .run(WITHIN);
    run.assert_code(0);
    assert!(
        !run.stderr_lines_with(&[&path.display().to_string()])
            .is_empty(),
        "{}",
        run.describe()
    );
    assert!(
        sandbox.delivery_state() == before,
        "a preview writes nothing"
    );
    assert_eq!(receiver.request_count(), 0);
}

/// The damages do what their names say.
#[test]
fn the_damages_do_what_they_say() {
    let text = b"{\"lines\":2}\nabc\ndefgh\n";
    assert_eq!(Damage::CutAtLine.apply(text), b"{\"lines\":2}\nabc\n");
    assert_eq!(Damage::CutMidLine.apply(text), b"{\"lines\":2}\nabc\nde");
    assert_eq!(Damage::CutMidLine.apply(b"0\n1\n"), b"0\n1");
    assert_eq!(Damage::CutAtLine.apply(b"0\n"), b"");
    assert_eq!(Damage::ZeroFill.apply(b"ab"), [0, 0]);
    assert_eq!(Damage::NotUtf8.apply(b"0\n1\n"), b"0\n\xff\n");
}
