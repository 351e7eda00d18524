//! Loads config and secret from files, env and flags; validates them; keeps secrets out of Debug.

use crate::credentials::static_keys::{self, SecretSource, check_static_keys};
use crate::event::ContentMode;
pub use crate::target::Target;
use crate::target::parse as parse_target;
use crate::yaml::{ConfigError, Doc, Keys, check_unknown, err, read_optional};
use serde_yaml::Mapping;
use std::path::PathBuf;
use std::sync::LazyLock;

pub const DEFAULT_CONFIG: &str = "/vance/config/config.yml";
pub const DEFAULT_SECRET: &str = "/vance/secret/secret.yml";
/// The keys config.rs reads itself (`name`, the old connector's, is accepted and unused).
const OWN_KEYS: [&str; 9] = [
    "target",
    "region",
    "pull_hour",
    "content_mode",
    "max_spool_mb",
    "max_catchup_days",
    "retry_max_backoff_s",
    "send_timeout_s",
    "name",
];

/// Every key of a config file: ours and those of the modules that read their own.
static CONFIG_KEYS: LazyLock<Vec<&str>> = LazyLock::new(|| {
    let own = |range: std::ops::Range<usize>| &OWN_KEYS[range];
    [
        own(0..1),
        &crate::costexplorer::KEYS,
        own(1..3),
        &crate::breakdown::KEYS,
        own(3..4),
        &crate::state::KEYS,
        own(4..8),
        &[crate::spend::KEY],
        &crate::http::KEYS,
        &static_keys::KEYS,
        own(8..9),
        &crate::credentials::ROLE_KEYS,
        &crate::revise::KEYS,
        &crate::focus::KEYS,
        &crate::schema::KEYS,
    ]
    .concat()
});

/// The config's keys and the secret ones, for parse errors and unknown-key warnings.
fn keys() -> Keys<'static> {
    Keys {
        known: CONFIG_KEYS.as_slice(),
        secret: &static_keys::SECRET_KEYS,
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    pub endpoint: String,
    pub region: String,
    pub pull_hour: u8,
    /// The first of `breakdown.metrics`: the one in `amount` and `unit`.
    pub metric: String,
    pub breakdown: crate::breakdown::Breakdown,
    pub content_mode: ContentMode,
    pub state_dir: PathBuf,
    /// The user chose state_dir (config or env): failing to use it is an error, not a warning.
    pub state_dir_named: bool,
    pub max_spool_mb: u64,
    pub max_catchup_days: u32,
    pub retry_max_backoff_s: u64,
    pub send_timeout_s: u64,
    /// Cost Explorer requests allowed per UTC month; 0: no cap (see spend.rs).
    pub max_monthly_requests: u64,
    pub ca_file: Option<PathBuf>,
    pub secret: SecretSource,
    pub role: crate::credentials::RoleSettings,
    /// `revise_days` and `summary` (see revise.rs).
    pub revise: crate::revise::Settings,
    /// `format` and `billing_account_id` (see focus.rs).
    pub focus: crate::focus::Settings,
    /// The URL of the data's JSON Schema, for the `dataschema` attribute (see schema.rs).
    pub dataschema: Option<String>,
}

/// What the command line says about where things are.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub secret: Option<PathBuf>,
    pub target: Option<String>,
    /// The command sends nothing (`status`): a missing target is no error, and `target`
    /// is then `Target::Stdout`.
    pub without_target: bool,
}

/// Loads and validates everything, static keys included; returns the config and the warnings.
pub fn load(
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Config, Vec<String>), ConfigError> {
    let mut warnings = Vec::new();
    let mut warn = |w| warnings.push(w);
    let config = load_reporting(overrides, env, &mut warn)?;
    check_static_keys(&config.secret, &mut warn)?;
    Ok((config, warnings))
}

