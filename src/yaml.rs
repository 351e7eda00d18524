//! One settings document (YAML or JSON): reading it, its secret-safe parse errors, typed getters, unknown keys.

use crate::files::{MAX_FILE_BYTES, plain_io, read_capped};
use serde_yaml::{Mapping, Value};
use std::fmt;
use std::path::Path;

/// One line for the user: names the file, key and value and says what was expected.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn err<T>(message: String) -> Result<T, ConfigError> {
    Err(ConfigError(message))
}

/// The keys a document may hold, for its messages: parse errors name the known key they
/// are at; the values of `secret` keys (and of the `secret:` section) are never shown.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a> {
    pub known: &'a [&'a str],
    pub secret: &'a [&'a str],
}

/// A default path that does not exist is fine; a path the user named must exist.
pub fn read_optional(path: &Path, named: bool) -> Result<Option<String>, ConfigError> {
    let read = std::fs::File::open(path).and_then(|f| read_capped(f, MAX_FILE_BYTES));
    match read {
        Ok(bytes) if bytes.len() as u64 > MAX_FILE_BYTES => err(format!(
            "{}: larger than 1 MiB; expected a small YAML or JSON file",
            path.display()
        )),
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

/// Parses a document into a mapping. A leading byte order mark is skipped. Errors never quote
/// a secret: in a secret document, the config's `secret:` section or at a secret key, the
/// parser's own text (which may quote the value) is replaced by the place and the key.
pub fn parse(name: &str, text: &str, secret_doc: bool, keys: Keys) -> Result<Mapping, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match serde_yaml::from_str::<Value>(text) {
        Ok(Value::Mapping(m)) => Ok(m),
        Ok(Value::Null) => Ok(Mapping::new()),
        Ok(_) => err(format!(
            "{name}: expected a mapping of keys to values (YAML or JSON)"
        )),
        Err(e) => Err(yaml_error(name, text, &e, secret_doc, keys)),
    }
}

/// One line from the error's place and the key there; serde_yaml's own words only where they
/// cannot hold a secret (its messages about values quote them).
fn yaml_error(
    name: &str,
    text: &str,
    e: &serde_yaml::Error,
    secret_doc: bool,
    keys: Keys,
) -> ConfigError {
    let raw = e.to_string();
    // Where the trouble began: an unterminated quote is reported at the end of the file,
    // "while scanning a quoted scalar at line L column C" says where it opened.
    let place = e.location().map(|l| (l.line(), l.column()));
    let started = context_mark(&raw).filter(|m| Some(*m) != place);
    let mark = started.or(place);
    let key = mark.and_then(|m| key_before(text, m, keys));
    let secret_context = secret_doc
        || key.is_some_and(|k| k == "secret" || keys.secret.contains(&k))
        || mark.is_some_and(|(line, _)| in_secret_block(text, line));
    let what = if raw.contains("invalid value") || raw.contains("invalid type") {
        "a value that does not match its YAML tag (remove the !!tag or quote the value)".into()
    } else if raw.starts_with("duplicate entry") {
        "a key is given twice".into()
    } else if secret_context || raw.contains(['"', '`']) {
        "not valid YAML or JSON (the parser's text is not shown: it may hold a secret)".into()
    } else {
        raw.split(" at line ").next().unwrap_or(&raw).to_string()
    };
    let at = place
        .map(|(l, c)| format!(" at line {l} column {c}"))
        .unwrap_or_default();
    let at = match started {
        Some((l, c)) => format!("{at} (in the text that starts at line {l} column {c})"),
        None => at,
    };
    let key = key.map(|k| format!(" (key {k})")).unwrap_or_default();
    ConfigError(format!("{name}: invalid YAML{at}{key}: {what}"))
}

/// The last "while ... at line L column C" of a parser message (digits only).
fn context_mark(message: &str) -> Option<(usize, usize)> {
    let (_, rest) = message.rsplit_once("while ")?;
    let (_, place) = rest.rsplit_once(" at line ")?;
    let (line, column) = place.split_once(" column ")?;
    let column: String = column.chars().take_while(char::is_ascii_digit).collect();
    Some((line.parse().ok()?, column.parse().ok()?))
}

/// The known key written last before `(line, column)` (1-based), from `keys`: never text of
/// the document itself.
fn key_before<'k>(text: &str, (line, column): (usize, usize), keys: Keys<'k>) -> Option<&'k str> {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            offset += l
                .chars()
                .take(column.saturating_sub(1))
                .map(char::len_utf8)
                .sum::<usize>();
            break;
        }
        offset += l.len();
    }
    let before = &text[..offset.min(text.len())];
    let is_key_at = |at: usize, key: &str| {
        let after = before[at + key.len()..].trim_start_matches(['"', '\'']);
        let boundary = before[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
        boundary && after.trim_start().starts_with(':')
    };
    keys.known
        .iter()
        .chain(keys.secret.iter())
        .filter_map(|key| {
            before
                .match_indices(key)
                .map(|(at, _)| at)
                .filter(|&at| is_key_at(at, key))
                .last()
                .map(|at| (at, *key))
        })
        .max_by_key(|(at, key)| (*at, key.len()))
        .map(|(_, key)| key)
}

