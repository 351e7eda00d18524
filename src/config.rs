//! Loads config and secret from files, env and flags; validates them; keeps secrets out of Debug.

use serde_yaml::{Mapping, Value};
use std::fmt;
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG: &str = "/vance/config/config.yml";
pub const DEFAULT_SECRET: &str = "/vance/secret/secret.yml";
pub const DEFAULT_STATE_DIR: &str = "/vance/data";
pub const DEFAULT_ENDPOINT: &str = "https://ce.us-east-1.amazonaws.com";
pub const METRICS: [&str; 7] = [
    "AmortizedCost",
    "BlendedCost",
    "NetAmortizedCost",
    "NetUnblendedCost",
    "NormalizedUsageAmount",
    "UnblendedCost",
    "UsageQuantity",
];
const CONFIG_KEYS: [&str; 15] = [
    "target",
    "endpoint",
    "region",
    "pull_hour",
    "metric",
    "content_mode",
    "state_dir",
    "max_spool_mb",
    "max_catchup_days",
    "retry_max_backoff_s",
    "send_timeout_s",
    "max_monthly_requests",
    "ca_file",
    "secret",
    "name",
];
const SECRET_KEYS: [&str; 4] = [
    "access_key_id",
    "secret_access_key",
    "secret_access_Key",
    "session_token",
];

/// One line for the user: names the file, key and value and says what was expected.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(message: String) -> Result<T, ConfigError> {
    Err(ConfigError(message))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `-`: structured JSON lines on stdout; no state is read or written.
    Stdout,
    Http(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentMode {
    Binary,
    Structured,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .finish()
    }
}

/// Where credentials come from, in precedence order; the file is read again before each pull.
#[derive(Debug, Clone)]
pub struct SecretSource {
    file: PathBuf,
    file_named: bool,
    config_section: Option<(String, Credentials)>,
    env: Option<Credentials>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    pub endpoint: String,
    pub region: String,
    pub pull_hour: u8,
    pub metric: String,
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
}

/// What the command line says about where things are.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub secret: Option<PathBuf>,
    pub target: Option<String>,
}

/// Loads and validates everything; returns the config and the warnings to log.
pub fn load(
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Config, Vec<String>), ConfigError> {
    let (config, mut warnings) = load_settings(overrides, env)?;
    let (_, secret_warnings) = load_credentials(&config.secret)?;
    warnings.extend(secret_warnings);
    Ok((config, warnings))
}