/// Like `load` without the credentials (`status` needs none), handing each warning to `warn`
/// as it is found, so warnings found before an error are not lost with it.
pub fn load_reporting(
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
    warn: &mut dyn FnMut(String),
) -> Result<Config, ConfigError> {
    let (config_path, config_named) =
        choose(&overrides.config, env("CONNECTOR_CONFIG"), DEFAULT_CONFIG);
    let (secret_path, secret_named) =
        choose(&overrides.secret, env("CONNECTOR_SECRET"), DEFAULT_SECRET);
    let name = config_path.display().to_string();
    let text = read_optional(&config_path, config_named)?;
    let map = match &text {
        Some(text) => crate::yaml::parse(&name, text, false, keys())?,
        None => Mapping::new(),
    };
    check_unknown(&name, &map, keys().known, warn)?;
    let file = Doc {
        name: &name,
        map: &map,
    };
    let mut target = match resolve_target(overrides, env, &file)? {
        Some(target) => target,
        None if overrides.without_target => Target::Stdout,
        None if text.is_none() => {
            return err(format!(
                "no config file at {name} (pass --config or set CONNECTOR_CONFIG)"
            ));
        }
        None => {
            return err(format!(
                "{name}: target: missing; set the URL CloudEvents go to (or \"-\" for stdout), \
                 or pass --target or CONNECTOR_TARGET"
            ));
        }
    };
    let endpoint = crate::costexplorer::endpoint_setting(&file, env)?;
    crate::urls::check_proxy_env(env).map_err(ConfigError)?;
    let region = match file.string("region")? {
        Some(r) if !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => r,
        Some(r) => {
            return err(format!(
                "{name}: region: expected a region name like us-east-1, found {r:?}"
            ));
        }
        None => crate::costexplorer::region_of(&endpoint)
            .unwrap_or("us-east-1")
            .to_string(),
    };
    if let Target::EventBridge(bus) = &mut target {
        bus.locate(&region, env)?;
    }
    let mut breakdown = crate::breakdown::settings(&file)?;
    let focus = crate::focus::settings(&file)?;
    if focus.format == crate::focus::Format::Focus {
        breakdown.metrics = crate::focus::METRICS.map(String::from).to_vec();
    }
    let content_mode = match file
        .one_of(
            "content_mode",
            &["binary", "structured"],
            "binary or structured",
        )?
        .as_deref()
    {
        Some("structured") => ContentMode::Structured,
        _ => ContentMode::Binary,
    };
    let (state_dir, state_dir_named) = crate::state::dir_setting(&file, env)?;
    let config = Config {
        target,
        endpoint,
        region,
        pull_hour: file
            .integer("pull_hour", 0, 23, "an hour 0-23 (UTC)")?
            .unwrap_or(2) as u8,
        metric: breakdown.metrics[0].clone(),
        breakdown,
        content_mode,
        state_dir,
        state_dir_named,
        max_spool_mb: (file.integer("max_spool_mb", 1, 1 << 20, "a size in MiB, 1-1048576")?)
            .unwrap_or(64),
        max_catchup_days: (file.integer("max_catchup_days", 1, 3650, "a number of days 1-3650")?)
            .unwrap_or(14) as u32,
        retry_max_backoff_s: (file.integer("retry_max_backoff_s", 1, 86400, "seconds 1-86400")?)
            .unwrap_or(300),
        send_timeout_s: (file.integer("send_timeout_s", 1, 86400 * 7, "seconds 1-604800")?)
            .unwrap_or(600),
        ca_file: crate::http::ca_file_setting(&file, env)?,
        secret: SecretSource::new(secret_path, secret_named, keys(), &file, env, warn)?,
        role: crate::credentials::role_settings(&file)?,
        revise: crate::revise::settings(&file)?,
        max_monthly_requests: crate::spend::settings(&file)?,
        focus,
        dataschema: crate::schema::settings(&file)?,
    };
    Ok(config)
}

