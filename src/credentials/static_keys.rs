//! Static keys: the secret file, the config's `secret:` section and AWS_ACCESS_KEY_ID, read and checked.

use super::{CredError, Env, Obtained};
use crate::keys::Credentials;
use crate::warn;
use crate::yaml::{ConfigError, Doc, Keys, check_unknown_secret_keys, err, read_optional};
use serde_yaml::Value;
use std::path::PathBuf;

/// The config key this module reads: the `secret:` section.
pub const KEYS: [&str; 1] = ["secret"];

/// The keys of a secret document: ours, then the other spellings read as the same keys
/// (the seed spells one `secret_access_Key`; `~/.aws/credentials` puts `aws_` in front).
pub const SECRET_KEYS: [&str; 7] = [
    "access_key_id",
    "secret_access_key",
    "session_token",
    "secret_access_Key",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
];

/// Each secret key and the other spellings that mean it.
const SPELLINGS: [&[&str]; 3] = [
    &["access_key_id", "aws_access_key_id"],
    &[
        "secret_access_key",
        "secret_access_Key",
        "aws_secret_access_key",
    ],
    &["session_token", "aws_session_token"],
];

/// What was looked at, and the keys when any static source gives them (a broken one is an error).
pub fn look(source: &SecretSource) -> (String, Option<Result<Obtained, CredError>>) {
    let (looked, given) = static_sources(source);
    let Some(label) = given else {
        return (looked, None);
    };
    let got = match load_credentials(source) {
        Ok((credentials, warnings)) => {
            warnings.into_iter().for_each(warn_once);
            Ok(Obtained {
                credentials,
                expiration: None,
                source: label.to_string(),
            })
        }
        Err(e) => Err(CredError {
            transient: false,
            message: e.0,
        }),
    };
    (looked, Some(got))
}

/// Prints a warning about the secret file once per process: the file is read again at
/// every use (a rotated secret takes effect), its warnings are not. A changed file with a
/// new problem warns about that one.
pub fn warn_once(warning: String) {
    static SHOWN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner());
    if !shown.contains(&warning) {
        warn!("{warning}");
        shown.push(warning);
    }
}

/// `credential_source = Environment` in a profile.
pub fn from_env(env: &Env) -> Option<Credentials> {
    Some(Credentials {
        access_key_id: env.get("AWS_ACCESS_KEY_ID")?.to_string(),
        secret_access_key: env.get("AWS_SECRET_ACCESS_KEY")?.to_string(),
        session_token: env.get("AWS_SESSION_TOKEN").map(str::to_string),
    })
}

/// Where credentials come from, in precedence order; the file is read again before each pull.
#[derive(Debug, Clone)]
pub struct SecretSource {
    file: PathBuf,
    file_named: bool,
    /// The config's keys, for the secret file's parse errors.
    keys: Keys<'static>,
    config_section: Option<(String, Credentials)>,
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; Err names the one that is missing.
    env: Option<Result<Credentials, String>>,
}

impl SecretSource {
    /// The secret file (`named`: the user chose it, so it must exist), the `secret:` section
    /// of `config` (its warnings to `warn`) and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.
    pub fn new(
        file: PathBuf,
        named: bool,
        keys: Keys<'static>,
        config: &Doc,
        env: &dyn Fn(&str) -> Option<String>,
        warn: &mut dyn FnMut(String),
    ) -> Result<SecretSource, ConfigError> {
        Ok(SecretSource {
            file,
            file_named: named,
            keys,
            config_section: secret_section(config, warn)?,
            env: env_credentials(env),
        })
    }
}

/// Static keys, when given, are checked at start (their warnings first); when none are given
/// the rest of the credential chain is tried instead.
pub fn check_static_keys(
    source: &SecretSource,
    warn: &mut dyn FnMut(String),
) -> Result<(), ConfigError> {
    match credentials_reporting(source, warn) {
        Err(e) if static_sources(source).1.is_some() => Err(e),
        _ => Ok(()),
    }
}

/// The config's `secret:` section (the later Vanus layout), if it holds credentials.
fn secret_section(
    file: &Doc,
    warn: &mut dyn FnMut(String),
) -> Result<Option<(String, Credentials)>, ConfigError> {
    match file.map.get("secret") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Mapping(m)) => {
            let section = format!("{}: secret", file.name);
            check_unknown_secret_keys(&section, m, &SECRET_KEYS, warn)?;
            Ok(credentials_from(&Doc::new(&section, m))?.map(|c| (section, c)))
        }
        Some(_) => err(format!(
            "{}: secret: expected a mapping with access_key_id and secret_access_key",
            file.name
        )),
    }
}

