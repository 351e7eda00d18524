//! EC2 instance role over IMDSv2 only: a session token first (never the v1 path), short timeouts.

use super::{CredError, Env, Obtained, local::Budget, local_call};
use std::time::Duration;

/// Each call connects within 1 s and ends within 1 s: with the one retry of the token
/// request, a host with no (or a dripping) metadata service costs about 2 s.
const TIMEOUT: Budget = Budget {
    connect: Duration::from_secs(1),
    total: Duration::from_secs(1),
};
const TOKEN_TTL: &str = "21600";

/// The IMDS base URL, or None when AWS_EC2_METADATA_DISABLED=true.
pub fn endpoint(env: &Env) -> Option<String> {
    if env
        .get("AWS_EC2_METADATA_DISABLED")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return None;
    }
    let url = match env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") {
        Some(url) => url.trim(),
        None if env
            .get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")
            .is_some_and(|m| m.eq_ignore_ascii_case("ipv6")) =>
        {
            "http://[fd00:ec2::254]"
        }
        None => "http://169.254.169.254",
    };
    Some(url.trim_end_matches('/').to_string())
}

pub enum Found {
    /// No metadata service here, or no role attached: the chain goes on.
    Absent(String),
    Credentials(Obtained),
}

/// The role name from the listing: its first line.
pub fn role_name(listing: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(listing).ok()?;
    let name = text.lines().next()?.trim();
    (!name.is_empty() && !name.contains(|c: char| c == '/' || c.is_control()))
        .then(|| name.to_string())
}

/// PUT /latest/api/token (one retry when nothing answers), then the role and its credentials.
pub fn fetch(base: &str) -> Result<Found, CredError> {
    let fail = |message: String| CredError {
        transient: false,
        message,
    };
    let put = || {
        local_call(
            "PUT",
            &format!("{base}/latest/api/token"),
            &[("x-aws-ec2-metadata-token-ttl-seconds", TOKEN_TTL)],
            TIMEOUT,
        )
    };
    let (status, token) = match put().or_else(|_| put()) {
        Ok(answer) => answer,
        Err(e) => return Ok(Found::Absent(super::unreachable(&e, TIMEOUT))),
    };
    if status != 200 {
        return Err(fail(format!(
            "{base} refused the IMDSv2 session token request (HTTP {status}); IMDSv1 is never used, so allow IMDSv2 on the instance (HttpTokens, hop limit 2 in containers)"
        )));
    }
    let token = String::from_utf8(token)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty() && !t.contains(['\r', '\n']))
        .ok_or_else(|| fail(format!("{base} sent an unusable IMDSv2 token")))?;
    let get = |path: &str| {
        local_call(
            "GET",
            &format!("{base}/latest/meta-data/iam/security-credentials/{path}"),
            &[("x-aws-ec2-metadata-token", &token)],
            TIMEOUT,
        )
        .map_err(|e| CredError {
            transient: true,
            message: format!("{base}: {}", super::unreachable(&e, TIMEOUT)),
        })
    };
    let (status, listing) = get("")?;
    if status == 404 {
        return Ok(Found::Absent("no instance role attached".into()));
    }
    if status != 200 {
        return Err(fail(format!(
            "{base} answered HTTP {status} for the instance role"
        )));
    }
    let role = role_name(&listing)
        .ok_or_else(|| fail(format!("{base} listed no usable instance role name")))?;
    let (status, body) = get(&role)?;
    if status != 200 {
        return Err(fail(format!(
            "{base} answered HTTP {status} for the credentials of role {role}"
        )));
    }
    let (credentials, expiration, _) =
        super::container::parse("instance metadata", &body).map_err(fail)?;
    Ok(Found::Credentials(Obtained {
        credentials,
        expiration,
        source: format!("role {role}"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        let map: std::collections::HashMap<_, _> = pairs.iter().cloned().collect();
        Env::capture(&move |k| map.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn endpoint_default_override_ipv6_and_off() {
        assert_eq!(endpoint(&env(&[])).unwrap(), "http://169.254.169.254");
        assert_eq!(
            endpoint(&env(&[(
                "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                "http://127.0.0.1:9/"
            )]))
            .unwrap(),
            "http://127.0.0.1:9"
        );
        assert_eq!(
            endpoint(&env(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6")])).unwrap(),
            "http://[fd00:ec2::254]"
        );
        assert_eq!(
            endpoint(&env(&[("AWS_EC2_METADATA_DISABLED", "TRUE")])),
            None
        );
        assert!(endpoint(&env(&[("AWS_EC2_METADATA_DISABLED", "false")])).is_some());
    }

    #[test]
    fn the_role_listing_and_the_credentials_answer() {
        assert_eq!(
            role_name(b"billing-node\n").as_deref(),
            Some("billing-node")
        );
        assert_eq!(role_name(b"\n"), None);
        assert_eq!(role_name(b"a\x1b[2Jb\n"), None);
        // The shape documented for IMDS security-credentials.
        let body = br#"{"Code":"Success","LastUpdated":"2026-11-30T10:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"secret","Token":"token","Expiration":"2026-11-30T16:00:00Z"}"#;
        let (c, exp, _) = crate::credentials::container::parse("imds", body).unwrap();
        assert_eq!(c.session_token.as_deref(), Some("token"));
        assert_eq!(exp.unwrap().hour(), 16);
    }
}
