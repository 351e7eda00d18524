//! Web identity (EKS IRSA): AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, the token read at every fetch.

use super::Env;
use super::sts::RoleRequest;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebIdentity {
    pub role: RoleRequest,
    pub token_file: PathBuf,
}

/// Present when both AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE are set.
pub fn from_env(env: &Env, session_default: &str) -> Option<WebIdentity> {
    Some(WebIdentity {
        role: RoleRequest {
            role_arn: env.get("AWS_ROLE_ARN")?.trim().to_string(),
            session_name: env
                .get("AWS_ROLE_SESSION_NAME")
                .unwrap_or(session_default)
                .to_string(),
            external_id: None,
            duration_seconds: None,
        },
        token_file: env.get("AWS_WEB_IDENTITY_TOKEN_FILE")?.into(),
    })
}

/// The token, or why it cannot be used; an expired JWT is refused here with its expiry
/// rather than sent (STS would only say ExpiredTokenException).
pub fn read_token(path: &Path, now: OffsetDateTime) -> Result<String, String> {
    let token = crate::files::read_small("token file", path, crate::files::MAX_TOKEN_BYTES, false)?
        .unwrap_or_default();
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(format!("token file {}: is empty", path.display()));
    }
    if let Some(exp) = jwt_expiry(&token)
        && exp <= now
    {
        return Err(format!(
            "token file {}: the token expired at {} (is the projected token still mounted and rotated?)",
            path.display(),
            crate::schedule::rfc3339(exp)
        ));
    }
    Ok(token)
}

/// The `exp` claim of a JWT, when it is one.
pub fn jwt_expiry(token: &str) -> Option<OffsetDateTime> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64url(payload)?;
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: Option<i64>,
    }
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    OffsetDateTime::from_unix_timestamp(claims.exp?).ok()
}

fn base64url(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn jwt(claims: &str) -> String {
        // base64url without padding, by hand (header {"alg":"none"}).
        fn enc(b: &[u8]) -> String {
            const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let mut s = String::new();
            for chunk in b.chunks(3) {
                let n = chunk.iter().fold(0u32, |n, x| (n << 8) | u32::from(*x))
                    << (8 * (3 - chunk.len()));
                for i in 0..=chunk.len() {
                    s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            s
        }
        format!(
            "{}.{}.sig",
            enc(br#"{"alg":"none"}"#),
            enc(claims.as_bytes())
        )
    }

    #[test]
    fn the_expiry_of_a_jwt_is_read() {
        let t =
            jwt(r#"{"sub":"system:serviceaccount:billing:source-aws-billing","exp":1796040000}"#);
        assert_eq!(jwt_expiry(&t), Some(datetime!(2026-11-30 12:00 UTC)));
        assert_eq!(jwt_expiry("not-a-jwt"), None);
        assert_eq!(jwt_expiry(&jwt(r#"{"sub":"x"}"#)), None);
    }

    #[test]
    fn expired_empty_and_unreadable_token_files_are_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("sab-wi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, format!("{}\n", jwt(r#"{"exp":1796040000}"#))).unwrap();
        let before = datetime!(2026-11-30 11:00 UTC);
        assert!(read_token(&file, before).unwrap().ends_with(".sig"));
        let e = read_token(&file, datetime!(2026-11-30 12:00 UTC)).unwrap_err();
        assert!(e.contains("expired at 2026-11-30T12:00:00Z"), "{e}");
        std::fs::write(&file, "  \n").unwrap();
        assert!(read_token(&file, before).unwrap_err().ends_with("is empty"));
        let e = read_token(&dir.join("missing"), before).unwrap_err();
        assert!(e.contains("missing: cannot read: No such file"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn both_variables_are_needed() {
        let env = |pairs: &[(&str, &str)]| {
            let map: std::collections::HashMap<_, _> = pairs.iter().cloned().collect();
            Env::capture(&move |k| map.get(k).map(|v| v.to_string()))
        };
        assert_eq!(from_env(&env(&[("AWS_ROLE_ARN", "arn:r")]), "d"), None);
        let w = from_env(
            &env(&[
                ("AWS_ROLE_ARN", "arn:r"),
                ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ]),
            "d",
        )
        .unwrap();
        assert_eq!(w.role.session_name, "d");
        assert_eq!(w.token_file, PathBuf::from("/t"));
    }
}
