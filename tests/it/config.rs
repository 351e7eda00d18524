//! Configuration through the real binary: each bad input exits 2 with one clear line; files, env and flags are found and merged.

use std::time::Duration;

use crate::support;
use crate::support::{ACCESS_KEY_ID, Cmd, FakeCostExplorer, Finished, SECRET_ACCESS_KEY, Sandbox};

const DAY: &str = "2022-06-13";
const WITHIN: Duration = Duration::from_secs(20);

/// Runs `once` with this config text (and the standard secret); expects exit 2 and one
/// stderr line holding every needle; and no Cost Explorer call.
fn refused(
    tag: &str,
    config: impl FnOnce(&FakeCostExplorer, &Sandbox) -> String,
    needles: &[&str],
) -> Finished {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new(tag);
    let config = sandbox.write("config.yml", &config(&ce, &sandbox));
    let secret = sandbox.write_secret();
    let run = Cmd::new()
        .config(&config)
        .secret(&secret)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    assert_one_clear_line(&run, needles);
    assert_eq!(
        ce.request_count(),
        0,
        "bad config must stop before any call\n{}",
        run.describe()
    );
    run
}

fn assert_one_clear_line(run: &Finished, needles: &[&str]) {
    run.assert_code(2);
    assert!(
        run.stdout.is_empty(),
        "nothing on stdout\n{}",
        run.describe()
    );
    let lines = run.stderr_lines();
    assert_eq!(
        lines.len(),
        1,
        "exactly one line on stderr\n{}",
        run.describe()
    );
    assert!(
        !run.stderr_lines_with(needles).is_empty(),
        "the line should mention {needles:?}\n{}",
        run.describe()
    );
}

fn base(ce: &FakeCostExplorer, sandbox: &Sandbox) -> String {
    format!(
        "endpoint: \"{}\"\nstate_dir: \"{}\"\n",
        ce.url(),
        sandbox.state_dir().display()
    )
}

#[test]
fn missing_target() {
    refused("no-target", base, &["config.yml", "target"]);
}

#[test]
fn pull_hour_25() {
    refused(
        "hour-25",
        |ce, s| format!("{}target: \"-\"\npull_hour: 25\n", base(ce, s)),
        &["config.yml", "pull_hour", "25"],
    );
}

#[test]
fn pull_hour_two() {
    refused(
        "hour-two",
        |ce, s| format!("{}target: \"-\"\npull_hour: \"two\"\n", base(ce, s)),
        &["config.yml", "pull_hour", "two"],
    );
}

#[test]
fn unparsable_yaml_names_line_and_column() {
    // Line 4 (after endpoint, state_dir, target) starts with a tab, which YAML does not allow there.
    refused(
        "bad-yaml",
        |ce, s| format!("{}target: \"-\"\n\tpull_hour: 3\n", base(ce, s)),
        &["config.yml", "line 4", "column"],
    );
}

#[test]
fn target_that_is_not_http() {
    refused(
        "ftp",
        |ce, s| format!("{}target: \"ftp://x\"\n", base(ce, s)),
        &["config.yml", "target", "ftp://x"],
    );
}

#[test]
fn content_mode_that_does_not_exist() {
    refused(
        "mode",
        |ce, s| format!("{}target: \"-\"\ncontent_mode: xml\n", base(ce, s)),
        &["config.yml", "content_mode", "xml"],
    );
}

#[test]
fn missing_credentials() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new("no-creds");
    let config = sandbox.write_config(&ce.url(), "-", "");
    let run = Cmd::new()
        .config(&config)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    assert_one_clear_line(&run, &["access_key_id"]);
    assert_eq!(ce.request_count(), 0);
}

#[test]
fn secret_file_without_the_secret_key() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new("half-secret");
    let config = sandbox.write_config(&ce.url(), "-", "");
    let secret = sandbox.write("secret.yml", &format!("access_key_id: {ACCESS_KEY_ID}\n"));
    let run = Cmd::new()
        .config(&config)
        .secret(&secret)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    assert_one_clear_line(&run, &["secret.yml", "secret_access_key"]);
    assert_eq!(ce.request_count(), 0);
}