/// Everything but the credentials check (`status` needs none).
pub fn load_settings(
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Config, Vec<String>), ConfigError> {
    let mut warnings = Vec::new();
    let (config_path, config_named) =
        choose(&overrides.config, env("CONNECTOR_CONFIG"), DEFAULT_CONFIG);
    let (secret_path, secret_named) =
        choose(&overrides.secret, env("CONNECTOR_SECRET"), DEFAULT_SECRET);
    let name = config_path.display().to_string();
    let map = match read_optional(&config_path, config_named)? {
        Some(text) => parse_document(&name, &text)?,
        None => Mapping::new(),
    };
    for key in map.keys() {
        let key = key_name(key);
        if !CONFIG_KEYS.contains(&key.as_str()) {
            warnings.push(unknown_key(&name, &key, &CONFIG_KEYS));
        }
    }
    let file = Doc {
        name: &name,
        map: &map,
    };

    let target = match (&overrides.target, env("CONNECTOR_TARGET")) {
        (Some(t), _) => parse_target("--target", t)?,
        (None, Some(t)) if !t.is_empty() => parse_target("CONNECTOR_TARGET", &t)?,
        _ => match file.string("target")? {
            Some(t) => parse_target(&format!("{name}: target"), &t)?,
            None => {
                return err(format!(
                    "{name}: target: missing; set the URL CloudEvents go to (or \"-\" for stdout), \
                     or pass --target or CONNECTOR_TARGET"
                ));
            }
        },
    };
    let (endpoint, endpoint_from) = match file.string("endpoint")? {
        Some(e) => (e, format!("{name}: endpoint")),
        None => match ["AWS_ENDPOINT_URL_COST_EXPLORER", "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|k| env(k).filter(|v| !v.is_empty()).map(|v| (v, k.to_string())))
        {
            Some(found) => found,
            None => (DEFAULT_ENDPOINT.to_string(), "endpoint".to_string()),
        },
    };
    check_http_url(&endpoint_from, &endpoint)?;
    let endpoint = endpoint.trim_end_matches('/').to_string();
    let region = match file.string("region")? {
        Some(r) if !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => r,
        Some(r) => {
            return err(format!(
                "{name}: region: expected a region name like us-east-1, found {r:?}"
            ));
        }
        None => region_from_endpoint(&endpoint)
            .unwrap_or("us-east-1")
            .to_string(),
    };
    let pull_hour = file
        .integer("pull_hour", 0, 23, "an hour 0-23 (UTC)")?
        .unwrap_or(2) as u8;
    let metric = match file.string("metric")? {
        Some(m) if METRICS.contains(&m.as_str()) => m,
        Some(m) => {
            return err(format!(
                "{name}: metric: expected one of {}, found {m:?}",
                METRICS.join(", ")
            ));
        }
        None => "BlendedCost".to_string(),
    };
    let content_mode = match file.string("content_mode")?.as_deref() {
        None | Some("binary") => ContentMode::Binary,
        Some("structured") => ContentMode::Structured,
        Some(other) => {
            return err(format!(
                "{name}: content_mode: expected binary or structured, found {other:?}"
            ));
        }
    };
    let (state_dir, state_dir_named) = match file.string("state_dir")? {
        Some(d) if !d.is_empty() => (PathBuf::from(d), true),
        Some(_) => {
            return err(format!(
                "{name}: state_dir: expected a directory path, found \"\""
            ));
        }
        None => match env("CONNECTOR_STATE_DIR").filter(|d| !d.is_empty()) {
            Some(d) => (PathBuf::from(d), true),
            None => (PathBuf::from(DEFAULT_STATE_DIR), false),
        },
    };
    let max_spool_mb = file
        .integer("max_spool_mb", 1, 1 << 20, "a size in MiB, 1-1048576")?
        .unwrap_or(64);
    let max_catchup_days = file
        .integer("max_catchup_days", 1, 3650, "a number of days 1-3650")?
        .unwrap_or(14) as u32;
    let retry_max_backoff_s = file
        .integer("retry_max_backoff_s", 1, 86400, "seconds 1-86400")?
        .unwrap_or(300);
    let send_timeout_s = file
        .integer("send_timeout_s", 1, 86400 * 7, "seconds 1-604800")?
        .unwrap_or(600);
    let ca_file = match file.string("ca_file")? {
        Some(f) => Some((PathBuf::from(f), format!("{name}: ca_file"))),
        None => env("AWS_CA_BUNDLE")
            .filter(|f| !f.is_empty())
            .map(|f| (PathBuf::from(f), "AWS_CA_BUNDLE".to_string())),
    };
    if let Some((path, from)) = &ca_file
        && !path.is_file()
    {
        return err(format!(
            "{from}: {}: no such file; expected a PEM file of CA certificates",
            path.display()
        ));
    }
    let config_section = match map.get("secret") {
        None | Some(Value::Null) => None,
        Some(Value::Mapping(m)) => {
            let section = format!("{name}: secret");
            let doc = Doc {
                name: &section,
                map: m,
            };
            for key in m.keys() {
                let key = key_name(key);
                if !SECRET_KEYS.contains(&key.as_str()) {
                    warnings.push(unknown_key(&section, &key, &SECRET_KEYS));
                }
            }
            credentials_from(&doc)?.map(|c| (section, c))
        }
        Some(_) => {
            return err(format!(
                "{name}: secret: expected a mapping with access_key_id and secret_access_key"
            ));
        }
    };
    let env_credentials = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(key)) if !id.is_empty() && !key.is_empty() => Some(Credentials {
            access_key_id: id,
            secret_access_key: key,
            session_token: env("AWS_SESSION_TOKEN").filter(|t| !t.is_empty()),
        }),
        _ => None,
    };
    let config = Config {
        target,
        endpoint,
        region,
        pull_hour,
        metric,
        content_mode,
        state_dir,
        state_dir_named,
        max_spool_mb,
        max_catchup_days,
        retry_max_backoff_s,
        send_timeout_s,
        max_monthly_requests: crate::spend::parse_max(&map, &name)?,
        ca_file: ca_file.map(|(p, _)| p),
        secret: SecretSource {
            file: secret_path,
            file_named: secret_named,
            config_section,
            env: env_credentials,
        },
    };
    Ok((config, warnings))
}

