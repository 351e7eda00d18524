//! Bad input through the real binary: refused with exit 2 and one line before any paid call, never a panic or a leaked secret.

use std::time::Duration;

use crate::support;
use crate::support::{Cmd, FakeCostExplorer, Finished, Sandbox};

const DAY: &str = "2022-06-13";
const WITHIN: Duration = Duration::from_secs(20);

/// Exit 2, nothing on stdout, exactly one stderr line holding every needle, and no call made.
fn assert_refused(run: &Finished, ce: &FakeCostExplorer, needles: &[&str]) {
    run.assert_code(2);
    assert!(
        run.stdout.is_empty(),
        "nothing on stdout\n{}",
        run.describe()
    );
    assert_eq!(run.stderr_lines().len(), 1, "one line\n{}", run.describe());
    assert!(
        !run.stderr_lines_with(needles).is_empty(),
        "the line should mention {needles:?}\n{}",
        run.describe()
    );
    assert_eq!(ce.request_count(), 0, "no paid call\n{}", run.describe());
}

/// `once --date DAY` with a config whose target is `target`, plus these flags and env.
fn run_once(ce: &FakeCostExplorer, target: &str, args: &[&str], env: &[(&str, &str)]) -> Finished {
    let sandbox = Sandbox::new("bad-input");
    let mut cmd = sandbox
        .cmd(&ce.url(), target, "")
        .args(["once", "--date", DAY])
        .args(args.iter().copied());
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    cmd.run(WITHIN)
}

#[test]
fn a_target_port_out_of_range_is_refused_before_any_pull() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let run = run_once(&ce, "http://127.0.0.1:99999/x", &[], &[]);
    assert_refused(&run, &ce, &["config.yml: target", "99999", "1-65535"]);
    let run = run_once(&ce, "-", &["--target", "http://127.0.0.1:99999/x"], &[]);
    assert_refused(&run, &ce, &["--target", "99999"]);
}

#[test]
fn a_broken_ipv6_target_or_a_port_with_a_letter_is_refused() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let run = run_once(&ce, "-", &[], &[("CONNECTOR_TARGET", "http://[::1/x")]);
    assert_refused(&run, &ce, &["CONNECTOR_TARGET", "[::1/x"]);
    let run = run_once(&ce, "http://127.0.0.1:80a/x", &[], &[]);
    assert_refused(&run, &ce, &["target", "port", "80a"]);
    let run = run_once(&ce, "http://:8080/x", &[], &[]);
    assert_refused(&run, &ce, &["target", "host is empty"]);
}

#[test]
fn a_bad_endpoint_from_the_environment_is_named() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new("bad-endpoint");
    let config = sandbox.write(
        "config.yml",
        &format!(
            "target: \"-\"\nstate_dir: \"{}\"\n",
            sandbox.state_dir().display()
        ),
    );
    let run = Cmd::new()
        .config(&config)
        .secret(&sandbox.write_secret())
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:7x/")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    assert_refused(&run, &ce, &["AWS_ENDPOINT_URL", "port"]);
}

#[test]
fn a_socks_proxy_is_a_clear_line_not_a_panic() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    for var in ["ALL_PROXY", "all_proxy", "HTTP_PROXY"] {
        let run = run_once(&ce, "-", &[], &[(var, "socks5://127.0.0.1:1080")]);
        assert_refused(&run, &ce, &[var, "socks5://", "not supported"]);
    }
}

#[test]
fn a_proxy_url_with_garbage_is_refused_without_its_password() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let run = run_once(
        &ce,
        "-",
        &[],
        &[("HTTPS_PROXY", "http://u:pw0rd@proxy:31x8")],
    );
    assert_refused(&run, &ce, &["HTTPS_PROXY", "port"]);
    assert!(!run.stderr.contains("pw0rd"), "{}", run.describe());
    let run = run_once(&ce, "-", &[], &[("http_proxy", "not a url at all")]);
    assert_refused(&run, &ce, &["http_proxy", "proxy URL"]);
}

/// A secret file written with this body, next to a stdout config.
fn run_with_secret(ce: &FakeCostExplorer, secret: &str) -> Finished {
    let sandbox = Sandbox::new("secret-yaml");
    let config = sandbox.write_config(&ce.url(), "-", "");
    let secret = sandbox.write("secret.yml", secret);
    Cmd::new()
        .config(&config)
        .secret(&secret)
        .env("LOG_LEVEL", "debug")
        .args(["once", "--date", DAY])
        .run(WITHIN)
}

