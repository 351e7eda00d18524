//! The credential chain through the real binary: the shared profile files, the precedence of
//! keys over profiles, and the one "no credentials" line (conformance covers the roles).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support;
use crate::support::{
    ACCESS_KEY_ID, CeOptions, Cmd, FakeCostExplorer, SECRET_ACCESS_KEY, SESSION_TOKEN, Sandbox,
};

const DAY: &str = "2022-06-13";
const WITHIN: Duration = Duration::from_secs(20);

fn profile_files(sandbox: &Sandbox, config: &str, credentials: &str) -> Cmd {
    let config = sandbox.write("aws-config", config);
    let credentials = sandbox.write("aws-credentials", credentials);
    Cmd::new()
        .env("AWS_CONFIG_FILE", config.to_str().unwrap())
        .env("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap())
}

#[test]
fn a_named_profile_from_the_shared_files_signs_the_pull() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let sandbox = Sandbox::new("profile");
    let config = sandbox.write_config(&ce.url(), "-", "");
    let run = profile_files(
        &sandbox,
        "[default]\nregion = us-east-1\n",
        &format!(
            "# work\n[other]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = x\n\
             [billing]\naws_access_key_id = {ACCESS_KEY_ID}\naws_secret_access_key = {SECRET_ACCESS_KEY}\n"
        ),
    )
    .env("AWS_PROFILE", "billing")
    .config(&config)
    .args(["once", "--date", DAY])
    .run(WITHIN);
    run.assert_code(0);
    assert_eq!(run.stdout.lines().count(), 2, "{}", run.describe());
    ce.assert_no_violations();
    assert!(!run.stderr.contains(SECRET_ACCESS_KEY));
}

#[test]
fn keys_in_the_secret_file_win_over_a_profile() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new("precedence");
    let config = sandbox.write_config(&ce.url(), "-", "");
    let secret = sandbox.write_secret();
    let run = profile_files(
        &sandbox,
        "",
        "[default]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = x\n",
    )
    .config(&config)
    .secret(&secret)
    .args(["check"])
    .run(WITHIN);
    run.assert_code(0);
    ce.assert_no_violations();
    assert!(
        !run.stderr_lines_with(&["credentials: secret file"])
            .is_empty(),
        "{}",
        run.describe()
    );
}

#[test]
fn a_named_profile_that_does_not_exist_or_loops_is_one_line_exit_2() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new("profile-loop");
    let config = sandbox.write_config(&ce.url(), "-", "");
    let files = "[profile a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = b\n\
                 [profile b]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = a\n";
    for (profile, needles) in [
        (
            "a",
            &["profile a", "source_profile makes a loop: a -> b -> a"][..],
        ),
        ("nope", &["profile nope (AWS_PROFILE): not found in"][..]),
    ] {
        let run = profile_files(&sandbox, files, "")
            .env("AWS_PROFILE", profile)
            .config(&config)
            .args(["once", "--date", DAY])
            .run(WITHIN);
        run.assert_code(2);
        assert_eq!(run.stderr_lines().len(), 1, "{}", run.describe());
        assert!(
            !run.stderr_lines_with(needles).is_empty(),
            "{}",
            run.describe()
        );
    }
    assert_eq!(ce.request_count(), 0);
}

#[test]
fn no_credentials_names_each_source_and_the_metadata_service_that_did_not_answer() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new("no-creds-imds");
    let config = sandbox.write_config(&ce.url(), "-", "");
    // A loopback port with nothing listening: refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let imds = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let run = Cmd::new()
        .env("AWS_EC2_METADATA_DISABLED", "false")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds)
        .env("AWS_SESSION_TOKEN", SESSION_TOKEN)
        .config(&config)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(2);
    let lines = run.stderr_lines_with(&[
        "no AWS credentials: looked at access_key_id",
        "web identity",
        "profile default",
        "container credentials",
        &format!("EC2 instance metadata at {imds} (connection refused)"),
    ]);
    assert_eq!(lines.len(), 1, "{}", run.describe());
    assert!(!run.stderr.contains(SESSION_TOKEN));
    assert_eq!(ce.request_count(), 0);
}

/// A recorded STS answer; its credentials' `Expiration` (from the day it was recorded) is
/// moved far ahead, so the cache holds them whenever the test runs.
fn sts_fixture(name: &str) -> String {
    let path = format!("{}/fixtures/sts/{name}", env!("CARGO_MANIFEST_DIR"));
    let xml = std::fs::read_to_string(path).unwrap();
    match (xml.find("<Expiration>"), xml.find("</Expiration>")) {
        (Some(a), Some(b)) => format!("{}<Expiration>2099-01-01T00:00:00Z{}", &xml[..a], &xml[b..]),
        _ => xml,
    }
}

