//! The AWS credential chain and role assumption, with temporary credentials cached in memory until 5 minutes before they expire.
//!
//! Order, first hit wins: static keys (secret file, config `secret:`, AWS_ACCESS_KEY_ID),
//! web identity, the shared config/credentials files, container credentials, EC2 IMDSv2;
//! then the config's `role_arn`, assumed with what the chain gave. Each source decides in
//! pure functions (parse a file, an answer; build a request) and fetches at the edge.

pub mod container;
pub mod imds;
pub mod profile;
mod static_keys;
pub mod sts;
pub mod web_identity;

use crate::config::{ConfigError, Credentials, SecretSource};
use crate::http::Client;
use crate::retry::{next_wait, retry_after};
use serde_yaml::{Mapping, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;

pub const DEFAULT_SESSION_NAME: &str = "source-aws-billing";
/// Temporary credentials are fetched again this long before they expire.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(300);
const STS_ATTEMPTS: u32 = 4;

/// The config's `role_arn` and friends: a role assumed on top of whatever the chain gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSettings {
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub role_session_name: String,
    pub duration_seconds: Option<u32>,
}

/// Reads role_arn, external_id, role_session_name and duration_seconds from the config file.
pub fn role_settings(map: &Mapping, file: &str) -> Result<RoleSettings, ConfigError> {
    let string = |key: &str| -> Result<Option<String>, ConfigError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(_) => Err(ConfigError(format!("{file}: {key}: expected a string"))),
        }
    };
    let role_arn = string("role_arn")?;
    if let Some(arn) = &role_arn
        && !(arn.starts_with("arn:") && arn.contains(":role/"))
    {
        return Err(ConfigError(format!(
            "{file}: role_arn: expected a role ARN like arn:aws:iam::123456789012:role/name, found {arn:?}"
        )));
    }
    let external_id = string("external_id")?;
    if let Some(id) = &external_id
        && !(2..=1224).contains(&id.len())
    {
        return Err(ConfigError(format!(
            "{file}: external_id: expected 2-1224 characters"
        )));
    }
    let role_session_name = string("role_session_name")?;
    if let Some(name) = &role_session_name
        && !((2..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)))
    {
        return Err(ConfigError(format!(
            "{file}: role_session_name: expected 2-64 letters, digits or +=,.@_-, found {name:?}"
        )));
    }
    let duration_seconds = match map.get("duration_seconds") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64().filter(|d| (900..=43200).contains(d)) {
            Some(d) => Some(d as u32),
            None => {
                return Err(ConfigError(format!(
                    "{file}: duration_seconds: expected seconds 900-43200, found {}",
                    serde_yaml::to_string(v).unwrap_or_default().trim()
                )));
            }
        },
    };
    if role_arn.is_none() {
        for key in ["external_id", "role_session_name", "duration_seconds"] {
            if map.contains_key(key) {
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
        duration_seconds,
    })
}

/// Credentials, when they stop working (None: never, read again at every use) and where
/// they came from, for `check` (never a secret).
#[derive(Debug, Clone)]
pub struct Obtained {
    pub credentials: Credentials,
    pub expiration: Option<OffsetDateTime>,
    pub source: String,
}

/// Why no credentials: one line; `transient` when waiting can help (throttling, 5xx, network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredError {
    pub transient: bool,
    pub message: String,
}

impl std::fmt::Display for CredError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Whether cached credentials are still good at `now`: until REFRESH_BEFORE their expiry.
pub fn still_good(expiration: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    expiration.is_some_and(|e| now + REFRESH_BEFORE < e)
}

const ENV_NAMES: [&str; 20] = [
    "HOME",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_SESSION_NAME",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL",
];

/// The variables the chain reads, taken once at start (non-empty values only).
#[derive(Debug, Default, Clone)]
pub struct Env(BTreeMap<String, String>);

