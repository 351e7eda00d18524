//! Shared config and credentials files (~/.aws): which files and profile, a small INI parser, profile resolution.

use super::Env;
use super::sts::RoleRequest;
use crate::keys::Credentials;
use std::collections::BTreeMap;

pub type Section = BTreeMap<String, String>;

/// Parses an INI file the way botocore's RawConfigParser reads it: `[section]` headers,
/// `key = value` (or `key: value`), whole-line `#`/`;` comments, indented continuation lines
/// (nested values such as `s3 =` blocks) kept out of the way. Keys are lower-cased.
pub fn parse_ini(name: &str, text: &str) -> Result<Vec<(String, Section)>, String> {
    let mut sections: Vec<(String, Section)> = Vec::new();
    let mut last_key: Option<String> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let at = |what: &str| format!("{name}: line {}: {what}", i + 1);
        if raw.starts_with([' ', '\t']) && last_key.is_some() {
            // A continuation of the previous value (a nested block): not a key of its own.
            if let (Some((_, section)), Some(key)) = (sections.last_mut(), &last_key)
                && let Some(value) = section.get_mut(key)
            {
                value.push('\n');
                value.push_str(line);
            }
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let Some(header) = header.strip_suffix(']') else {
                return Err(at("expected a section header like [profile name]"));
            };
            sections.push((header.trim().to_string(), Section::new()));
            last_key = None;
            continue;
        }
        let Some(split) = line.find(['=', ':']) else {
            return Err(at("expected key = value"));
        };
        let (key, value) = (line[..split].trim(), line[split + 1..].trim());
        let Some((_, section)) = sections.last_mut() else {
            return Err(at("expected a [section] header before the first key"));
        };
        let key = key.to_ascii_lowercase();
        section.insert(key.clone(), value.to_string());
        last_key = Some(key);
    }
    Ok(sections)
}

/// Profiles by name: the config file's `[profile x]` (and `[default]`), overlaid by the
/// credentials file's `[x]`, as botocore merges them.
#[derive(Debug, Default)]
pub struct Profiles(pub BTreeMap<String, Section>);

impl Profiles {
    pub fn build(config: Vec<(String, Section)>, credentials: Vec<(String, Section)>) -> Profiles {
        let mut all: BTreeMap<String, Section> = BTreeMap::new();
        for (header, section) in config {
            let name = match header.strip_prefix("profile ") {
                Some(n) => n.trim().to_string(),
                None if header == "default" => header,
                None => continue, // [sso-session x], [services x], ...
            };
            all.entry(name).or_default().extend(section);
        }
        for (name, section) in credentials {
            all.entry(name).or_default().extend(section);
        }
        Profiles(all)
    }
}

/// Where a profile's credentials come from, resolved all the way down.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    Static(Credentials),
    /// AssumeRole signed with what `base` gives.
    AssumeRole {
        role: RoleRequest,
        base: Box<Plan>,
    },
    WebIdentity {
        role: RoleRequest,
        token_file: String,
    },
    /// credential_source: the environment, EC2 instance metadata or the container endpoint.
    Environment,
    Ec2InstanceMetadata,
    EcsContainer,
}

/// Resolves `name`: None when the profile does not exist or holds no credentials at all.
pub fn resolve(
    profiles: &Profiles,
    name: &str,
    session_default: &str,
) -> Result<Option<Plan>, String> {
    match profiles.0.get(name) {
        None => Ok(None),
        Some(p) if !p.contains_key("role_arn") && static_keys(name, p)?.is_none() => Ok(None),
        Some(_) => plan(profiles, name, session_default, &mut Vec::new()).map(Some),
    }
}