fn element(xml: &str, name: &str) -> String {
    let start = xml.find(&format!("<{name}>")).unwrap() + name.len() + 2;
    let end = start + xml[start..].find(&format!("</{name}>")).unwrap();
    xml[start..end].to_string()
}

/// A fake STS answering with `answers` in turn (the last one again and again).
fn fake_sts(answers: Vec<(u16, String)>) -> (support::http::Server, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let handler = move |r: &support::http::Request| {
        let mut log = log.lock().unwrap();
        log.push(r.header("authorization").unwrap_or("").to_string());
        let (status, body) = answers[(log.len() - 1).min(answers.len() - 1)].clone();
        support::http::Response::with_body(status, "text/xml", body)
    };
    let server = support::http::Server::bind_loopback(Arc::new(handler)).unwrap();
    (server, seen)
}

/// The config's role, assumed with the secret file's keys.
const ROLE: &str = "role_arn: arn:aws:iam::123456789012:role/billing-reader\n";

/// `once --date DAY` with `ROLE` in the config and STS at `sts`.
fn once_with_role(sandbox: &Sandbox, ce: &FakeCostExplorer, sts: &str) -> support::Finished {
    let config = sandbox.write_config(&ce.url(), "-", ROLE);
    let secret = sandbox.write_secret();
    Cmd::new()
        .env("AWS_ENDPOINT_URL_STS", sts)
        .config(&config)
        .secret(&secret)
        .args(["once", "--date", DAY])
        .run(WITHIN)
}

#[test]
fn role_arn_is_assumed_with_the_keys_throttling_retried_and_a_refusal_not() {
    let answer = sts_fixture("assume_role.xml");
    let ce = FakeCostExplorer::start(CeOptions {
        groups_per_day: 1,
        key_id: Some(element(&answer, "AccessKeyId")),
        session_token: Some(element(&answer, "SessionToken")),
        ..CeOptions::default()
    });
    let throttled = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>\
                     <Message>Rate exceeded</Message></Error></ErrorResponse>";
    let (sts, seen) = fake_sts(vec![(400, throttled.into()), (200, answer.clone())]);
    let sandbox = Sandbox::new("role-arn");
    let run = once_with_role(&sandbox, &ce, &sts.url());
    run.assert_code(0);
    ce.assert_no_violations();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{}", run.describe());
    assert!(
        seen.iter()
            .all(|a| a.contains(&format!("Credential={ACCESS_KEY_ID}/"))
                && a.contains("/sts/aws4_request")),
        "{seen:?}"
    );
    assert_eq!(
        run.stderr_lines_with(&[
            "STS refused AssumeRole (HTTP 400): Throttling: Rate exceeded; retrying in"
        ])
        .len(),
        1,
        "{}",
        run.describe()
    );

    let (sts, seen) = fake_sts(vec![(403, sts_fixture("access_denied.xml"))]);
    let run = once_with_role(&sandbox, &ce, &sts.url());
    run.assert_code(2);
    assert_eq!(seen.lock().unwrap().len(), 1, "a refusal is not retried");
    assert_eq!(run.stderr_lines().len(), 1, "{}", run.describe());
    assert!(!run.stderr.contains(SECRET_ACCESS_KEY));
}

#[test]
fn an_sts_that_stays_unavailable_is_a_runtime_failure_not_bad_input() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let (sts, seen) = fake_sts(vec![(503, String::new())]);
    let sandbox = Sandbox::new("sts-down");
    let run = once_with_role(&sandbox, &ce, &sts.url());
    // Warned about at start, retried by the pull, then given up: exit 1 like a Cost Explorer outage.
    run.assert_code(1);
    assert_eq!(
        seen.lock().unwrap().len(),
        8,
        "4 attempts at start, 4 at the pull"
    );
    assert_eq!(ce.request_count(), 0);
    assert!(
        !run.stderr_lines_with(&["ERROR", "STS refused AssumeRole (HTTP 503): an empty body"])
            .is_empty(),
        "{}",
        run.describe()
    );
}