/// Reads the credentials again (a rotated Kubernetes Secret takes effect at the next pull).
pub fn load_credentials(source: &SecretSource) -> Result<(Credentials, Vec<String>), ConfigError> {
    let mut warnings = Vec::new();
    let name = source.file.display().to_string();
    if let Some(text) = read_optional(&source.file, source.file_named)? {
        let map = parse_document(&name, &text)?;
        for key in map.keys() {
            let key = key_name(key);
            if !SECRET_KEYS.contains(&key.as_str()) {
                warnings.push(unknown_key(&name, &key, &SECRET_KEYS));
            }
        }
        if let Some(c) = credentials_from(&Doc {
            name: &name,
            map: &map,
        })? {
            return Ok((c, warnings));
        }
    }
    if let Some((_, c)) = &source.config_section {
        return Ok((c.clone(), warnings));
    }
    if let Some(c) = &source.env {
        return Ok((c.clone(), warnings));
    }
    err(format!(
        "no AWS credentials: set access_key_id and secret_access_key in {name} \
         (or the config's secret: section, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    ))
}

fn credentials_from(doc: &Doc) -> Result<Option<Credentials>, ConfigError> {
    let id = doc.secret_string("access_key_id")?;
    let key = match doc.secret_string("secret_access_key")? {
        Some(k) => Some(k),
        None => doc.secret_string("secret_access_Key")?,
    };
    let token = doc
        .secret_string("session_token")?
        .filter(|t| !t.is_empty());
    match (id, key) {
        (None, None) => Ok(None),
        (Some(id), Some(key)) if !id.is_empty() && !key.is_empty() => Ok(Some(Credentials {
            access_key_id: id,
            secret_access_key: key,
            session_token: token,
        })),
        (Some(id), _) if id.is_empty() => err(format!(
            "{}: access_key_id: expected a non-empty string",
            doc.name
        )),
        (Some(_), _) => err(format!(
            "{}: secret_access_key: missing or empty; expected the key that goes with access_key_id",
            doc.name
        )),
        (None, Some(_)) => err(format!(
            "{}: access_key_id: missing; expected the key id that goes with secret_access_key",
            doc.name
        )),
    }
}

fn choose(flag: &Option<PathBuf>, env: Option<String>, default: &str) -> (PathBuf, bool) {
    match (flag, env.filter(|e| !e.is_empty())) {
        (Some(p), _) => (p.clone(), true),
        (None, Some(e)) => (PathBuf::from(e), true),
        (None, None) => (PathBuf::from(default), false),
    }
}

/// A default path that does not exist is fine; a path the user named must exist.
fn read_optional(path: &Path, named: bool) -> Result<Option<String>, ConfigError> {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Ok(Some(text)),
            Err(_) => err(format!(
                "{}: expected UTF-8 text (YAML or JSON)",
                path.display()
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            err(format!("{}: no such file", path.display()))
        }
        Err(e) => err(format!("{}: cannot read: {}", path.display(), plain_io(&e))),
    }
}

/// Parses a YAML (or JSON) document into a mapping; empty means no keys.
pub fn parse_document(name: &str, text: &str) -> Result<Mapping, ConfigError> {
    match serde_yaml::from_str::<Value>(text) {
        Ok(Value::Mapping(m)) => Ok(m),
        Ok(Value::Null) => Ok(Mapping::new()),
        Ok(_) => err(format!(
            "{name}: expected a mapping of keys to values (YAML or JSON)"
        )),
        Err(e) => {
            let at = e
                .location()
                .map(|l| format!(" at line {} column {}", l.line(), l.column()))
                .unwrap_or_default();
            // serde_yaml's message may end with its own location; keep ours alone.
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            err(format!("{name}: invalid YAML{at}: {msg}"))
        }
    }
}

struct Doc<'a> {
    name: &'a str,
    map: &'a Mapping,
}

impl Doc<'_> {
    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(other) => err(format!(
                "{}: {key}: expected a string, found {}",
                self.name,
                show(other)
            )),
        }
    }

    /// Like `string`, but never echoes the value: it may be a secret.
    fn secret_string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(_) => err(format!(
                "{}: {key}: expected a string (quote it)",
                self.name
            )),
        }
    }

    fn integer(
        &self,
        key: &str,
        min: u64,
        max: u64,
        what: &str,
    ) -> Result<Option<u64>, ConfigError> {
        let value = match self.map.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(v) => v,
        };
        let n = match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => err(format!(
                "{}: {key}: expected {what}, found {}",
                self.name,
                show(value)
            )),
        }
    }
}

fn key_name(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => show(other),
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "nothing".into(),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
}

fn unknown_key(file: &str, key: &str, known: &[&str]) -> String {
    let squash = |s: &str| s.to_ascii_lowercase().replace(['_', '-'], "");
    match known.iter().find(|k| squash(k) == squash(key)) {
        Some(k) => format!("{file}: unknown key {key:?} is ignored; did you mean {k:?}?"),
        None => format!(
            "{file}: unknown key {key:?} is ignored; known keys: {}",
            known.join(", ")
        ),
    }
}

