//! A target that refuses every event alike (404: a wrong path; 401, 403: no access) is a setup failure: the events stay in the spool, the day is not recorded, one line says what to check, and the fixed target gets every line with the ids of the first try; mixed answers are dead letters per event.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::{
    FakeCostExplorer, FakeReceiver, Finished, Reply, Sandbox, assert_one_id_per_key, sorted,
    sorted_lines,
};

const DAY: &str = "2022-06-13";
const DAY_END: &str = "2022-06-14";
const SOON: Duration = Duration::from_secs(20);

fn dead_letters(sandbox: &Sandbox) -> String {
    std::fs::read_to_string(sandbox.state_dir().join("dead-letter.jsonl")).unwrap_or_default()
}

fn delivered(sandbox: &Sandbox) -> String {
    std::fs::read_to_string(sandbox.state_dir().join("delivered.json")).unwrap_or_default()
}

/// `once --date DAY` to `target`.
fn once(sandbox: &Sandbox, ce: &FakeCostExplorer, target: &str) -> Finished {
    sandbox
        .cmd(&ce.url(), target, "")
        .args(["once", "--date", DAY])
        .run(SOON)
}

/// The one ERROR line of a run (panics unless there is exactly one).
fn the_error(run: &Finished) -> String {
    let errors = run.stderr_lines_with(&[" ERROR "]);
    assert_eq!(errors.len(), 1, "one error line\n{}", run.describe());
    errors[0].to_string()
}

#[test]
fn a_wrong_path_answered_404_keeps_the_day_and_the_fixed_url_gets_it_with_the_first_ids() {
    let ce = FakeCostExplorer::with_groups(7, 100);
    let receiver = FakeReceiver::start();
    // The receiver's real path is /events; everything else is 404.
    receiver.set_rule(|r| (r.path() != "/events").then(|| Reply::status(404).body("Not Found")));
    let sandbox = Sandbox::new("refused-404");

    let wrong = receiver.url_with("/wrong");
    let run = once(&sandbox, &ce, &wrong);
    run.assert_code(1);
    let line = the_error(&run);
    assert!(
        line.ends_with(&format!(
            "ERROR the target answered HTTP 404 (\"Not Found\") to each of the 5 event(s) of {DAY} it \
             was sent, and accepted none: a setup problem, not the events'; check the path of \
             target {wrong}; the 7 event(s) stay in the spool and go out with the same ids once \
             the target takes them"
        )),
        "{}",
        run.describe()
    );
    assert_eq!(receiver.request_count(), 5, "five tried, then stopped");
    assert_eq!(dead_letters(&sandbox), "", "nothing dead-lettered");
    assert!(
        !delivered(&sandbox).contains(DAY),
        "the day is not recorded"
    );
    let first_try: BTreeMap<_, _> = receiver
        .all_events()
        .into_iter()
        .map(|e| (e.key(), e.id))
        .collect();

    // Running it again as it is changes nothing and pulls nothing.
    let again = once(&sandbox, &ce, &wrong);
    again.assert_code(1);
    assert!(
        the_error(&again).contains("HTTP 404"),
        "{}",
        again.describe()
    );
    assert_eq!(ce.request_count(), 1, "{}", again.describe());

    // The URL fixed: every line arrives, each once, with the ids it was first sent with.
    let run = once(&sandbox, &ce, &receiver.url_with("/events"));
    run.assert_code(0);
    assert_eq!(
        ce.request_count(),
        1,
        "the day came from the spool, not a new pull"
    );
    assert_eq!(
        sorted_lines(&receiver),
        sorted(ce.expected_lines(DAY, DAY_END)),
        "{}",
        run.describe()
    );
    let accepted = receiver.accepted_events();
    assert_eq!(accepted.len(), 7, "each event once");
    for event in &accepted {
        if let Some(id) = first_try.get(&event.key()) {
            assert_eq!(&event.id, id, "{:?} came with a new id", event.key());
        }
    }
    assert_one_id_per_key(&receiver.all_events());
    assert!(delivered(&sandbox).contains(DAY));
    assert_eq!(dead_letters(&sandbox), "");
}