/// Whether line `line` (1-based) lies in the block of a top-level `secret:` key.
fn in_secret_block(text: &str, line: usize) -> bool {
    let top = text
        .lines()
        .take(line)
        .filter(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#') && l.len() == t.len()
        })
        .last();
    top.is_some_and(|l| {
        l.trim_start_matches(['"', '\''])
            .strip_prefix("secret")
            .is_some_and(|r| {
                r.trim_start_matches(['"', '\''])
                    .trim_start()
                    .starts_with(':')
            })
    })
}

/// A settings document (a file, or a section of one) and the typed getters every module
/// reads its keys with: each error names `name`, the key and what was found.
#[derive(Clone, Copy)]
pub struct Doc<'a> {
    pub name: &'a str,
    pub map: &'a Mapping,
}

impl<'a> Doc<'a> {
    pub fn new(name: &'a str, map: &'a Mapping) -> Doc<'a> {
        Doc { name, map }
    }

    /// The value at `key`; None when it is absent or null.
    pub fn value(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// The error line for `key`: "<name>: <key>: expected <what>, found <found>".
    pub fn expected<T>(&self, key: &str, what: &str, found: &str) -> Result<T, ConfigError> {
        err(format!(
            "{}: {key}: expected {what}, found {found}",
            self.name
        ))
    }

    /// `true` or `false`.
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => self.expected(key, "true or false", &show(other)),
        }
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
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

    /// A string that must be one of `allowed`.
    pub fn one_of(
        &self,
        key: &str,
        allowed: &[&str],
        what: &str,
    ) -> Result<Option<String>, ConfigError> {
        match self.string(key)? {
            Some(v) if !allowed.contains(&v.as_str()) => err(format!(
                "{}: {key}: expected {what}, found {v:?}",
                self.name
            )),
            other => Ok(other),
        }
    }

    /// Like `string`, but never echoes the value: it may be a secret.
    pub fn secret_string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(_) => err(format!(
                "{}: {key}: expected a string (quote it)",
                self.name
            )),
        }
    }

    /// A whole number in `min..=max`, written as a number or a quoted number (`"3600"`).
    pub fn integer(
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
            _ => self.expected(key, what, &show(value)),
        }
    }
}

pub fn key_name(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => show(other),
    }
}