impl Env {
    pub fn capture(env: &dyn Fn(&str) -> Option<String>) -> Env {
        Env(ENV_NAMES
            .iter()
            .filter_map(|k| {
                env(k)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (k.to_string(), v))
            })
            .collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// The chain and its cache; one per process, held by the Runtime.
pub struct Provider {
    secret: SecretSource,
    role: RoleSettings,
    region: String,
    env: Env,
    sts_url: String,
    sts: Client,
    cache: RefCell<Option<Obtained>>,
    last_source: RefCell<String>,
}

impl crate::service::Runtime {
    /// The credentials to sign a pull with, from the cache or the chain.
    pub(crate) fn signing_credentials(&self) -> Result<Credentials, crate::service::Failure> {
        let sleep = |d| self.signals.sleep_for(d);
        Ok(self.credentials.get(&sleep)?.credentials)
    }

    /// The first look at start (see Provider::first_fetch).
    pub fn first_credentials(&self) -> Result<(), String> {
        self.credentials.first_fetch(&|d| self.signals.sleep_for(d))
    }
}

impl From<CredError> for crate::service::Failure {
    fn from(e: CredError) -> Self {
        use crate::costexplorer::{CeError, ErrorKind};
        let kind = if e.transient {
            ErrorKind::Transient
        } else {
            ErrorKind::Credentials
        };
        crate::service::Failure::CostExplorer(CeError {
            kind,
            message: e.message,
        })
    }
}

impl Provider {
    pub fn new(
        config: &crate::config::Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Provider, String> {
        let sts_url = sts::endpoint(&config.region, env);
        let sts = Client::new(&sts_url, config.ca_file.as_deref(), 1024 * 1024, env)?;
        Ok(Provider {
            secret: config.secret.clone(),
            role: config.role.clone(),
            region: config.region.clone(),
            env: Env::capture(env),
            sts_url,
            sts,
            cache: RefCell::new(None),
            last_source: RefCell::new("none yet".into()),
        })
    }

    /// The first look at start: Err when no source gives credentials (a transient failure
    /// is only warned about: the pull retries it).
    pub fn first_fetch(&self, sleep: &dyn Fn(Duration) -> bool) -> Result<(), String> {
        match self.get(sleep) {
            Ok(got) => {
                crate::debug!("credentials: {}", got.source);
                Ok(())
            }
            Err(e) if e.transient => {
                crate::warn!("{e}");
                Ok(())
            }
            Err(e) => Err(e.message),
        }
    }

    /// Where the last credentials came from (for `check`): never a secret.
    pub fn source(&self) -> String {
        self.last_source.borrow().clone()
    }

    /// Credentials to sign with now: cached ones while still good, else the chain again.
    /// `sleep` waits between STS retries and returns true when a stop was asked for.
    pub fn get(&self, sleep: &dyn Fn(Duration) -> bool) -> Result<Obtained, CredError> {
        if let Some(cached) = self.cache.borrow().as_ref()
            && still_good(cached.expiration, OffsetDateTime::now_utc())
        {
            return Ok(cached.clone());
        }
        let base = self.chain(sleep)?;
        let got = match &self.role.role_arn {
            None => base,
            Some(arn) => {
                let role = sts::RoleRequest {
                    role_arn: arn.clone(),
                    session_name: self.role.role_session_name.clone(),
                    external_id: self.role.external_id.clone(),
                    duration_seconds: self.role.duration_seconds,
                };
                let assumed = self
                    .assume_role(&base.credentials, &role, sleep)
                    .map_err(|e| CredError {
                        transient: e.transient,
                        message: format!(
                            "role_arn {arn} (with credentials from {}): {}",
                            base.source, e.message
                        ),
                    })?;
                Obtained {
                    credentials: assumed.credentials,
                    expiration: Some(assumed.expiration),
                    source: format!("{}, then role_arn: role {}", base.source, assumed.arn),
                }
            }
        };
        *self.cache.borrow_mut() = got.expiration.map(|_| got.clone());
        *self.last_source.borrow_mut() = got.source.clone();
        Ok(got)
    }

    /// Sources in order; the first one present decides (as in the AWS SDKs).
    fn chain(&self, sleep: &dyn Fn(Duration) -> bool) -> Result<Obtained, CredError> {
        let mut looked: Vec<String> = Vec::new();
        let failed = |looked: &[String], source: &str, e: CredError| CredError {
            transient: e.transient,
            message: if e.transient || looked.is_empty() {
                format!("{source}: {}", e.message)
            } else {
                format!(
                    "no usable AWS credentials: none from {}; {source}: {}",
                    looked.join("; "),
                    e.message
                )
            },
        };
        let (what, got) = static_keys::look(&self.secret);
        if let Some(got) = got {
            return got;
        }
        looked.push(what);

        match web_identity::from_env(&self.env, &self.role.role_session_name) {
            None => looked.push("web identity (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE)".into()),
            Some(w) => {
                return self
                    .web_identity(&w, sleep)
                    .map(|a| a.labelled("web identity"))
                    .map_err(|e| failed(&looked, "web identity", e));
            }
        }

        let files = profile_files(&self.env);
        match files.plan(&self.role.role_session_name) {
            Ok(None) => looked.push(format!(
                "profile {} in {} and {}",
                files.name,
                files.config.display(),
                files.credentials.display()
            )),
            Ok(Some(plan)) => {
                let label = format!("profile {}", files.name);
                return self
                    .run_plan(&plan, sleep)
                    .map(|o| o.labelled(&label))
                    .map_err(|e| failed(&looked, &label, e));
            }
            Err(e) => {
                let e = CredError {
                    transient: false,
                    message: e,
                };
                return Err(failed(&looked, "profile files", e));
            }
        }

        match container::from_env(&self.env) {
            None => looked.push(
                "container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, _FULL_URI)".into(),
            ),
            Some(endpoint) => {
                return endpoint
                    .map_err(|message| CredError {
                        transient: false,
                        message,
                    })
                    .and_then(|e| container::fetch(&e))
                    .map(|o| o.labelled("container credentials"))
                    .map_err(|e| failed(&looked, "container credentials", e));
            }
        }

        match imds::endpoint(&self.env) {
            None => {
                looked.push("EC2 instance metadata (off: AWS_EC2_METADATA_DISABLED)".to_string())
            }
            Some(url) => match imds::fetch(&url) {
                Ok(imds::Found::Absent(why)) => {
                    looked.push(format!("EC2 instance metadata at {url} ({why})"))
                }
                Ok(imds::Found::Credentials(o)) => return Ok(o.labelled("EC2 instance role")),
                Err(e) => return Err(failed(&looked, "EC2 instance metadata", e)),
            },
        }
        Err(CredError {
            transient: false,
            message: format!("no AWS credentials: looked at {}", looked.join("; ")),
        })
    }

    fn run_plan(
        &self,
        plan: &profile::Plan,
        sleep: &dyn Fn(Duration) -> bool,
    ) -> Result<Obtained, CredError> {
        use profile::Plan;
        let fail = |message: String| CredError {
            transient: false,
            message,
        };
        match plan {
            Plan::Static(c) => Ok(Obtained {
                credentials: c.clone(),
                expiration: None,
                source: String::new(),
            }),
            Plan::AssumeRole { role, base } => {
                let base = self.run_plan(base, sleep)?;
                let a = self.assume_role(&base.credentials, role, sleep)?;
                Ok(Obtained {
                    credentials: a.credentials,
                    expiration: Some(a.expiration),
                    source: format!("role {}", a.arn),
                })
            }
            Plan::WebIdentity { role, token_file } => {
                let w = web_identity::WebIdentity {
                    role: role.clone(),
                    token_file: token_file.into(),
                };
                self.web_identity(&w, sleep)
            }
            Plan::Environment => static_keys::from_env(&self.env)
                .map(|credentials| Obtained {
                    credentials,
                    expiration: None,
                    source: String::new(),
                })
                .ok_or_else(|| {
                    fail("credential_source Environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set".into())
                }),
            Plan::EcsContainer => match container::from_env(&self.env) {
                None => Err(fail("credential_source EcsContainer: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and _FULL_URI are not set".into())),
                Some(Err(m)) => Err(fail(m)),
                Some(Ok(e)) => container::fetch(&e),
            },
            Plan::Ec2InstanceMetadata => {
                let url = imds::endpoint(&self.env).ok_or_else(|| {
                    fail("credential_source Ec2InstanceMetadata: AWS_EC2_METADATA_DISABLED is set".into())
                })?;
                match imds::fetch(&url)? {
                    imds::Found::Credentials(o) => Ok(o),
                    imds::Found::Absent(why) => Err(fail(format!(
                        "credential_source Ec2InstanceMetadata: {url}: {why}"
                    ))),
                }
            }
        }
    }

    fn web_identity(
        &self,
        w: &web_identity::WebIdentity,
        sleep: &dyn Fn(Duration) -> bool,
    ) -> Result<Obtained, CredError> {
        // Read at every fetch: the kubelet rotates the token.
        let token = web_identity::read_token(&w.token_file, OffsetDateTime::now_utc()).map_err(
            |message| CredError {
                transient: false,
                message,
            },
        )?;
        let request = sts::assume_role_with_web_identity(&self.sts_url, &w.role, &token);
        let a = self.call_sts("AssumeRoleWithWebIdentity", request, None, sleep)?;
        Ok(Obtained {
            credentials: a.credentials,
            expiration: Some(a.expiration),
            source: format!("role {}", a.arn),
        })
    }

    fn assume_role(
        &self,
        base: &Credentials,
        role: &sts::RoleRequest,
        sleep: &dyn Fn(Duration) -> bool,
    ) -> Result<sts::Assumed, CredError> {
        let request = sts::assume_role(&self.sts_url, role);
        self.call_sts("AssumeRole", request, Some(base), sleep)
    }

    /// One STS action, signed when `signer` is given; throttling, 5xx and network errors
    /// are retried with the usual backoff, refusals are not.
    fn call_sts(
        &self,
        action: &str,
        request: crate::http::Request,
        signer: Option<&Credentials>,
        sleep: &dyn Fn(Duration) -> bool,
    ) -> Result<sts::Assumed, CredError> {
        let mut attempt = 0;
        loop {
            let mut r = request.clone();
            if let Some(keys) = signer {
                crate::sign::sign(
                    &mut r,
                    keys,
                    &self.region,
                    "sts",
                    std::time::SystemTime::now(),
                )
                .map_err(|message| CredError {
                    transient: false,
                    message,
                })?;
            }
            let (result, hint) = match self.sts.send(&r) {
                Ok(resp) if (200..300).contains(&resp.status) => {
                    (sts::parse_answer(action, &resp.body), None)
                }
                Ok(resp) => (
                    Err(sts::parse_error(action, resp.status, &resp.body)),
                    resp.header("retry-after")
                        .and_then(|v| retry_after(v, OffsetDateTime::now_utc())),
                ),
                Err(e) => (
                    Err(CredError {
                        transient: !e.permanent,
                        message: format!("STS {action}: {e}"),
                    }),
                    None,
                ),
            };
            match result {
                Err(e) if e.transient && attempt + 1 < STS_ATTEMPTS => {
                    let wait = next_wait(attempt, Duration::from_secs(20), hint);
                    crate::warn!("{}; retrying in {:.1}s", e.message, wait.as_secs_f32());
                    if sleep(wait) {
                        return Err(e);
                    }
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

impl Obtained {
    /// "web identity, role arn:…" — the source first, then what it led to.
    fn labelled(mut self, label: &str) -> Obtained {
        self.source = if self.source.is_empty() {
            label.to_string()
        } else {
            format!("{label}, {}", self.source)
        };
        self
    }
}

/// The shared files and the profile chosen, from AWS_PROFILE, AWS_CONFIG_FILE,
/// AWS_SHARED_CREDENTIALS_FILE and HOME.
struct ProfileFiles {
    name: String,
    named: bool,
    config: std::path::PathBuf,
    credentials: std::path::PathBuf,
}

fn profile_files(env: &Env) -> ProfileFiles {
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
    fn plan(&self, session_default: &str) -> Result<Option<profile::Plan>, String> {
        let read = |path: &std::path::Path| -> Result<Vec<(String, profile::Section)>, String> {
            match std::fs::read_to_string(path) {
                Ok(text) => profile::parse_ini(&path.display().to_string(), &text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(format!(
                    "{}: cannot read: {}",
                    path.display(),
                    crate::config::plain_io(&e)
                )),
            }
        };
        let profiles = profile::Profiles::build(read(&self.config)?, read(&self.credentials)?);
        if self.named && !profiles.0.contains_key(&self.name) {
            return Err(format!(
                "profile {} (AWS_PROFILE): not found in {} or {}",
                self.name,
                self.config.display(),
                self.credentials.display()
            ));
        }
        profile::resolve(&profiles, &self.name, session_default)
    }
}

/// A GET or PUT to a link-local or loopback credentials endpoint: no proxy, short timeout.
pub(crate) fn local_call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<(u16, Vec<u8>), ureq::Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .proxy(None)
        .user_agent(concat!("source-aws-billing/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut response = if method == "PUT" {
        let mut b = agent.put(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.send_empty()?
    } else {
        let mut b = agent.get(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.call()?
    };
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_vec()?;
    Ok((status, body))
}

/// A failed local call as a short phrase ("no answer within 1 s", "connection refused").
pub(crate) fn unreachable(e: &ureq::Error, timeout: Duration) -> String {
    match e {
        ureq::Error::Timeout(_) => format!("no answer within {} s", timeout.as_secs()),
        ureq::Error::Io(io) => crate::config::plain_io(io).to_lowercase(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::HostNotFound => "host not found".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn temporary_credentials_are_reused_until_five_minutes_before_expiry() {
        let expires = Some(datetime!(2026-11-30 12:00 UTC));
        assert!(still_good(expires, datetime!(2026-11-30 11:54:59 UTC)));
        assert!(!still_good(expires, datetime!(2026-11-30 11:55 UTC)));
        assert!(!still_good(expires, datetime!(2026-11-30 13:00 UTC)));
        // Keys that never expire are read again at every use (a rotated secret takes effect).
        assert!(!still_good(None, datetime!(2026-11-30 11:00 UTC)));
    }

    fn settings(yaml: &str) -> Result<RoleSettings, ConfigError> {
        role_settings(&serde_yaml::from_str(yaml).unwrap(), "config.yml")
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