#[test]
fn a_named_config_path_that_does_not_exist() {
    let sandbox = Sandbox::new("no-config");
    let missing = sandbox.path("nowhere/config.yml");
    let secret = sandbox.write_secret();
    let run = Cmd::new()
        .config(&missing)
        .secret(&secret)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    assert_one_clear_line(&run, &[&missing.display().to_string()]);
}

#[test]
fn a_named_secret_path_that_does_not_exist() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new("no-secret");
    let config = sandbox.write_config(&ce.url(), "-", "");
    let missing = sandbox.path("nowhere/secret.yml");
    let run = Cmd::new()
        .config(&config)
        .secret(&missing)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    assert_one_clear_line(&run, &[&missing.display().to_string()]);
    assert_eq!(ce.request_count(), 0);
}

#[test]
fn a_named_config_path_from_the_environment_that_does_not_exist() {
    let sandbox = Sandbox::new("env-no-config");
    let missing = sandbox.path("nowhere.yml");
    let run = Cmd::new()
        .env("CONNECTOR_CONFIG", &missing.display().to_string())
        .args(["once", "--date", DAY])
        .run(WITHIN);
    assert_one_clear_line(&run, &[&missing.display().to_string()]);
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        vec!["sometimes"],
        vec!["once", "--date", "2022-13-01"],
        vec!["once", "--date"],
        vec!["once", "--bogus"],
    ] {
        let run = Cmd::new().args(args.clone()).run(WITHIN);
        run.assert_code(2);
        assert!(
            !run.stderr.trim().is_empty(),
            "{args:?} should say why\n{}",
            run.describe()
        );
    }
}

#[test]
fn help_and_version_exit_0() {
    let run = Cmd::new().arg("--help").run(WITHIN);
    run.assert_code(0);
    for word in ["once", "check", "--config", "--secret", "--target"] {
        assert!(
            run.stdout.contains(word),
            "--help mentions {word}\n{}",
            run.describe()
        );
    }
    let run = Cmd::new().arg("--version").run(WITHIN);
    run.assert_code(0);
    assert!(
        run.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{}",
        run.describe()
    );
}

#[test]
fn an_unknown_key_is_warned_about_by_name_and_the_run_goes_on() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let sandbox = Sandbox::new("unknown-key");
    let run = sandbox
        .cmd(&ce.url(), "-", "colour: blue\n")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    assert_eq!(
        run.stderr_lines_with(&[
            "WARN",
            "unknown key \"colour\" is ignored; known keys: target, "
        ])
        .len(),
        1,
        "{}",
        run.describe()
    );
    assert_eq!(run.stdout_lines().len(), 2);
}

/// A misspelt key is refused with the key it is near: as written, that key would keep its
/// default (`endpont`: real AWS; `grup_by`: another breakdown, recorded as delivered).
#[test]
fn a_misspelt_key_is_refused_with_the_key_it_means() {
    for (key, meant, value) in [
        ("taget", "target", "\"-\""),
        ("endpont", "endpoint", "\"http://127.0.0.1:9\""),
        ("grup_by", "group_by", "[SERVICE, LINKED_ACCOUNT]"),
        ("pullhour", "pull_hour", "3"),
    ] {
        let run = refused(
            &format!("typo-{key}"),
            |ce, s| {
                // The file sets everything else; `endpont` goes with no endpoint at all.
                let endpoint = match key {
                    "endpont" => String::new(),
                    _ => format!("endpoint: \"{}\"\n", ce.url()),
                };
                let target = if key == "taget" {
                    ""
                } else {
                    "target: \"-\"\n"
                };
                format!(
                    "{endpoint}{target}state_dir: \"{}\"\n{key}: {value}\n",
                    s.state_dir().display()
                )
            },
            &[&format!(
                "config.yml: unknown key \"{key}\": did you mean \"{meant}\"? ({meant} is not set; \
                 correct the spelling or remove the key)"
            )],
        );
        assert!(!run.stderr.contains("known keys:"), "{}", run.describe());
    }
}

