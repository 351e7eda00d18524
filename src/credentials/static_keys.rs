//! Static keys: the secret file, the config's `secret:` section and AWS_ACCESS_KEY_ID (config.rs reads them).

use super::{CredError, Env, Obtained};
use crate::config::{self, SecretSource};
use crate::keys::Credentials;
use crate::warn;

/// What was looked at, and the keys when any static source gives them (a broken one is an error).
pub fn look(source: &SecretSource) -> (String, Option<Result<Obtained, CredError>>) {
    let (looked, given) = config::static_sources(source);
    let Some(label) = given else {
        return (looked, None);
    };
    let got = match config::load_credentials(source) {
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