fn plan(
    profiles: &Profiles,
    name: &str,
    session_default: &str,
    visited: &mut Vec<String>,
) -> Result<Plan, String> {
    let p = profiles.0.get(name).ok_or_else(|| {
        format!(
            "profile {name}: not found (named by source_profile of {})",
            visited.join(" -> ")
        )
    })?;
    visited.push(name.to_string());
    let Some(role_arn) = p.get("role_arn") else {
        return static_keys(name, p)?.map(Plan::Static).ok_or_else(|| {
            format!(
                "profile {name}: expected aws_access_key_id and aws_secret_access_key or role_arn"
            )
        });
    };
    let duration_seconds = match p.get("duration_seconds") {
        None => None,
        Some(d) => Some(
            d.parse::<u32>()
                .ok()
                .filter(|d| (900..=43200).contains(d))
                .ok_or_else(|| {
                    format!(
                        "profile {name}: duration_seconds: expected seconds 900-43200, found {d:?}"
                    )
                })?,
        ),
    };
    let role = RoleRequest {
        role_arn: role_arn.clone(),
        session_name: p
            .get("role_session_name")
            .cloned()
            .unwrap_or_else(|| session_default.to_string()),
        external_id: p.get("external_id").cloned(),
        duration_seconds,
    };
    match (
        p.get("source_profile"),
        p.get("credential_source"),
        p.get("web_identity_token_file"),
    ) {
        (Some(_), Some(_), _) => Err(format!(
            "profile {name}: source_profile and credential_source are both set; keep one"
        )),
        (Some(source), None, _) => {
            let base = if source == name {
                // Self-reference is allowed when the profile holds keys of its own.
                match static_keys(name, p)? {
                    Some(keys) => Plan::Static(keys),
                    None => return Err(loop_error(visited, source)),
                }
            } else if visited.contains(source) {
                return Err(loop_error(visited, source));
            } else {
                plan(profiles, source, session_default, visited)?
            };
            Ok(Plan::AssumeRole {
                role,
                base: Box::new(base),
            })
        }
        (None, Some(source), _) => {
            let base = match source.as_str() {
                "Environment" => Plan::Environment,
                "Ec2InstanceMetadata" => Plan::Ec2InstanceMetadata,
                "EcsContainer" => Plan::EcsContainer,
                other => {
                    return Err(format!(
                        "profile {name}: credential_source: expected Environment, Ec2InstanceMetadata or EcsContainer, found {other:?}"
                    ));
                }
            };
            Ok(Plan::AssumeRole {
                role,
                base: Box::new(base),
            })
        }
        (None, None, Some(file)) => Ok(Plan::WebIdentity {
            role,
            token_file: file.clone(),
        }),
        (None, None, None) => Err(format!(
            "profile {name}: role_arn needs source_profile, credential_source or web_identity_token_file"
        )),
    }
}

fn loop_error(visited: &[String], back_to: &str) -> String {
    format!(
        "profile {}: source_profile makes a loop: {} -> {back_to}",
        visited[0],
        visited.join(" -> ")
    )
}

fn static_keys(name: &str, p: &super::profile::Section) -> Result<Option<Credentials>, String> {
    let get = |k: &str| p.get(k).filter(|v| !v.is_empty()).cloned();
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(key)) => Ok(Some(Credentials {
            access_key_id: id,
            secret_access_key: key,
            session_token: get("aws_session_token"),
        })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(format!(
            "profile {name}: aws_secret_access_key: missing; expected the key that goes with aws_access_key_id"
        )),
        (None, Some(_)) => Err(format!(
            "profile {name}: aws_access_key_id: missing; expected the key id that goes with aws_secret_access_key"
        )),
    }
}

/// The shared files and the profile chosen, from AWS_PROFILE, AWS_CONFIG_FILE,
/// AWS_SHARED_CREDENTIALS_FILE and HOME.
pub(super) struct ProfileFiles {
    pub(super) name: String,
    named: bool,
    pub(super) config: std::path::PathBuf,
    pub(super) credentials: std::path::PathBuf,
}