#[test]
fn a_misspelt_secret_key_is_refused_with_the_key_it_means() {
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new("typo-secret");
    let config = sandbox.write_config(&ce.url(), "-", "");
    let secret = sandbox.write(
        "secret.yml",
        &format!("acces_key_id: \"{ACCESS_KEY_ID}\"\nsecret_access_key: \"{SECRET_ACCESS_KEY}\"\n"),
    );
    let run = Cmd::new()
        .config(&config)
        .secret(&secret)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    assert_one_clear_line(
        &run,
        &["secret.yml: unknown key \"acces_key_id\": did you mean \"access_key_id\"?"],
    );
    assert_eq!(ce.request_count(), 0);
}

#[test]
fn a_misspelt_command_or_option_gets_the_one_it_means() {
    for (args, line) in [
        (
            &["oncee", "--date", DAY][..],
            "error: unknown command \"oncee\"; did you mean once?",
        ),
        (
            &["once", "--targt", "-"],
            "error: unknown option \"--targt\"; did you mean --target? (see --help)",
        ),
    ] {
        let run = Cmd::new().args(args).run(WITHIN);
        run.assert_code(2);
        assert_eq!(run.stderr_lines(), [line], "{}", run.describe());
    }
}

/// Where nothing is at the default path (/vance/config/config.yml here) and nothing else
/// names a target, the line says there is no file, not that the file lacks a key.
#[test]
fn no_config_file_at_all_is_named_as_such() {
    assert!(!std::path::Path::new(config_default()).exists());
    let run = Cmd::new().args(["once", "--date", DAY]).run(WITHIN);
    run.assert_code(2);
    let want = format!(
        "ERROR no config file at {} (pass --config or set CONNECTOR_CONFIG)",
        config_default()
    );
    assert_eq!(run.stderr_lines().len(), 1, "{}", run.describe());
    assert!(run.stderr.trim_end().ends_with(&want), "{}", run.describe());
}

/// `status` reads state_dir only: no config file and no target are needed.
#[test]
fn status_needs_only_a_state_dir() {
    let sandbox = Sandbox::new("status-no-config");
    let run = Cmd::new()
        .env(
            "CONNECTOR_STATE_DIR",
            &sandbox.state_dir().display().to_string(),
        )
        .args(["status", "--json"])
        .run(WITHIN);
    run.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("status --json");
    assert_eq!(
        report["state_dir"],
        sandbox.state_dir().display().to_string()
    );
}

fn config_default() -> &'static str {
    source_aws_billing::config::DEFAULT_CONFIG
}

#[test]
fn a_json_config_and_the_seed_spelling_of_the_secret_key_work() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let sandbox = Sandbox::new("json");
    let config = sandbox.write(
        "config.json",
        &serde_json::json!({
            "target": "-",
            "endpoint": ce.url(),
            "state_dir": sandbox.state_dir(),
            "pull_hour": 5
        })
        .to_string(),
    );
    let secret = sandbox.write(
        "secret.yml",
        &format!("\"access_key_id\": \"{ACCESS_KEY_ID}\"\n\"secret_access_Key\": \"{SECRET_ACCESS_KEY}\"\n"),
    );
    let run = Cmd::new()
        .config(&config)
        .secret(&secret)
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    ce.assert_no_violations();
    assert_eq!(run.stdout_lines().len(), 2);
}

#[test]
fn files_and_target_can_come_from_the_environment() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let sandbox = Sandbox::new("env-files");
    let config = sandbox.write_config(&ce.url(), "http://127.0.0.1:9/not-this-one", "");
    let secret = sandbox.write_secret();
    let run = Cmd::new()
        .env("CONNECTOR_CONFIG", &config.display().to_string())
        .env("CONNECTOR_SECRET", &secret.display().to_string())
        .env("CONNECTOR_TARGET", "-")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    ce.assert_no_violations();
    assert_eq!(run.stdout_lines().len(), 2);
}

