//! AWS credentials as plain data: a Debug that never shows a secret, and hiding them in peer text.

use std::fmt;

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

/// Secrets shorter than this are not searched for in a peer's text: they would match ordinary
/// words (AWS secret keys are 40 characters, session tokens hundreds).
pub const MIN_HIDDEN_SECRET: usize = 8;

impl Credentials {
    /// `text` (from a peer, e.g. a Cost Explorer error) with the secret key and the session
    /// token replaced by `***` where they stand as whole tokens.
    pub fn hide_in(&self, text: &str) -> String {
        let secrets = [Some(&self.secret_access_key), self.session_token.as_ref()];
        secrets
            .into_iter()
            .flatten()
            .fold(text.to_string(), |t, s| hide_token(&t, s))
    }
}

/// Replaces whole-token occurrences of `secret` (not inside a longer run of letters, digits,
/// `+` or `/`); a secret shorter than MIN_HIDDEN_SECRET is left alone.
fn hide_token(text: &str, secret: &str) -> String {
    if secret.len() < MIN_HIDDEN_SECRET {
        return text.to_string();
    }
    let word = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/';
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (at, _) in text.match_indices(secret) {
        let end = at + secret.len();
        let alone = text[..at].chars().next_back().is_none_or(|c| !word(c))
            && text[end..].chars().next().is_none_or(|c| !word(c));
        if alone && at >= copied {
            out.push_str(&text[copied..at]);
            out.push_str("***");
            copied = end;
        }
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn only_whole_secrets_of_a_real_length_are_hidden() {
        let creds = |key: &str, token: Option<&str>| Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: key.into(),
            session_token: token.map(Into::into),
        };
        let text = "Cost Explorer unreachable: connection reset";
        assert_eq!(creds("e", Some("on")).hide_in(text), text);
        assert_eq!(creds("reset", None).hide_in(text), text);
        let key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY";
        let token = "IQoJb3JpZ2luX2VjEJr//token==";
        let c = creds(key, Some(token));
        assert_eq!(
            c.hide_in(&format!("bad key \"{key}\" and token={token}; {key}")),
            "bad key \"***\" and token=***; ***"
        );
        // Inside a longer token it is some other text, not the secret.
        let longer = format!("x{key}");
        assert_eq!(c.hide_in(&longer), longer);
    }
}