/// A YAML value as an error line shows it: a string quoted, anything else by its kind.
pub fn show(value: &Value) -> String {
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

/// The warning for an unknown key: with the known key it is nearest to, else the known keys.
pub fn unknown_key(file: &str, key: &str, known: &[&str]) -> String {
    match crate::spelling::nearest(key, known) {
        Some(k) => format!("{file}: unknown key {key:?} is ignored; did you mean {k:?}?"),
        None => format!(
            "{file}: unknown key {key:?} is ignored; known keys: {}",
            known.join(", ")
        ),
    }
}

/// The error for a near miss of a known key that `map` does not set: as written, that key
/// would silently keep its default (`endpont` would send real requests to real AWS).
fn misspelt(file: &str, key: &str, map: &Mapping, known: &[&str]) -> Option<ConfigError> {
    let meant = crate::spelling::nearest(key, known)?;
    (!map.contains_key(meant)).then(|| {
        ConfigError(format!(
            "{file}: unknown key {key:?}: did you mean {meant:?}? ({meant} is not set; \
             correct the spelling or remove the key)"
        ))
    })
}

/// Each key of `map` that is not in `known`: a near miss of a known key the document does
/// not set is an error; any other unknown key is warned about and ignored.
pub fn check_unknown(
    name: &str,
    map: &Mapping,
    known: &[&str],
    warn: &mut dyn FnMut(String),
) -> Result<(), ConfigError> {
    for key in map.keys() {
        let key = key_name(key);
        if known.contains(&key.as_str()) {
            continue;
        }
        if let Some(e) = misspelt(name, &key, map, known) {
            return Err(e);
        }
        warn(unknown_key(name, &key, known));
    }
    Ok(())
}

/// `check_unknown` for a secret document: keys are named only when they look like key
/// names (a value typed where a key belongs must not be echoed).
pub fn check_unknown_secret_keys(
    name: &str,
    map: &Mapping,
    known: &[&str],
    warn: &mut dyn FnMut(String),
) -> Result<(), ConfigError> {
    for key in map.keys() {
        let key = key_name(key);
        if known.contains(&key.as_str()) {
            continue;
        }
        let looks_like_a_key = key.len() <= 32
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !looks_like_a_key {
            warn(format!(
                "{name}: an unknown key (not shown: it may be a secret) is ignored; known keys: {}",
                known.join(", ")
            ));
            continue;
        }
        if let Some(e) = misspelt(name, &key, map, known) {
            return Err(e);
        }
        warn(unknown_key(name, &key, known));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: Keys = Keys {
        known: &["target", "pull_hour", "secret"],
        secret: &[
            "access_key_id",
            "secret_access_key",
            "secret_access_Key",
            "session_token",
        ],
    };

    /// Every error about a secret document: file, line, column and key, never the value.
    #[test]
    fn yaml_errors_in_secrets_never_quote_the_value() {
        let s = "S3cretValue/abc";
        for (secret, want) in [
            (
                format!("access_key_id: A\nsecret_access_key: !!float {s}\n"),
                "line 2 column 20 (key secret_access_key)",
            ),
            (
                format!("access_key_id: A\nsession_token: !!bool {s}\nsecret_access_key: x\n"),
                "line 2 column 16 (key session_token)",
            ),
            (
                format!("access_key_id: !!int {s}\nsecret_access_key: x\n"),
                "line 1 column 16 (key access_key_id)",
            ),
            (
                format!("access_key_id: A\nsecret_access_key: \"{s}\nnext: 1\n"),
                "starts at line 2 column 20) (key secret_access_key)",
            ),
            (
                format!("access_key_id: A\nsecret_access_key: '{s}\n"),
                "(key secret_access_key)",
            ),
            (
                format!("access_key_id: A\nsecret_access_key: \"{s}\\q\"\n"),
                "(key secret_access_key)",
            ),
            (
                format!("{{\"access_key_id\": \"A\", \"secret_access_key\": !!float {s}}}"),
                "line 1 column 45 (key secret_access_key)",
            ),
            (
                format!("access_key_id: A\n{s}: 1\n{s}: 2\n"),
                "a key is given twice",
            ),
            (
                format!("\u{feff}access_key_id: A\nsecret_access_key: !!null {s}\n"),
                "(key secret_access_key)",
            ),
        ] {
            let e = parse("secret.yml", &secret, true, KEYS).unwrap_err().0;
            assert!(
                e.starts_with("secret.yml: invalid YAML at ") && e.contains(want),
                "{secret:?}: {e}"
            );
            assert!(!e.contains("S3cret"), "{secret:?}: {e}");
        }
        // The same in the config's secret: section, block or flow style.
        for config in [
            format!(
                "target: http://x\nsecret:\n  access_key_id: A\n  secret_access_key: !!float {s}\n"
            ),
            format!("target: http://x\nsecret:\n  access_key_id: A\n  secret_access_key: \"{s}\n"),
            format!("target: http://x\nsecret:\n  target: x\n  other: !!int {s}\n"),
            format!("{{\"target\": \"http://x\", \"secret\": {{\"session_token\": !!bool {s}}}}}"),
        ] {
            let e = parse("config.yml", &config, false, KEYS).unwrap_err().0;
            assert!(
                e.starts_with("config.yml: invalid YAML at line "),
                "{config:?}: {e}"
            );
            assert!(!e.contains("S3cret"), "{config:?}: {e}");
        }
        // Elsewhere in the config, the parser's own words still help.
        let config = |text| parse("config.yml", text, false, KEYS).unwrap_err().0;
        let e = config("target: http://x\n\tpull_hour: 3\n");
        assert!(
            e.contains("line 2 column 1") && e.contains("found a tab character"),
            "{e}"
        );
        let e = config("target: http://x\npull_hour: !!int two\n");
        assert!(
            e.contains("(key pull_hour): a value that does not match its YAML tag"),
            "{e}"
        );
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_nothing_is_no_keys() {
        let map = parse("c.yml", "\u{feff}target: x\npull_hour: 4\n", false, KEYS).unwrap();
        assert_eq!(map.len(), 2);
        let map = parse("c.yml", "\u{feff}{\"target\": \"-\"}", false, KEYS).unwrap();
        assert_eq!(map.len(), 1);
        assert!(parse("c.yml", "", false, KEYS).unwrap().is_empty());
        assert_eq!(
            parse("c.yml", "- a\n", false, KEYS).unwrap_err().0,
            "c.yml: expected a mapping of keys to values (YAML or JSON)"
        );
    }

    #[test]
    fn unknown_keys_are_warned_by_name_with_a_near_spelling() {
        assert_eq!(
            unknown_key("c.yml", "pullhour", KEYS.known),
            "c.yml: unknown key \"pullhour\" is ignored; did you mean \"pull_hour\"?"
        );
        assert_eq!(
            unknown_key("c.yml", "x", KEYS.known),
            "c.yml: unknown key \"x\" is ignored; known keys: target, pull_hour, secret"
        );
    }

    #[test]
    fn a_near_miss_of_a_key_that_is_not_set_is_an_error() {
        let check = |text: &str| {
            let map: Mapping = serde_yaml::from_str(text).unwrap();
            let mut warnings = Vec::new();
            let result = check_unknown("c.yml", &map, KEYS.known, &mut |w| warnings.push(w));
            (result.map_err(|e| e.0), warnings)
        };
        assert_eq!(
            check("taget: http://x\n"),
            (
                Err(
                    "c.yml: unknown key \"taget\": did you mean \"target\"? (target is not set; \
                     correct the spelling or remove the key)"
                        .into()
                ),
                vec![]
            )
        );
        // With the key it is near also set, it is a leftover: warned about and ignored.
        let (result, warnings) = check("target: http://x\ntaget: http://y\nzzz: 1\n");
        assert_eq!(result, Ok(()));
        assert_eq!(
            warnings,
            [
                "c.yml: unknown key \"taget\" is ignored; did you mean \"target\"?",
                "c.yml: unknown key \"zzz\" is ignored; known keys: target, pull_hour, secret"
            ]
        );
    }

    #[test]
    fn endless_or_huge_files_are_refused_and_only_a_named_file_must_exist() {
        assert_eq!(
            read_optional(Path::new("/dev/zero"), true).unwrap_err().0,
            "/dev/zero: larger than 1 MiB; expected a small YAML or JSON file"
        );
        assert_eq!(
            read_optional(Path::new("/nonexistent/c.yml"), false),
            Ok(None)
        );
        assert_eq!(
            read_optional(Path::new("/nonexistent/c.yml"), true)
                .unwrap_err()
                .0,
            "/nonexistent/c.yml: no such file"
        );
    }

    #[test]
    fn integers_read_numbers_and_quoted_numbers_alike() {
        let map: Mapping = serde_yaml::from_str("a: 4\nb: \" 4 \"\nc: 4.5\nd: four\n").unwrap();
        let doc = Doc::new("c.yml", &map);
        assert_eq!(doc.integer("a", 0, 9, "a digit"), Ok(Some(4)));
        assert_eq!(doc.integer("b", 0, 9, "a digit"), Ok(Some(4)));
        assert_eq!(doc.integer("none", 0, 9, "a digit"), Ok(None));
        assert_eq!(
            doc.integer("c", 0, 9, "a digit").unwrap_err().0,
            "c.yml: c: expected a digit, found 4.5"
        );
        assert_eq!(
            doc.integer("d", 0, 9, "a digit").unwrap_err().0,
            "c.yml: d: expected a digit, found \"four\""
        );
        assert_eq!(
            doc.integer("a", 5, 9, "5-9").unwrap_err().0,
            "c.yml: a: expected 5-9, found 4"
        );
    }
}