#[test]
fn credentials_and_endpoint_can_come_from_aws_variables() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let sandbox = Sandbox::new("env-aws");
    let config = sandbox.write(
        "config.yml",
        &format!(
            "target: \"-\"\nstate_dir: \"{}\"\n",
            sandbox.state_dir().display()
        ),
    );
    let run = Cmd::new()
        .config(&config)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env("AWS_ENDPOINT_URL_COST_EXPLORER", &ce.url())
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    ce.assert_no_violations();
    assert_eq!(run.stdout_lines().len(), 2);
}

#[test]
fn the_config_secret_section_is_read() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let sandbox = Sandbox::new("secret-section");
    let config = sandbox.write_config(
        &ce.url(),
        "-",
        &format!("secret:\n  access_key_id: {ACCESS_KEY_ID}\n  secret_access_key: \"{SECRET_ACCESS_KEY}\"\n"),
    );
    let run = Cmd::new()
        .config(&config)
        .env("LOG_LEVEL", "debug")
        .args(["once", "--date", DAY])
        .run(WITHIN);
    run.assert_code(0);
    ce.assert_no_violations();
    assert_eq!(run.stdout_lines().len(), 2);
}

#[test]
fn the_target_flag_overrides_the_config() {
    let ce = FakeCostExplorer::with_groups(2, 100);
    let sandbox = Sandbox::new("flag-target");
    let run = sandbox
        .cmd(&ce.url(), "http://127.0.0.1:9/not-this-one", "")
        .args(["once", "--date", DAY, "--target", "-"])
        .run(WITHIN);
    run.assert_code(0);
    assert_eq!(run.stdout_lines().len(), 2);
}

#[test]
fn a_day_that_is_not_over_is_refused_before_any_pull() {
    // Recording today as delivered would make the service skip its complete data tomorrow.
    let ce = FakeCostExplorer::with_groups(1, 100);
    let sandbox = Sandbox::new("today");
    let config = sandbox.write(
        "config.yml",
        &format!("{}target: \"http://127.0.0.1:9/\"\n", base(&ce, &sandbox)),
    );
    let today = support::days_ago(0);
    let run = Cmd::new()
        .config(&config)
        .secret(&sandbox.write_secret())
        .args(["once", "--date", &today])
        .run(WITHIN);
    assert_one_clear_line(&run, &[&today, "not over yet"]);
    assert_eq!(ce.request_count(), 0, "{}", run.describe());
    assert!(!sandbox.state_dir().join("delivered.json").exists());
}

/// The Quickstart's config.yml and secret.yml, as the README shows them, load as they are.
#[test]
fn the_quickstart_files_load_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let quickstart = &readme[readme.find("## Quickstart").expect("a Quickstart")..];
    let quickstart = &quickstart[..quickstart.find("\n## ").expect("the next section")];
    let blocks: Vec<String> = quickstart
        .split("```yaml\n")
        .skip(1)
        .map(|b| {
            let block = &b[..b.find("```").expect("a closed block")];
            block
                .lines()
                .map(str::trim_start)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    assert_eq!(blocks.len(), 2, "config.yml and secret.yml");
    let sandbox = Sandbox::new("quickstart");
    let overrides = source_aws_billing::config::Overrides {
        config: Some(sandbox.write("config.yml", &blocks[0])),
        secret: Some(sandbox.write("secret.yml", &blocks[1])),
        ..Default::default()
    };
    let (config, warnings) = source_aws_billing::config::load(&overrides, &|_| None)
        .unwrap_or_else(|e| panic!("the Quickstart's files: {e}"));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        config.target,
        source_aws_billing::config::Target::Http("http://localhost:8080/".into())
    );
    let keys = source_aws_billing::credentials::load_credentials(&config.secret)
        .expect("keys")
        .0;
    assert!(keys.access_key_id.starts_with("AKIA"));
}