#[test]
fn a_metadata_service_that_drips_its_answer_is_given_up_like_an_absent_one() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new("imds-drip");
    let config = sandbox.write_config(&ce.url(), "-", "");
    // A status line, then one header byte every 0.5 s: only an overall deadline ends it.
    let handler = |_: &support::http::Request, stream: &mut std::net::TcpStream| {
        support::http::drip(
            stream,
            "HTTP/1.1 200 OK\r\n",
            b"x",
            Duration::from_millis(500),
            16,
        )
    };
    let imds = support::http::Server::bind_raw(Arc::new(handler)).unwrap();
    let run = Cmd::new()
        .env("AWS_EC2_METADATA_DISABLED", "false")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url())
        .config(&config)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(2);
    let lines = run.stderr_lines_with(&[
        "no AWS credentials: looked at",
        &format!(
            "EC2 instance metadata at {} (no complete answer within 1 s)",
            imds.url()
        ),
    ]);
    assert_eq!(lines.len(), 1, "{}", run.describe());
    assert_eq!(ce.request_count(), 0);
}

#[test]
fn token_and_profile_files_that_never_end_or_block_are_one_line_exit_2() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new("endless-files");
    let config = sandbox.write_config(&ce.url(), "-", "");
    let fifo = sandbox.write("fifo-placeholder", "");
    std::fs::remove_file(&fifo).unwrap();
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let fifo = fifo.to_str().unwrap().to_string();
    let big = sandbox.write("big-token", &"a".repeat(64 * 1024 + 1));
    let big = big.to_str().unwrap().to_string();
    let web = |file: &str| {
        Cmd::new()
            .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/web")
            .env("AWS_WEB_IDENTITY_TOKEN_FILE", file)
    };
    let container = |file: &str| {
        Cmd::new()
            .env(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://127.0.0.1:9/creds",
            )
            .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", file)
    };
    let cases = [
        (
            web(&fifo),
            format!("web identity: token file {fifo}: not a regular file"),
        ),
        (
            web(&big),
            format!("web identity: token file {big}: larger than 64 KiB"),
        ),
        (
            Cmd::new().env("AWS_CONFIG_FILE", &fifo),
            format!("profile files: shared config file {fifo}: not a regular file"),
        ),
        (
            container(&fifo),
            format!("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {fifo}: not a regular file"),
        ),
        (
            web("/dev/zero"),
            "web identity: token file /dev/zero: not a regular file".to_string(),
        ),
    ];
    for (cmd, needle) in cases {
        let run = cmd
            .config(&config)
            .args(["once", "--date", DAY])
            .run(WITHIN);
        run.assert_code(2);
        assert_eq!(run.stderr_lines().len(), 1, "{}", run.describe());
        assert_eq!(
            run.stderr_lines_with(&[needle.as_str()]).len(),
            1,
            "{needle}\n{}",
            run.describe()
        );
    }
    assert_eq!(ce.request_count(), 0);
}

#[test]
fn credentials_are_fetched_for_each_page_not_once_a_pull() {
    // Credentials that expire in 4 minutes are never cached (they are refreshed 5 minutes
    // before expiry), so every page's signature fetches them from STS again: a pull that
    // signed all its pages with the first ones would call STS once.
    let soon = time::OffsetDateTime::now_utc() + time::Duration::minutes(4);
    let soon = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let answer = sts_fixture("assume_role.xml").replace("2099-01-01T00:00:00Z", &soon);
    let ce = FakeCostExplorer::start(CeOptions {
        groups_per_day: 3,
        page_size: 1,
        key_id: Some(element(&answer, "AccessKeyId")),
        session_token: Some(element(&answer, "SessionToken")),
        ..CeOptions::default()
    });
    let (sts, seen) = fake_sts(vec![(200, answer)]);
    let sandbox = Sandbox::new("per-page");
    let run = once_with_role(&sandbox, &ce, &sts.url());
    run.assert_code(0);
    ce.assert_no_violations();
    assert_eq!(ce.request_count(), 3, "{}", run.describe());
    assert_eq!(
        seen.lock().unwrap().len(),
        1 + 3,
        "one look at start, then one per page"
    );
}

#[test]
fn a_secret_quoted_by_cost_explorer_across_the_300_character_cut_is_hidden_whole() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    // The message is cut after 300 characters: here 9 of them fall inside the secret.
    let message = format!("{} {SECRET_ACCESS_KEY}", "p".repeat(290));
    let body = format!(r#"{{"__type":"ValidationException","Message":"{message}"}}"#);
    ce.always(support::cost_explorer::error_response(400, body));
    let sandbox = Sandbox::new("secret-cut");
    let config = sandbox.write_config(&ce.url(), "-", "");
    let secret = sandbox.write_secret();
    let run = Cmd::new()
        .config(&config)
        .secret(&secret)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    assert_ne!(run.code, Some(0), "{}", run.describe());
    let lines =
        run.stderr_lines_with(&["ValidationException", &format!("{} ***", "p".repeat(290))]);
    assert!(!lines.is_empty(), "{}", run.describe());
    assert!(
        !run.stderr.contains(&SECRET_ACCESS_KEY[..6]),
        "{}",
        run.describe()
    );
}