fn parse_target(from: &str, value: &str) -> Result<Target, ConfigError> {
    let value = value.trim();
    if value == "-" {
        return Ok(Target::Stdout);
    }
    check_http_url(from, value)?;
    Ok(Target::Http(value.to_string()))
}

fn check_http_url(from: &str, value: &str) -> Result<(), ConfigError> {
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !r.contains(char::is_whitespace) => {
            Ok(())
        }
        _ => err(format!(
            "{from}: expected an http:// or https:// URL, found {value:?}"
        )),
    }
}

/// `https://ce.eu-west-1.amazonaws.com` → `eu-west-1`.
pub fn region_from_endpoint(endpoint: &str) -> Option<&str> {
    let host = url_host(endpoint);
    let rest = host.strip_prefix("ce.")?;
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))?;
    (!region.is_empty() && !region.contains('.')).then_some(region)
}

/// The host of an http(s) URL, without port or path.
pub fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// An io::Error as a short phrase without the "(os error N)" tail.
pub fn plain_io(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
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
            target: None,
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
        assert_eq!(c.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.pull_hour, 2);
        assert_eq!(c.metric, "BlendedCost");
        assert_eq!(c.content_mode, ContentMode::Binary);
        assert_eq!(c.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
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
    fn unknown_keys_are_warned_by_name() {
        let (_, w) = load_with("target: http://x\npullhour: 3\n", Some(SECRET), &[]).unwrap();
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("\"pullhour\"") && w[0].contains("did you mean \"pull_hour\""),
            "{w:?}"
        );
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
    fn region_comes_from_the_endpoint_host() {
        assert_eq!(
            region_from_endpoint("https://ce.cn-northwest-1.amazonaws.com.cn"),
            Some("cn-northwest-1")
        );
        assert_eq!(region_from_endpoint("http://127.0.0.1:5000"), None);
        assert_eq!(url_host("http://user:pw@[::1]:80/x"), "::1");
    }

    #[test]
    fn credentials_precedence_and_spellings() {
        let seed_spelling = "access_key_id: A1\nsecret_access_Key: S1\n";
        let config = "target: http://x\nsecret:\n  access_key_id: A2\n  secret_access_key: S2\n";
        let env = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("A3".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("S3".to_string()),
            "AWS_SESSION_TOKEN" => Some("T3".to_string()),
            _ => None,
        };
        let key_id = |config: &str, secret: Option<&str>| {
            let (_dir, o) = setup(config, secret);
            let (c, _) = load(&o, &env).unwrap();
            load_credentials(&c.secret).unwrap().0
        };
        assert_eq!(key_id(config, Some(seed_spelling)).access_key_id, "A1");
        assert_eq!(key_id(config, None).access_key_id, "A2");
        let creds = key_id("target: http://x\n", None);
        assert_eq!(
            (creds.access_key_id.as_str(), creds.session_token.as_deref()),
            ("A3", Some("T3"))
        );
    }

    #[test]
    fn missing_or_partial_credentials_are_errors_that_hide_values() {
        let e = load_with("target: http://x\n", None, &[]).unwrap_err().0;
        assert!(e.starts_with("no AWS credentials"), "{e}");
        let e = load_with("target: http://x\n", Some("access_key_id: AKID\n"), &[])
            .unwrap_err()
            .0;
        assert!(e.contains("secret.yml: secret_access_key: missing"), "{e}");
        let e = load_with(
            "target: http://x\n",
            Some("access_key_id: A\nsecret_access_key: 12345\n"),
            &[],
        )
        .unwrap_err()
        .0;
        assert!(
            e.contains("secret_access_key: expected a string") && !e.contains("12345"),
            "{e}"
        );
        let (_dir, mut o) = setup("target: http://x\n", None);
        o.secret = Some(PathBuf::from("/nonexistent/secret.yml"));
        assert_eq!(
            load(&o, &|_| None).unwrap_err().0,
            "/nonexistent/secret.yml: no such file"
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: "very-secret".into(),
            session_token: Some("token-secret".into()),
        };
        let shown = format!("{c:?}");
        assert!(
            shown.contains("AKID")
                && !shown.contains("very-secret")
                && !shown.contains("token-secret")
        );
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
        let e = load(&Overrides::default(), &|_| None).unwrap_err().0;
        assert!(e.contains("target: missing"), "{e}");
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
}
