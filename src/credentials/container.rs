//! Container credentials (ECS task role, EKS Pod Identity): the endpoint, its token, its JSON answer.

use super::{CredError, Env, Obtained, local::Budget, local_call};
use crate::keys::Credentials;
use std::path::PathBuf;
use std::time::Duration;

const ECS_HOST: &str = "http://169.254.170.2";
/// Connect within 2 s, the whole answer within 4 s (one retry: 8 s at most).
const TIMEOUT: Budget = Budget {
    connect: Duration::from_secs(2),
    total: Duration::from_secs(4),
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, read at every fetch (EKS rotates it).
    File(PathBuf),
    Value(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub token: Option<Token>,
}

/// Present when either URI variable is set; Err when the full URI is not allowed.
pub fn from_env(env: &Env) -> Option<Result<Endpoint, String>> {
    let url = match (
        env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
        env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
    ) {
        (Some(relative), _) => format!("{ECS_HOST}{relative}"),
        (None, Some(full)) => {
            if let Err(e) = allowed(full) {
                return Some(Err(e));
            }
            full.to_string()
        }
        (None, None) => return None,
    };
    let token = match (
        env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
        env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
    ) {
        (Some(file), _) => Some(Token::File(file.into())),
        (None, Some(value)) => Some(Token::Value(value.to_string())),
        (None, None) => None,
    };
    Some(Ok(Endpoint { url, token }))
}

/// The full URI: https anywhere; http only to loopback or the ECS/EKS link-local addresses.
pub fn allowed(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Ok(());
    }
    if !url.starts_with("http://") {
        return Err(format!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI: expected an http:// or https:// URL, found {:?}",
            crate::urls::redact(url)
        ));
    }
    let host = crate::urls::url_host(url);
    let loopback = host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback || ["169.254.170.2", "169.254.170.23", "fd00:ec2::23"].contains(&host) {
        Ok(())
    } else {
        Err(format!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI: plain http is allowed only to loopback, 169.254.170.2, 169.254.170.23 or fd00:ec2::23, not to {host}; use https"
        ))
    }
}

/// What the container endpoint and IMDS answer (credentials), or ECS/EKS's {"code","message"}.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    #[serde(alias = "code")]
    code: Option<String>,
    #[serde(alias = "message")]
    message: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    token: Option<String>,
    expiration: Option<String>,
    role_arn: Option<String>,
}

/// The JSON both the container endpoint and IMDS answer with.
pub fn parse(
    what: &str,
    body: &[u8],
) -> Result<(Credentials, Option<time::OffsetDateTime>, Option<String>), String> {
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|_| format!("{what} sent an answer that is not JSON credentials"))?;
    let field = |v: Option<String>| v.filter(|v| !v.is_empty());
    if let Some(code) = field(answer.code)
        && code != "Success"
    {
        let message = field(answer.message).unwrap_or_default();
        return Err(format!(
            "{what} answered Code \"{}\": {}",
            crate::log::peer(&code),
            crate::log::peer(&message)
        ));
    }
    let need = |v: Option<String>, k: &str| {
        field(v).ok_or_else(|| format!("{what} sent credentials without {k}"))
    };
    let credentials = Credentials {
        access_key_id: need(answer.access_key_id, "AccessKeyId")?,
        secret_access_key: need(answer.secret_access_key, "SecretAccessKey")?,
        session_token: field(answer.token),
    };
    let expiration = match field(answer.expiration).as_deref() {
        None => None,
        Some(e) => Some(
            super::sts::parse_time(e)
                .ok_or_else(|| format!("{what} sent an Expiration that is not RFC 3339"))?,
        ),
    };
    Ok((credentials, expiration, field(answer.role_arn)))
}