#[test]
fn a_secret_file_warning_is_printed_once_though_the_file_is_read_at_every_page() {
    let ce = FakeCostExplorer::with_groups(2, 1);
    let sandbox = Sandbox::new("warn-once");
    let config = sandbox.write_config(&ce.url(), "-", "");
    let secret = sandbox.write(
        "secret.yml",
        &format!(
            "access_key_id: {ACCESS_KEY_ID}\nsecret_access_key: \"{SECRET_ACCESS_KEY}\"\npullhour: 3\n"
        ),
    );
    let run = Cmd::new()
        .config(&config)
        .secret(&secret)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    assert_eq!(ce.request_count(), 2, "{}", run.describe());
    assert_eq!(
        run.stderr_lines_with(&["WARN", "pullhour"]).len(),
        1,
        "{}",
        run.describe()
    );
}

#[test]
fn credential_urls_are_checked_at_start_by_the_variable_that_set_them() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new("credential-urls");
    let config = sandbox.write_config(&ce.url(), "-", "");
    let secret = sandbox.write_secret();
    let bad = "http://127.0.0.1:99999/x";
    for var in [
        "AWS_ENDPOINT_URL_STS",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        // No keys: the chain would reach each of them (STS through a profile's role).
        let profile = sandbox.write(
            "aws-config",
            "[default]\nrole_arn = arn:aws:iam::1:role/r\ncredential_source = EcsContainer\n",
        );
        let run = Cmd::new()
            .env("AWS_EC2_METADATA_DISABLED", "false")
            .env("AWS_CONFIG_FILE", profile.to_str().unwrap())
            .env(var, bad)
            .config(&config)
            .args(["once", "--date", DAY])
            .run(WITHIN);
        run.assert_code(2);
        assert_eq!(run.stderr_lines().len(), 1, "{}", run.describe());
        let needle = format!("{var}: expected an http:// or https:// URL");
        assert_eq!(
            run.stderr_lines_with(&[&needle, "port \"99999\""]).len(),
            1,
            "{}",
            run.describe()
        );
    }
    // AWS_ENDPOINT_URL is checked when it is STS's, even with keys that need no STS.
    let run = Cmd::new()
        .env("AWS_ENDPOINT_URL", "http://[::1/x")
        .env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "v2/creds")
        .config(&config)
        .secret(&secret)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(2);
    assert_eq!(
        run.stderr_lines_with(&["AWS_ENDPOINT_URL: expected an http:// or https:// URL"])
            .len(),
        1,
        "{}",
        run.describe()
    );
    let run = Cmd::new()
        .env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "@:99/creds")
        .config(&config)
        .secret(&secret)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(2);
    assert_eq!(
        run.stderr_lines_with(&["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: expected"])
            .len(),
        1,
        "{}",
        run.describe()
    );
    assert_eq!(ce.request_count(), 0);
}

#[test]
fn a_service_restarted_after_a_clean_stop_is_alive_while_sts_throttles_its_start() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let receiver = support::FakeReceiver::start();
    let throttled = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>\
                     <Message>Rate exceeded</Message></Error></ErrorResponse>";
    let (sts, seen) = fake_sts(vec![(400, throttled.into())]);
    let sandbox = Sandbox::new("start-heartbeat");
    let role = format!("{ROLE}pull_hour: 0\n");
    let config = sandbox.write_config(&ce.url(), &receiver.url(), &role);
    let secret = sandbox.write_secret();
    // What the previous run left when SIGTERM stopped it.
    let heartbeat = sandbox.state_dir().join("heartbeat.json");
    std::fs::write(
        &heartbeat,
        r#"{"pid":1,"acted":"2026-11-30T10:00:00Z","next_act":"2026-11-30T10:00:00Z","doing":"stopped","stopped":true}"#,
    )
    .unwrap();
    let check = || {
        Cmd::new()
            .config(&config)
            .args(["status", "--check"])
            .run(WITHIN)
    };
    assert_eq!(check().code, Some(1), "the stale heartbeat says stopped");
    let service = Cmd::new()
        .env("AWS_ENDPOINT_URL_STS", &sts.url())
        .config(&config)
        .secret(&secret)
        .arg("run")
        .spawn();
    assert!(support::wait_until(WITHIN, || !seen
        .lock()
        .unwrap()
        .is_empty()));
    let alive = check();
    assert_eq!(
        alive.code,
        Some(0),
        "{}\n{}",
        alive.describe(),
        service.stderr()
    );
    // Each retry of STS is a sign of life with the time of the next attempt.
    let doing = || {
        let text = std::fs::read_to_string(&heartbeat).unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&text).map_or(String::new(), |v| {
            v["doing"].as_str().unwrap_or("").to_string()
        })
    };
    assert!(
        support::wait_until(WITHIN, || doing() == "retrying STS"),
        "{}",
        service.stderr()
    );
    support::runner::stop(service);
}