/// The keys in the environment; one of the pair without the other is named (as the SDKs
/// refuse "partial credentials") rather than passed over for a source further down.
fn env_credentials(env: &dyn Fn(&str) -> Option<String>) -> Option<Result<Credentials, String>> {
    let get = |name| env(name).filter(|v| !v.is_empty());
    let partial = |set: &str, unset: &str| {
        Some(Err(format!(
            "{set} is set but {unset} is not: set both, or unset {set}"
        )))
    };
    match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(key)) => Some(Ok(Credentials {
            access_key_id: id,
            secret_access_key: key,
            session_token: get("AWS_SESSION_TOKEN"),
        })),
        (Some(_), None) => partial("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        (None, Some(_)) => partial("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"),
        (None, None) => None,
    }
}

/// Reads the credentials again (a rotated Kubernetes Secret takes effect at the next pull).
pub fn load_credentials(source: &SecretSource) -> Result<(Credentials, Vec<String>), ConfigError> {
    let mut warnings = Vec::new();
    let credentials = credentials_reporting(source, &mut |w| warnings.push(w))?;
    Ok((credentials, warnings))
}

fn credentials_reporting(
    source: &SecretSource,
    warn: &mut dyn FnMut(String),
) -> Result<Credentials, ConfigError> {
    let name = source.file.display().to_string();
    if let Some(text) = read_optional(&source.file, source.file_named)? {
        let map = crate::yaml::parse(&name, &text, true, source.keys)?;
        check_unknown_secret_keys(&name, &map, &SECRET_KEYS, warn)?;
        if let Some(c) = credentials_from(&Doc::new(&name, &map))? {
            return Ok(c);
        }
    }
    if let Some((_, c)) = &source.config_section {
        return Ok(c.clone());
    }
    if let Some(c) = &source.env {
        return c.clone().map_err(ConfigError);
    }
    err(format!(
        "no AWS credentials: set access_key_id and secret_access_key in {name} \
         (or the config's secret: section, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    ))
}

/// For the credential chain: what the static sources are, and whether any of them gives
/// keys at all (a broken or named-but-missing secret file counts as given: it is reported).
pub fn static_sources(source: &SecretSource) -> (String, Option<&'static str>) {
    let looked = format!(
        "access_key_id/secret_access_key in secret file {} or the config's secret: section, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        source.file.display()
    );
    let in_file = match read_optional(&source.file, source.file_named) {
        Err(_) => true,
        Ok(None) => false,
        Ok(Some(text)) => match crate::yaml::parse("", &text, false, source.keys) {
            Err(_) => true,
            Ok(map) => SECRET_KEYS.iter().any(|k| map.contains_key(*k)),
        },
    };
    let given = if in_file {
        Some("secret file")
    } else if source.config_section.is_some() {
        Some("the config's secret: section")
    } else if source.env.is_some() {
        Some("environment (AWS_ACCESS_KEY_ID)")
    } else {
        None
    };
    (looked, given)
}

/// The secret key `spellings[0]`, written in any of its spellings (two of them is an error).
fn spelt(doc: &Doc, spellings: &[&str]) -> Result<Option<String>, ConfigError> {
    let given: Vec<&str> = spellings
        .iter()
        .copied()
        .filter(|k| doc.value(k).is_some())
        .collect();
    match given[..] {
        [] => Ok(None),
        [key] => doc.secret_string(key),
        [a, b, ..] => err(format!(
            "{}: {a} and {b} are the same key; keep one of them",
            doc.name
        )),
    }
}

fn credentials_from(doc: &Doc) -> Result<Option<Credentials>, ConfigError> {
    let [id, key, token] = SPELLINGS;
    let id = spelt(doc, id)?;
    let key = spelt(doc, key)?;
    let token = spelt(doc, token)?.filter(|t| !t.is_empty());
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const KEYS: Keys = Keys {
        known: &["target", "secret"],
        secret: &SECRET_KEYS,
    };
    const SECRET: &str = "access_key_id: AKIDEXAMPLE\nsecret_access_key: wJalrXUtnFEMI/K7MDENG\n";

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The static sources of a config text, a secret file (None: none there) and the
    /// environment, checked as at start; the warnings of both steps.
    fn start(
        config: &str,
        secret: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> (Dir, Result<(SecretSource, Vec<String>), ConfigError>) {
        let dir = std::env::temp_dir().join(format!(
            "sab-static-keys-{}-{}",
            std::process::id(),
            getrandom::u64().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret.yml");
        if let Some(s) = secret {
            std::fs::write(&path, s).unwrap();
        }
        (Dir(dir), open(&path, secret.is_some(), config, env))
    }

    fn open(
        path: &Path,
        named: bool,
        config: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(SecretSource, Vec<String>), ConfigError> {
        let map = crate::yaml::parse("config.yml", config, false, KEYS)?;
        let mut warnings = Vec::new();
        let mut warn = |w| warnings.push(w);
        let doc = Doc::new("config.yml", &map);
        let source = SecretSource::new(path.into(), named, KEYS, &doc, env, &mut warn)?;
        check_static_keys(&source, &mut warn)?;
        Ok((source, warnings))
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
            let (_dir, started) = start(config, secret, &env);
            load_credentials(&started.unwrap().0).unwrap().0
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
        let error = |secret| {
            start("target: http://x\n", Some(secret), &|_| None)
                .1
                .unwrap_err()
                .0
        };
        // No static keys at all is not an error here: the rest of the chain is tried at start.
        let (_dir, none) = start("target: http://x\n", None, &|_| None);
        assert_eq!(static_sources(&none.unwrap().0).1, None);
        let e = error("access_key_id: AKID\n");
        assert!(e.contains("secret.yml: secret_access_key: missing"), "{e}");
        let e = error("access_key_id: A\nsecret_access_key: 12345\n");
        assert!(
            e.contains("secret_access_key: expected a string") && !e.contains("12345"),
            "{e}"
        );
        let missing = Path::new("/nonexistent/secret.yml");
        assert_eq!(
            open(missing, true, "target: http://x\n", &|_| None)
                .unwrap_err()
                .0,
            "/nonexistent/secret.yml: no such file"
        );
        assert_eq!(
            open(missing, false, "target: http://x\n", &|_| None).map(|(_, w)| w),
            Ok(Vec::new())
        );
    }

    #[test]
    fn unknown_secret_keys_are_named_only_when_they_look_like_keys() {
        let secret =
            format!("{SECRET}secret_acess_key: x\nwJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY: 1\n");
        let (_dir, started) = start("target: http://x\n", Some(&secret), &|_| None);
        let (_, w) = started.unwrap();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("\"secret_acess_key\""), "{w:?}");
        assert!(
            !w[1].contains("wJalr") && w[1].contains("not shown"),
            "{w:?}"
        );
    }

    #[test]
    fn the_spellings_of_the_aws_credentials_file_are_read_too() {
        let secret = "aws_access_key_id: A9\naws_secret_access_key: S9\naws_session_token: T9\n";
        let (_dir, started) = start("target: http://x\n", Some(secret), &|_| None);
        let (source, warnings) = started.unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let c = load_credentials(&source).unwrap().0;
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.as_deref()),
            ("A9", Some("T9"))
        );
        let both = "access_key_id: A\naws_access_key_id: A\nsecret_access_key: S\n";
        let (_dir, started) = start("target: http://x\n", Some(both), &|_| None);
        let e = started.unwrap_err().0;
        assert!(
            e.ends_with(
                "secret.yml: access_key_id and aws_access_key_id are the same key; keep one of them"
            ),
            "{e}"
        );
    }

    #[test]
    fn one_key_of_the_environment_pair_without_the_other_is_named() {
        for (set, unset) in [
            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
            ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"),
        ] {
            let env = |k: &str| (k == set).then(|| "x".to_string());
            let (_dir, started) = start("target: http://x\n", None, &env);
            assert_eq!(
                started.unwrap_err().0,
                format!("{set} is set but {unset} is not: set both, or unset {set}")
            );
        }
        // Keys in the secret file come first: the environment is then not looked at.
        let env = |k: &str| (k == "AWS_ACCESS_KEY_ID").then(|| "x".to_string());
        let (_dir, started) = start("target: http://x\n", Some(SECRET), &env);
        assert!(started.is_ok());
    }
}