/// GET the credentials, with the Authorization token; one retry on a network error or 5xx.
pub fn fetch(endpoint: &Endpoint) -> Result<Obtained, CredError> {
    let fail = |transient: bool, message: String| CredError { transient, message };
    let place = crate::urls::redact(&endpoint.url);
    let token = match &endpoint.token {
        None => None,
        Some(Token::Value(v)) => Some(v.trim().to_string()),
        Some(Token::File(path)) => Some(
            crate::files::read_small(
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                path,
                crate::files::MAX_TOKEN_BYTES,
                false,
            )
            .map_err(|m| fail(false, m))?
            .unwrap_or_default()
            .trim()
            .to_string(),
        ),
    };
    if token.as_ref().is_some_and(|t| t.contains(['\r', '\n'])) {
        return Err(fail(
            false,
            "the container authorization token holds a line break".into(),
        ));
    }
    let headers: Vec<(&str, &str)> = token
        .iter()
        .map(|t| ("authorization", t.as_str()))
        .collect();
    let mut attempt = 0;
    let (status, body) = loop {
        match local_call("GET", &endpoint.url, &headers, TIMEOUT) {
            Ok((s, _)) if s >= 500 && attempt == 0 => attempt += 1,
            Ok(answer) => break answer,
            Err(_) if attempt == 0 => attempt += 1,
            Err(e) => {
                let why = super::unreachable(&e, TIMEOUT);
                return Err(fail(true, format!("{place}: {why}")));
            }
        }
    };
    if status != 200 {
        // ECS and EKS answer {"code": ..., "message": ...}; never echo more than that.
        let said = match serde_json::from_slice::<Answer>(&body) {
            Ok(a) => [a.code, a.message]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>(),
            Err(_) => Vec::new(),
        }
        .join(": ");
        let said = crate::log::peer(&said);
        let hint = if status == 401 || status == 403 {
            " (is the authorization token right?)"
        } else {
            ""
        };
        return Err(fail(
            status >= 500,
            format!(
                "{place} answered HTTP {status}{}{hint}",
                if said.is_empty() {
                    String::new()
                } else {
                    format!(": {said}")
                }
            ),
        ));
    }
    let (credentials, expiration, role) = parse(&place, &body).map_err(|m| fail(false, m))?;
    Ok(Obtained {
        credentials,
        expiration,
        source: role.map(|r| format!("role {r}")).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_only_to_loopback_and_the_link_local_agents() {
        for ok in [
            "https://creds.example.com/x",
            "http://127.0.0.1:51679/creds",
            "http://127.1.2.3/x",
            "http://localhost:80/x",
            "http://[::1]:9/x",
            "http://169.254.170.2/v2/credentials/abc",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/v1/credentials",
        ] {
            assert_eq!(allowed(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://10.0.0.1/x",
            "http://example.com/x",
            "http://169.254.169.254/",
            "ftp://127.0.0.1/",
        ] {
            assert!(allowed(bad).is_err(), "{bad}");
        }
        assert!(
            allowed("http://evil.example/x")
                .unwrap_err()
                .contains("use https")
        );
    }

    #[test]
    fn relative_uri_goes_to_the_ecs_agent_and_the_token_file_wins() {
        let env = |pairs: &[(&str, &str)]| {
            let map: std::collections::HashMap<_, _> = pairs.iter().cloned().collect();
            Env::capture(&move |k| map.get(k).map(|v| v.to_string()))
        };
        assert_eq!(from_env(&env(&[])), None);
        let e = from_env(&env(&[(
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "/v2/credentials/id",
        )]))
        .unwrap()
        .unwrap();
        assert_eq!(e.url, "http://169.254.170.2/v2/credentials/id");
        let e = from_env(&env(&[
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.23/v1/credentials",
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
            ),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ignored"),
        ]))
        .unwrap()
        .unwrap();
        assert!(matches!(e.token, Some(Token::File(_))));
        assert!(
            from_env(&env(&[(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://10.1.1.1/"
            )]))
            .unwrap()
            .is_err()
        );
    }

    #[test]
    fn answers_as_ecs_and_eks_send_them() {
        // The shape documented for the ECS agent and the EKS Pod Identity agent.
        let body = br#"{"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"wJalr/EXAMPLE","Token":"IQoJb3JpZ2luX2VjEXAMPLE","Expiration":"2026-11-30T18:00:00Z","RoleArn":"arn:aws:iam::123456789012:role/ecs-task"}"#;
        let (c, exp, role) = parse("ecs", body).unwrap();
        assert_eq!(c.access_key_id, "ASIAEXAMPLE");
        assert_eq!(c.session_token.as_deref(), Some("IQoJb3JpZ2luX2VjEXAMPLE"));
        assert_eq!(exp.unwrap().hour(), 18);
        assert_eq!(
            role.as_deref(),
            Some("arn:aws:iam::123456789012:role/ecs-task")
        );
        assert!(
            parse("ecs", br#"{"AccessKeyId":"A"}"#)
                .unwrap_err()
                .contains("without SecretAccessKey")
        );
        assert!(parse("ecs", b"<html>").unwrap_err().contains("not JSON"));
        let forged = br#"{"Code":"Bad\u001b[2J","Message":"no\r\n2026-11-30T00:00:00Z ERROR x"}"#;
        let e = parse("imds", forged).unwrap_err();
        assert!(!e.contains(|c: char| c.is_control()), "{e:?}");
        let failed = br#"{"Code":"AssumeRoleUnauthorizedAccess","Message":"no"}"#;
        assert!(
            parse("imds", failed)
                .unwrap_err()
                .contains("AssumeRoleUnauthorizedAccess")
        );
    }
}