/// EKS sets AWS_REGION (and AWS_DEFAULT_REGION): STS is that region's, signed for it, while
/// Cost Explorer keeps its own signing region (us-east-1 here); the fake STS on loopback
/// stands in for sts.eu-west-1.amazonaws.com through AWS_ENDPOINT_URL_STS.
#[test]
fn sts_is_signed_for_the_region_of_aws_region_and_cost_explorer_for_its_own() {
    let answer = sts_fixture("assume_role.xml");
    let ce = FakeCostExplorer::start(CeOptions {
        groups_per_day: 1,
        key_id: Some(element(&answer, "AccessKeyId")),
        session_token: Some(element(&answer, "SessionToken")),
        ..CeOptions::default()
    });
    let (sts, seen) = fake_sts(vec![(200, answer.clone())]);
    let sandbox = Sandbox::new("sts-region");
    let config = sandbox.write_config(&ce.url(), "-", ROLE);
    let secret = sandbox.write_secret();
    let run = Cmd::new()
        .env("AWS_ENDPOINT_URL_STS", &sts.url())
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_DEFAULT_REGION", "us-west-2")
        .config(&config)
        .secret(&secret)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    ce.assert_no_violations();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{}", run.describe());
    // Credential=KEY/DATE/REGION/SERVICE/aws4_request
    let scope = |auth: &str| -> Vec<String> {
        let credential = auth
            .split("Credential=")
            .nth(1)
            .expect("a SigV4 Authorization");
        let credential = credential.split(',').next().unwrap();
        credential.split('/').skip(2).map(str::to_string).collect()
    };
    assert_eq!(
        scope(&seen[0]),
        ["eu-west-1", "sts", "aws4_request"],
        "{seen:?}"
    );
    let ce_auth = ce.requests()[0]
        .header("authorization")
        .unwrap()
        .to_string();
    assert_eq!(scope(&ce_auth), ["us-east-1", "ce", "aws4_request"]);
}

#[test]
fn a_bad_sts_region_variable_is_one_line_exit_2() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new("sts-mode");
    let config = sandbox.write_config(&ce.url(), "-", ROLE);
    let secret = sandbox.write_secret();
    let run = Cmd::new()
        .env("AWS_STS_REGIONAL_ENDPOINTS", "global")
        .config(&config)
        .secret(&secret)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(2);
    assert_eq!(
        run.stderr_lines_with(&[
            "ERROR AWS_STS_REGIONAL_ENDPOINTS: expected regional or legacy, found \"global\""
        ])
        .len(),
        1,
        "{}",
        run.describe()
    );
    assert_eq!(run.stderr_lines().len(), 1, "{}", run.describe());
    assert_eq!(ce.request_count(), 0);
}

#[test]
fn the_aws_credentials_file_spelling_in_a_secret_file_is_read() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let sandbox = Sandbox::new("aws-spelling");
    let config = sandbox.write_config(&ce.url(), "-", "");
    let secret = sandbox.write(
        "secret.yml",
        &format!(
            "aws_access_key_id: {ACCESS_KEY_ID}\naws_secret_access_key: \"{SECRET_ACCESS_KEY}\"\n"
        ),
    );
    let run = Cmd::new()
        .config(&config)
        .secret(&secret)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    ce.assert_no_violations();
    assert!(
        run.stderr_lines_with(&["WARN"]).is_empty(),
        "{}",
        run.describe()
    );
    assert_eq!(run.stdout_lines().len(), 2);
}

#[test]
fn an_access_key_id_in_the_environment_without_its_secret_is_named() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new("env-half");
    let config = sandbox.write_config(&ce.url(), "-", "");
    let run = Cmd::new()
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .config(&config)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(2);
    assert_eq!(run.stderr_lines().len(), 1, "{}", run.describe());
    assert!(
        run.stderr.trim_end().ends_with(
            "ERROR AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both, or unset AWS_ACCESS_KEY_ID"
        ),
        "{}",
        run.describe()
    );
    assert_eq!(ce.request_count(), 0);
}
