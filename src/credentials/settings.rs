//! The config's `role_arn`, `external_id`, `role_session_name` and `duration_seconds`: read and checked.

use crate::yaml::{ConfigError, Doc};

pub const DEFAULT_SESSION_NAME: &str = "source-aws-billing";

/// The config's `role_arn` and friends: a role assumed on top of whatever the chain gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSettings {
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub role_session_name: String,
    pub duration_seconds: Option<u32>,
}

/// The config keys of the role settings.
pub const KEYS: [&str; 4] = [
    "role_arn",
    "external_id",
    "role_session_name",
    "duration_seconds",
];

/// Reads role_arn, external_id, role_session_name and duration_seconds of the config.
pub fn role_settings(doc: &Doc) -> Result<RoleSettings, ConfigError> {
    let file = doc.name;
    let role_arn = doc.string("role_arn")?;
    if let Some(arn) = &role_arn
        && !(arn.starts_with("arn:") && arn.contains(":role/"))
    {
        return doc.expected(
            "role_arn",
            "a role ARN like arn:aws:iam::123456789012:role/name",
            &format!("{arn:?}"),
        );
    }
    // Never echoed: it is shared with the other account.
    let external_id = doc.secret_string("external_id")?;
    if let Some(id) = &external_id
        && !(2..=1224).contains(&id.len())
    {
        return Err(ConfigError(format!(
            "{file}: external_id: expected 2-1224 characters"
        )));
    }
    let role_session_name = doc.string("role_session_name")?;
    if let Some(name) = &role_session_name
        && !((2..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)))
    {
        return doc.expected(
            "role_session_name",
            "2-64 letters, digits or +=,.@_-",
            &format!("{name:?}"),
        );
    }
    let duration_seconds = doc.integer("duration_seconds", 900, 43200, "seconds 900-43200")?;
    if role_arn.is_none() {
        for key in ["external_id", "role_session_name", "duration_seconds"] {
            if doc.map.contains_key(key) {
                return Err(ConfigError(format!(
                    "{file}: {key}: only used with role_arn, which is not set"
                )));
            }
        }
    }
    Ok(RoleSettings {
        role_arn,
        external_id,
        role_session_name: role_session_name.unwrap_or_else(|| DEFAULT_SESSION_NAME.to_string()),
        duration_seconds: duration_seconds.map(|d| d as u32),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> Result<RoleSettings, ConfigError> {
        let map = serde_yaml::from_str(yaml).unwrap();
        role_settings(&Doc::new("config.yml", &map))
    }

    #[test]
    fn role_settings_default_and_validate() {
        let none = settings("target: x\n").unwrap();
        assert_eq!(none.role_arn, None);
        assert_eq!(none.role_session_name, "source-aws-billing");
        let full = settings(
            "role_arn: arn:aws:iam::111122223333:role/payer-billing\nexternal_id: shared-ext\nrole_session_name: edge-1\nduration_seconds: 3600\n",
        )
        .unwrap();
        assert_eq!(
            full.role_arn.as_deref(),
            Some("arn:aws:iam::111122223333:role/payer-billing")
        );
        assert_eq!(full.external_id.as_deref(), Some("shared-ext"));
        assert_eq!(full.role_session_name, "edge-1");
        assert_eq!(full.duration_seconds, Some(3600));
        let quoted = settings("role_arn: arn:aws:iam::1:role/r\nduration_seconds: \"3600\"\n");
        assert_eq!(quoted.unwrap().duration_seconds, Some(3600));
        let error = |y| settings(y).unwrap_err().0;
        assert_eq!(
            error("role_arn: billing\n"),
            "config.yml: role_arn: expected a role ARN like arn:aws:iam::123456789012:role/name, found \"billing\""
        );
        assert_eq!(
            error("role_arn: arn:aws:iam::1:role/r\nduration_seconds: 60\n"),
            "config.yml: duration_seconds: expected seconds 900-43200, found 60"
        );
        assert!(
            error("role_arn: arn:aws:iam::1:role/r\nrole_session_name: a b\n")
                .contains("role_session_name")
        );
        assert!(error("external_id: x1\n").contains("only used with role_arn"));
        // The value of external_id is not echoed: it is shared with the other account.
        assert!(!error("role_arn: arn:aws:iam::1:role/r\nexternal_id: Z\n").contains('Z'));
    }
}
