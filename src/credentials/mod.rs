//! The AWS credential chain and role assumption, with temporary credentials cached in memory until 5 minutes before they expire.
//!
//! Order, first hit wins: static keys (secret file, config `secret:`, AWS_ACCESS_KEY_ID),
//! web identity, the shared config/credentials files, container credentials, EC2 IMDSv2;
//! then the config's `role_arn`, assumed with what the chain gave. Each source decides in
//! pure functions (parse a file, an answer; build a request) and fetches at the edge.

pub(crate) mod container;
pub(crate) mod imds;
mod local;
pub(crate) mod profile;
mod settings;
pub mod static_keys;
pub(crate) mod sts;
pub(crate) mod web_identity;

pub(crate) use local::{local_call, unreachable};
use profile::profile_files;
pub use settings::KEYS as ROLE_KEYS;
pub use settings::{DEFAULT_SESSION_NAME, RoleSettings, role_settings};
pub use static_keys::{
    SecretSource, check_static_keys, load_credentials, static_sources, warn_once,
};

use crate::http::Client;
use crate::keys::Credentials;
use crate::retry::{next_wait, retry_after};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;

/// Temporary credentials are fetched again this long before they expire.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(300);
const STS_ATTEMPTS: u32 = 4;

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

/// Every credential URL that is set, parsed as the HTTP client will parse it, at start:
/// a bad one is one line naming its variable (exit 2), not a failed call later.
fn check_urls(env: &Env) -> Result<(), String> {
    // AWS_ENDPOINT_URL is STS's only when AWS_ENDPOINT_URL_STS is not set.
    let sts = ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"]
        .into_iter()
        .find(|k| env.get(k).is_some());
    let others = [
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ];
    for var in sts.into_iter().chain(others) {
        if let Some(url) = env.get(var) {
            crate::urls::check_http_url(var, url.trim())?;
        }
    }
    if let Some(Ok(endpoint)) = container::from_env(env) {
        let var = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
        if env.get(var).is_some() {
            crate::urls::check_http_url(var, &endpoint.url)?;
        }
    }
    Ok(())
}

/// The chain and its cache; one per process, held by the Runtime.
pub struct Provider {
    secret: SecretSource,
    role: RoleSettings,
    /// The region STS requests are signed for (see sts::endpoint).
    sts_region: String,
    env: Env,
    sts_url: String,
    sts: Client,
    cache: RefCell<Option<Obtained>>,
    last_source: RefCell<String>,
}

impl Provider {
    /// The chain over `secret` (the static sources), then the process's AWS variables and
    /// files, with `role` assumed on top; STS in the region of AWS_REGION or
    /// AWS_DEFAULT_REGION, else in `region` (Cost Explorer's), trusting `ca_file` when given.
    pub fn new(
        secret: SecretSource,
        role: RoleSettings,
        region: &str,
        ca_file: Option<&std::path::Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Provider, String> {
        check_urls(&Env::capture(env))?;
        let sts::Endpoint {
            url: sts_url,
            signing_region,
        } = sts::endpoint(region, env)?;
        let sts = Client::new(&sts_url, ca_file, crate::bounds::STS_LIMITS, env)?;
        Ok(Provider {
            secret,
            role,
            sts_region: signing_region,
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
        let action = "AssumeRoleWithWebIdentity";
        let a = sts::parse_answer(action, &self.call_sts(action, request, None, sleep)?)?;
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
        let body = self.call_sts("AssumeRole", request, Some(base), sleep)?;
        sts::parse_answer("AssumeRole", &body)
    }

    /// The AWS account of the credentials (STS GetCallerIdentity, signed with them).
    pub fn account(&self, sleep: &dyn Fn(Duration) -> bool) -> Result<String, CredError> {
        let keys = self.get(sleep)?.credentials;
        let request = sts::get_caller_identity(&self.sts_url);
        let action = "GetCallerIdentity";
        sts::parse_account(action, &self.call_sts(action, request, Some(&keys), sleep)?)
    }

    /// One STS action, signed when `signer` is given: the body of its 2xx answer;
    /// throttling, 5xx and network errors are retried with the usual backoff, refusals are not.
    fn call_sts(
        &self,
        action: &str,
        request: crate::http::Request,
        signer: Option<&Credentials>,
        sleep: &dyn Fn(Duration) -> bool,
    ) -> Result<Vec<u8>, CredError> {
        let mut attempt = 0;
        loop {
            crate::heartbeat::working();
            let mut r = request.clone();
            if let Some(keys) = signer {
                r.sign(keys, &self.sts_region, "sts", std::time::SystemTime::now())
                    .map_err(|message| CredError {
                        transient: false,
                        message,
                    })?;
            }
            let (result, hint) = match self.sts.send(&r) {
                Ok(resp) if (200..300).contains(&resp.status) => (Ok(resp.body), None),
                Ok(resp) => (
                    Err(sts::parse_error(action, resp.status, &resp.body)),
                    resp.header("retry-after")
                        .and_then(|v| retry_after(v, OffsetDateTime::now_utc())),
                ),
                Err(e) => (
                    Err(CredError {
                        transient: e.transient,
                        message: format!("STS {action}: {e}"),
                    }),
                    None,
                ),
            };
            match result {
                Err(e) if e.transient && attempt + 1 < STS_ATTEMPTS => {
                    let wait = next_wait(attempt, Duration::from_secs(20), hint);
                    crate::warn!("{}; retrying in {:.1}s", e.message, wait.as_secs_f32());
                    crate::heartbeat::beat("retrying STS", OffsetDateTime::now_utc() + wait);
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
}