#[test]
fn yaml_errors_in_a_secret_file_name_the_place_but_never_the_secret() {
    // The runner fails any run whose output holds SECRET_ACCESS_KEY or SESSION_TOKEN.
    let ce = FakeCostExplorer::with_groups(1, 100);
    let key = support::SECRET_ACCESS_KEY;
    let token = support::SESSION_TOKEN;
    let id = support::ACCESS_KEY_ID;
    for (secret, key_name) in [
        (
            format!("access_key_id: {id}\nsecret_access_key: !!float {key}\n"),
            "secret_access_key",
        ),
        (
            format!("access_key_id: {id}\nsecret_access_key: x\nsession_token: !!bool {token}\n"),
            "session_token",
        ),
        (
            format!("access_key_id: !!int {key}\nsecret_access_key: x\n"),
            "access_key_id",
        ),
        (
            format!("access_key_id: {id}\nsecret_access_key: \"{key}\nsession_token: x\n"),
            "secret_access_key",
        ),
        (
            format!("{{\"access_key_id\": \"{id}\", \"secret_access_key\": !!float {key}}}"),
            "secret_access_key",
        ),
    ] {
        let run = run_with_secret(&ce, &secret);
        assert_refused(&run, &ce, &["secret.yml", "line", "column", key_name]);
    }
}

#[test]
fn files_saved_with_a_byte_order_mark_are_read() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let sandbox = Sandbox::new("bom");
    let config = sandbox.write(
        "config.yml",
        &format!(
            "\u{feff}{}",
            support::runner::config_yaml(&ce.url(), "-", &sandbox.state_dir(), "")
        ),
    );
    let secret = sandbox.write(
        "secret.yml",
        &format!("\u{feff}{}", support::runner::secret_yaml()),
    );
    let run = Cmd::new()
        .config(&config)
        .secret(&secret)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    assert_eq!(run.stdout_lines().len(), 2, "{}", run.describe());
    assert!(
        run.stderr_lines_with(&["WARN"]).is_empty(),
        "{}",
        run.describe()
    );
}

#[test]
fn config_warnings_come_before_the_error_that_follows_them() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new("warn-then-fail");
    // A leftover near spelling of a key that is set: warned about, not refused.
    let config = sandbox.write_config(&ce.url(), "-", "pull_hour: 3\npullhour: 3\n");
    let run = Cmd::new()
        .config(&config)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(2);
    let lines = run.stderr_lines();
    assert_eq!(lines.len(), 2, "{}", run.describe());
    assert!(
        lines[0].contains("WARN") && lines[0].contains("did you mean \"pull_hour\""),
        "{}",
        run.describe()
    );
    assert!(
        lines[1].contains("no AWS credentials"),
        "{}",
        run.describe()
    );
    assert_eq!(ce.request_count(), 0);
}

#[test]
fn a_one_character_secret_does_not_garble_messages() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    ce.always(support::cost_explorer::error_response(
        400,
        r#"{"__type":"AccessDeniedException","message":"User here is not authorized to perform ce:GetCostAndUsage"}"#,
    ));
    let run = run_with_secret(
        &ce,
        &format!(
            "access_key_id: {}\nsecret_access_key: \"e\"\n",
            support::ACCESS_KEY_ID
        ),
    );
    run.assert_code(1);
    assert!(
        !run.stderr_lines_with(&["User here is not authorized to perform ce:GetCostAndUsage"])
            .is_empty(),
        "{}",
        run.describe()
    );
}

#[test]
fn a_secret_that_a_peer_echoes_is_hidden() {
    // The runner fails the run if SECRET_ACCESS_KEY reaches the output.
    let ce = FakeCostExplorer::with_groups(1, 100);
    ce.always(support::cost_explorer::error_response(
        400,
        format!(
            r#"{{"__type":"AccessDeniedException","message":"key {} is not allowed"}}"#,
            support::SECRET_ACCESS_KEY
        ),
    ));
    let run = run_with_secret(&ce, &support::runner::secret_yaml());
    run.assert_code(1);
    assert!(
        !run.stderr_lines_with(&["key *** is not allowed"])
            .is_empty(),
        "{}",
        run.describe()
    );
}