pub(super) fn profile_files(env: &Env) -> ProfileFiles {
    let home = env.get("HOME").unwrap_or("/");
    let path = |var: &str, default: &str| -> std::path::PathBuf {
        match env.get(var) {
            Some(p) => match p.strip_prefix("~/") {
                Some(rest) => std::path::Path::new(home).join(rest),
                None => p.into(),
            },
            None => std::path::Path::new(home).join(default),
        }
    };
    let name = env.get("AWS_PROFILE").or(env.get("AWS_DEFAULT_PROFILE"));
    ProfileFiles {
        name: name.unwrap_or("default").to_string(),
        named: name.is_some(),
        config: path("AWS_CONFIG_FILE", ".aws/config"),
        credentials: path("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
    }
}

impl ProfileFiles {
    pub(super) fn plan(&self, session_default: &str) -> Result<Option<Plan>, String> {
        let read = |what: &str, path: &std::path::Path| -> Result<Vec<(String, Section)>, String> {
            let max = crate::files::MAX_FILE_BYTES;
            match crate::files::read_small(what, path, max, true)? {
                Some(text) => parse_ini(&path.display().to_string(), &text),
                None => Ok(Vec::new()),
            }
        };
        let profiles = Profiles::build(
            read("shared config file", &self.config)?,
            read("shared credentials file", &self.credentials)?,
        );
        if self.named && !profiles.0.contains_key(&self.name) {
            return Err(format!(
                "profile {} (AWS_PROFILE): not found in {} or {}",
                self.name,
                self.config.display(),
                self.credentials.display()
            ));
        }
        resolve(&profiles, &self.name, session_default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles(config: &str, credentials: &str) -> Profiles {
        Profiles::build(
            parse_ini("config", config).unwrap(),
            parse_ini("credentials", credentials).unwrap(),
        )
    }

    fn keys(id: &str, key: &str) -> Credentials {
        Credentials {
            access_key_id: id.into(),
            secret_access_key: key.into(),
            session_token: None,
        }
    }

    #[test]
    fn comments_continuations_and_both_delimiters() {
        let text = "# leading comment\n; another\n[default]\nregion = eu-west-1\n\
                    aws_access_key_id: AKIA1\n  # indented comment\ns3 =\n  max_concurrent_requests = 10\n\
                    Output=json\n[profile x]\nrole_arn = arn:aws:iam::1:role/r # not a comment\n";
        let sections = parse_ini("config", text).unwrap();
        assert_eq!(sections.len(), 2);
        let (name, default) = &sections[0];
        assert_eq!(name, "default");
        assert_eq!(default["region"], "eu-west-1");
        assert_eq!(default["aws_access_key_id"], "AKIA1");
        assert_eq!(default["output"], "json");
        assert!(!default.contains_key("max_concurrent_requests"));
        // botocore keeps inline text after the value: only whole-line comments are comments.
        assert_eq!(
            sections[1].1["role_arn"],
            "arn:aws:iam::1:role/r # not a comment"
        );
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(
            parse_ini("/h/.aws/config", "[default]\njust words\n").unwrap_err(),
            "/h/.aws/config: line 2: expected key = value"
        );
        assert!(parse_ini("c", "key = v\n").unwrap_err().contains("line 1"));
        assert!(
            parse_ini("c", "[profile x\n")
                .unwrap_err()
                .contains("section header")
        );
    }

    #[test]
    fn profile_prefix_in_config_not_in_credentials_and_credentials_win() {
        let p = profiles(
            "[default]\nregion = a\n[profile dev]\naws_access_key_id = FROMCONFIG\naws_secret_access_key = s\n[dev]\naws_access_key_id = IGNORED\naws_secret_access_key = t\n",
            "[dev]\naws_access_key_id = FROMCREDS\n[profile prod]\naws_access_key_id = P\naws_secret_access_key = q\n",
        );
        assert_eq!(
            resolve(&p, "dev", "s").unwrap(),
            Some(Plan::Static(keys("FROMCREDS", "s")))
        );
        // In the credentials file the header is the profile name as written.
        assert_eq!(resolve(&p, "prod", "s").unwrap(), None);
        assert!(resolve(&p, "profile prod", "s").unwrap().is_some());
        // [default] holds no keys: no credentials, not an error.
        assert_eq!(resolve(&p, "default", "s").unwrap(), None);
        assert_eq!(resolve(&p, "missing", "s").unwrap(), None);
    }

    #[test]
    fn source_profile_chains_resolve_to_the_bottom() {
        let p = profiles(
            "[profile top]\nrole_arn = arn:top\nsource_profile = middle\nexternal_id = ext\nduration_seconds = 900\n\
             [profile middle]\nrole_arn = arn:middle\nsource_profile = base\nrole_session_name = mine\n",
            "[base]\naws_access_key_id = AKIA\naws_secret_access_key = s\naws_session_token = t\n",
        );
        let plan = resolve(&p, "top", "source-aws-billing").unwrap().unwrap();
        let base = Credentials {
            session_token: Some("t".into()),
            ..keys("AKIA", "s")
        };
        assert_eq!(
            plan,
            Plan::AssumeRole {
                role: RoleRequest {
                    role_arn: "arn:top".into(),
                    session_name: "source-aws-billing".into(),
                    external_id: Some("ext".into()),
                    duration_seconds: Some(900),
                },
                base: Box::new(Plan::AssumeRole {
                    role: RoleRequest {
                        role_arn: "arn:middle".into(),
                        session_name: "mine".into(),
                        external_id: None,
                        duration_seconds: None,
                    },
                    base: Box::new(Plan::Static(base)),
                }),
            }
        );
    }

    #[test]
    fn loops_between_profiles_are_refused_but_self_reference_with_keys_is_not() {
        let p = profiles(
            "[profile a]\nrole_arn = arn:a\nsource_profile = b\n[profile b]\nrole_arn = arn:b\nsource_profile = a\n\
             [profile me]\nrole_arn = arn:me\nsource_profile = me\naws_access_key_id = K\naws_secret_access_key = S\n\
             [profile bare]\nrole_arn = arn:bare\nsource_profile = bare\n",
            "",
        );
        assert_eq!(
            resolve(&p, "a", "s").unwrap_err(),
            "profile a: source_profile makes a loop: a -> b -> a"
        );
        assert!(matches!(
            resolve(&p, "me", "s").unwrap().unwrap(),
            Plan::AssumeRole { base, .. } if *base == Plan::Static(keys("K", "S"))
        ));
        assert!(resolve(&p, "bare", "s").unwrap_err().contains("loop"));
    }

    #[test]
    fn credential_source_web_identity_and_mistakes() {
        let p = profiles(
            "[profile ec2]\nrole_arn = arn:r\ncredential_source = Ec2InstanceMetadata\n\
             [profile ecs]\nrole_arn = arn:r\ncredential_source = EcsContainer\n\
             [profile env]\nrole_arn = arn:r\ncredential_source = Environment\n\
             [profile wi]\nrole_arn = arn:r\nweb_identity_token_file = /t\n\
             [profile odd]\nrole_arn = arn:r\ncredential_source = Laptop\n\
             [profile both]\nrole_arn = arn:r\ncredential_source = Environment\nsource_profile = env\n\
             [profile none]\nrole_arn = arn:r\n\
             [profile half]\naws_access_key_id = K\n\
             [profile dangling]\nrole_arn = arn:r\nsource_profile = nowhere\n\
             [profile long]\nrole_arn = arn:r\nsource_profile = half\nduration_seconds = 99\n",
            "",
        );
        let base = |n| match resolve(&p, n, "s").unwrap().unwrap() {
            Plan::AssumeRole { base, .. } => *base,
            other => panic!("{other:?}"),
        };
        assert_eq!(base("ec2"), Plan::Ec2InstanceMetadata);
        assert_eq!(base("ecs"), Plan::EcsContainer);
        assert_eq!(base("env"), Plan::Environment);
        assert!(matches!(
            resolve(&p, "wi", "s").unwrap().unwrap(),
            Plan::WebIdentity { token_file, .. } if token_file == "/t"
        ));
        let error = |n| resolve(&p, n, "s").unwrap_err();
        assert!(
            error("odd").contains("credential_source: expected Environment"),
            "{}",
            error("odd")
        );
        assert!(error("both").contains("both set"));
        assert!(error("none").contains("role_arn needs"));
        assert!(error("half").contains("aws_secret_access_key: missing"));
        assert!(error("dangling").contains("profile nowhere: not found"));
        assert!(error("long").contains("duration_seconds"));
    }
}