/// The target: `--target`, else CONNECTOR_TARGET, else the config's `target` (None: none).
fn resolve_target(
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
    file: &Doc,
) -> Result<Option<Target>, ConfigError> {
    match (&overrides.target, env("CONNECTOR_TARGET")) {
        (Some(t), _) => parse_target("--target", t).map(Some),
        (None, Some(t)) if !t.is_empty() => parse_target("CONNECTOR_TARGET", &t).map(Some),
        _ => match file.string("target")? {
            Some(t) => parse_target(&format!("{}: target", file.name), &t).map(Some),
            None => Ok(None),
        },
    }
}

fn choose(flag: &Option<PathBuf>, env: Option<String>, default: &str) -> (PathBuf, bool) {
    match (flag, env.filter(|e| !e.is_empty())) {
        (Some(p), _) => (p.clone(), true),
        (None, Some(e)) => (PathBuf::from(e), true),
        (None, None) => (PathBuf::from(default), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn setup(config: &str, secret: Option<&str>) -> (Dir, Overrides) {
        let dir = std::env::temp_dir().join(format!(
            "sab-config-{}-{}",
            std::process::id(),
            getrandom::u64().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let secret_path = dir.join("secret.yml");
        if let Some(s) = secret {
            std::fs::write(&secret_path, s).unwrap();
        }
        let o = Overrides {
            config: Some(dir.join("config.yml")),
            secret: secret.map(|_| secret_path),
            ..Default::default()
        };
        (Dir(dir), o)
    }

    const SECRET: &str = "access_key_id: AKIDEXAMPLE\nsecret_access_key: wJalrXUtnFEMI/K7MDENG\n";

    fn load_with(
        config: &str,
        secret: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let (_dir, o) = setup(config, secret);
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load(&o, &|k| env.get(k).cloned())
    }

    fn error_of(config: &str) -> String {
        load_with(config, Some(SECRET), &[]).unwrap_err().0
    }

    #[test]
    fn defaults_follow_the_seed() {
        let (c, warnings) =
            load_with("\"target\": \"http://localhost:8080\"\n", Some(SECRET), &[]).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.target, Target::Http("http://localhost:8080".into()));
        assert_eq!(c.endpoint, crate::costexplorer::DEFAULT_ENDPOINT);
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.pull_hour, 2);
        assert_eq!(c.metric, "BlendedCost");
        assert_eq!(c.content_mode, ContentMode::Binary);
        assert_eq!(c.state_dir, PathBuf::from(crate::state::DEFAULT_DIR));
        assert!(!c.state_dir_named);
    }

    #[test]
    fn bad_values_name_file_key_and_value() {
        for (config, want) in [
            ("endpoint: http://x\n", "target: missing"),
            (
                "target: http://x\npull_hour: 25\n",
                "pull_hour: expected an hour 0-23 (UTC), found 25",
            ),
            (
                "target: http://x\npull_hour: two\n",
                "pull_hour: expected an hour 0-23 (UTC), found \"two\"",
            ),
            (
                "target: ftp://x\n",
                "target: expected an http:// or https:// URL, found \"ftp://x\"",
            ),
            (
                "target: http://x\ncontent_mode: batch\n",
                "content_mode: expected binary or structured",
            ),
            (
                "target: http://x\nmetric: Cost\n",
                "metric: expected one of",
            ),
            (
                "target: http://x\nendpoint: ce.amazonaws.com\n",
                "endpoint: expected an http",
            ),
            ("target: [http://x\n", "invalid YAML at line"),
            ("- a\n- b\n", "expected a mapping"),
        ] {
            let e = error_of(config);
            assert!(e.contains("config.yml: "), "{e}");
            assert!(e.contains(want), "{config:?}: {e}");
        }
    }

    #[test]
    fn unknown_keys_are_warned_by_name_and_near_misses_are_errors() {
        let (_, w) = load_with("target: http://x\ninsecure: true\n", Some(SECRET), &[]).unwrap();
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("unknown key \"insecure\" is ignored; known keys: target, "),
            "{w:?}"
        );
        // A misspelt key would leave the key it means at its default: refused.
        for (config, key, meant) in [
            ("target: http://x\npullhour: 3\n", "pullhour", "pull_hour"),
            ("taget: http://x\n", "taget", "target"),
            (
                "target: http://x\nendpont: http://127.0.0.1:1\n",
                "endpont",
                "endpoint",
            ),
            (
                "target: http://x\ngrup_by: [SERVICE]\n",
                "grup_by",
                "group_by",
            ),
        ] {
            let e = error_of(config);
            assert!(
                e.ends_with(&format!(
                    "config.yml: unknown key {key:?}: did you mean {meant:?}? ({meant} is not set; \
                     correct the spelling or remove the key)"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn flags_and_env_override_target_and_fill_endpoint() {
        let (c, _) = load_with(
            "target: http://file\n",
            Some(SECRET),
            &[
                ("CONNECTOR_TARGET", "-"),
                ("AWS_ENDPOINT_URL", "https://ce.eu-west-1.amazonaws.com/"),
            ],
        )
        .unwrap();
        assert_eq!(c.target, Target::Stdout);
        assert_eq!(c.endpoint, "https://ce.eu-west-1.amazonaws.com");
        assert_eq!(c.region, "eu-west-1");
        let (_dir, mut o) = setup("target: http://file\n", Some(SECRET));
        o.target = Some("http://flag".into());
        let (c, _) = load(&o, &|k| {
            (k == "CONNECTOR_TARGET").then(|| "http://env".to_string())
        })
        .unwrap();
        assert_eq!(c.target, Target::Http("http://flag".into()));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let (config, _) = load_with(
            "target: http://x\nsecret:\n  access_key_id: A\n  secret_access_key: very-secret\n",
            None,
            &[],
        )
        .unwrap();
        assert!(!format!("{config:?}").contains("very-secret"));
    }

    #[test]
    fn a_named_config_that_does_not_exist_is_an_error_but_the_default_is_not() {
        let o = Overrides {
            config: Some("/nonexistent/c.yml".into()),
            ..Default::default()
        };
        assert_eq!(
            load(&o, &|_| None).unwrap_err().0,
            "/nonexistent/c.yml: no such file"
        );
        let missing = |k: &str| (k == "CONNECTOR_CONFIG").then(|| "/nonexistent/c.yml".into());
        assert_eq!(
            load(&Overrides::default(), &missing).unwrap_err().0,
            "/nonexistent/c.yml: no such file"
        );
    }

    #[test]
    fn no_config_file_at_all_says_so_unless_the_command_needs_no_target() {
        // The default path: /vance/config/config.yml does not exist where tests run.
        let e = load(&Overrides::default(), &|_| None).unwrap_err().0;
        assert_eq!(
            e,
            "no config file at /vance/config/config.yml (pass --config or set CONNECTOR_CONFIG)"
        );
        let by_env = |k: &str| (k == "CONNECTOR_TARGET").then(|| "-".to_string());
        assert_eq!(
            load(&Overrides::default(), &by_env).unwrap().0.target,
            Target::Stdout
        );
        let status = Overrides {
            without_target: true,
            ..Default::default()
        };
        let state = |k: &str| (k == "CONNECTOR_STATE_DIR").then(|| "/srv/state".to_string());
        let (c, _) = load(&status, &state).unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/srv/state"));
        // A file without target still names the key.
        let (_dir, o) = setup("pull_hour: 3\n", Some(SECRET));
        assert!(load(&o, &|_| None).unwrap_err().0.ends_with(
            "config.yml: target: missing; set the URL CloudEvents go to (or \"-\" for stdout), or pass --target or CONNECTOR_TARGET"
        ));
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let (c, w) = load_with(
            "\u{feff}target: http://x\npull_hour: 4\n",
            Some(&format!("\u{feff}{SECRET}")),
            &[],
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.pull_hour, 4);
        let (_, w) = load_with("\u{feff}{\"target\": \"-\"}", Some(SECRET), &[]).unwrap();
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn warnings_found_before_an_error_are_reported() {
        let (_dir, o) = setup(
            "target: http://x\ntls_verify: false\n",
            Some("access_key_id: A\nacces_key_id: A\n"),
        );
        let mut warnings = Vec::new();
        let mut warn = |w| warnings.push(w);
        let e = load_reporting(&o, &|_| None, &mut warn)
            .and_then(|c| check_static_keys(&c.secret, &mut warn))
            .unwrap_err();
        assert!(e.0.contains("secret_access_key: missing"), "{e}");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("unknown key \"tls_verify\" is ignored"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].contains("secret.yml: unknown key \"acces_key_id\""),
            "{warnings:?}"
        );
    }

    #[test]
    fn endless_or_huge_files_are_refused() {
        let o = Overrides {
            config: Some("/dev/zero".into()),
            ..Default::default()
        };
        let e = load(&o, &|_| None).unwrap_err().0;
        assert_eq!(
            e,
            "/dev/zero: larger than 1 MiB; expected a small YAML or JSON file"
        );
        let (_dir, mut o) = setup("target: http://x\n", None);
        o.secret = Some("/dev/zero".into());
        assert!(
            load(&o, &|_| None)
                .unwrap_err()
                .0
                .starts_with("/dev/zero: larger")
        );
    }

    #[test]
    fn json_files_are_accepted() {
        let (c, _) = load_with(
            "{\"target\": \"https://broker\", \"pull_hour\": 0}",
            Some(SECRET),
            &[],
        )
        .unwrap();
        assert_eq!(
            (c.target, c.pull_hour),
            (Target::Http("https://broker".into()), 0)
        );
    }

    const INTEGER_KEYS: [&str; 8] = [
        "pull_hour",
        "max_spool_mb",
        "max_catchup_days",
        "retry_max_backoff_s",
        "send_timeout_s",
        "max_monthly_requests",
        "revise_days",
        "duration_seconds",
    ];

    #[test]
    fn every_integer_key_reads_a_quoted_number_alike() {
        let config = |value: &dyn Fn(&str) -> String| {
            let mut text = "target: http://x\nrole_arn: arn:aws:iam::1:role/r\n".to_string();
            for key in INTEGER_KEYS {
                text += &format!("{key}: {}\n", value(key));
            }
            text
        };
        let number = |key: &str| match key {
            "duration_seconds" => "3600",
            "pull_hour" => "4",
            _ => "7",
        };
        let read = |c: &Config| {
            (
                c.pull_hour as u64,
                c.max_spool_mb,
                c.max_catchup_days as u64,
                c.retry_max_backoff_s,
                c.send_timeout_s,
                c.max_monthly_requests,
                c.revise.revise_days as u64,
                c.role.duration_seconds.map(u64::from),
            )
        };
        let (plain, _) = load_with(&config(&|k| number(k).to_string()), Some(SECRET), &[]).unwrap();
        let (quoted, w) = load_with(
            &config(&|k| format!("\"{}\"", number(k))),
            Some(SECRET),
            &[],
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(read(&quoted), read(&plain));
        assert_eq!(read(&plain), (4, 7, 7, 7, 7, 7, 7, Some(3600)));
        // And a value that is no number is shown the same way for every key.
        for key in INTEGER_KEYS {
            let text =
                format!("target: http://x\nrole_arn: arn:aws:iam::1:role/r\n{key}: \"3600s\"\n");
            let e = error_of(&text);
            assert!(
                e.contains(&format!("config.yml: {key}: expected "))
                    && e.ends_with(", found \"3600s\""),
                "{e}"
            );
        }
    }
}