#[test]
fn a_target_without_access_answering_401_or_403_is_named_with_what_to_check() {
    for (status, check) in [
        (401, "check the credentials target"),
        (403, "lets this connector post"),
    ] {
        // Fewer events than the probe: all of them refused alike is the setup's too.
        let ce = FakeCostExplorer::with_groups(3, 100);
        let receiver = FakeReceiver::start();
        receiver.set_default(Reply::status(status));
        let sandbox = Sandbox::new("refused-auth");
        let run = once(&sandbox, &ce, &receiver.url());
        run.assert_code(1);
        let line = the_error(&run);
        assert!(
            line.contains(&format!(
                "the target answered HTTP {status} to each of the 3 event(s) of {DAY}"
            )) && line.contains(check)
                && line.contains("the 3 event(s) stay in the spool"),
            "{}",
            run.describe()
        );
        assert_eq!(dead_letters(&sandbox), "");
        assert!(!delivered(&sandbox).contains(DAY));
    }
}

#[test]
fn mixed_answers_are_each_events_own_dead_letters() {
    let ce = FakeCostExplorer::with_groups(7, 100);
    let receiver = FakeReceiver::start();
    // Two refused alike, then the target shows that it takes events: both were the events'.
    receiver.script([Reply::status(404), Reply::status(404)]);
    let sandbox = Sandbox::new("refused-mixed");
    let run = once(&sandbox, &ce, &receiver.url());
    run.assert_code(1);
    assert_eq!(receiver.accepted_count(), 5, "{}", run.describe());
    assert_eq!(
        dead_letters(&sandbox).lines().count(),
        2,
        "{}",
        run.describe()
    );
    assert!(delivered(&sandbox).contains(DAY), "the day is done");
    assert!(
        run.stderr_lines_with(&["setup problem"]).is_empty(),
        "{}",
        run.describe()
    );
    assert_eq!(
        run.stderr_lines_with(&["2 event(s) rejected by the target"])
            .len(),
        1,
        "{}",
        run.describe()
    );

    // Refusals that differ (404 then 403) are the events' too.
    let ce = FakeCostExplorer::with_groups(2, 100);
    let receiver = FakeReceiver::start();
    receiver.script([Reply::status(404), Reply::status(403)]);
    let sandbox = Sandbox::new("refused-differ");
    let run = once(&sandbox, &ce, &receiver.url());
    run.assert_code(1);
    assert_eq!(dead_letters(&sandbox).lines().count(), 2);
    assert!(delivered(&sandbox).contains(DAY));
}

/// The service keeps the refused day spooled, tries again, and sends it once fixed.
#[test]
fn the_service_retries_a_refusing_target_and_sends_the_day_once_it_is_fixed() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let receiver = FakeReceiver::start();
    receiver.script([Reply::status(403), Reply::status(403)]);
    let sandbox = Sandbox::new("refused-service");
    // pull_hour 0: yesterday is due whenever the test runs.
    let running = sandbox
        .cmd(&ce.url(), &receiver.url(), "pull_hour: 0\n")
        .env("LOG_LEVEL", "debug")
        .arg("run")
        .spawn();
    assert!(receiver.wait_for_accepted(2, SOON), "{}", running.stderr());
    let tomorrow = crate::support::next_day(&crate::support::days_ago(0));
    let idle = format!("{} {tomorrow}T00:00:00Z", crate::support::IDLE);
    assert!(running.wait_for_stderr(&idle, SOON), "{}", running.stderr());
    let run = crate::support::runner::stop(running);
    assert_eq!(ce.request_count(), 1, "{}", run.describe());
    assert_eq!(dead_letters(&sandbox), "");
    assert_one_id_per_key(&receiver.all_events());
    assert!(
        !run.stderr_lines_with(&["HTTP 403", "setup problem"])
            .is_empty(),
        "{}",
        run.describe()
    );
}
