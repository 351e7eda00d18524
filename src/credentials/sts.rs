//! STS AssumeRole, AssumeRoleWithWebIdentity and GetCallerIdentity: the Query requests and their XML answers, by hand.

use super::CredError;
use crate::costexplorer::{self, ErrorKind};
use crate::http::Request;
use crate::keys::Credentials;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What the role assumption asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRequest {
    pub role_arn: String,
    pub session_name: String,
    pub external_id: Option<String>,
    pub duration_seconds: Option<u32>,
}

/// Temporary credentials and the role session they belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assumed {
    pub credentials: Credentials,
    pub expiration: OffsetDateTime,
    /// arn:aws:sts::123456789012:assumed-role/name/session
    pub arn: String,
}

/// The regional endpoint, unless AWS_ENDPOINT_URL_STS or AWS_ENDPOINT_URL say otherwise.
pub fn endpoint(region: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let chosen = ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|k| env(k).filter(|v| !v.trim().is_empty()));
    match chosen {
        Some(url) => url.trim().trim_end_matches('/').to_string(),
        None if region.starts_with("cn-") => format!("https://sts.{region}.amazonaws.com.cn"),
        None => format!("https://sts.{region}.amazonaws.com"),
    }
}

/// An unsigned AssumeRole request (sign it for service "sts" before sending).
pub fn assume_role(endpoint: &str, role: &RoleRequest) -> Request {
    let mut form = vec![
        ("Action", "AssumeRole".to_string()),
        ("Version", "2011-06-15".to_string()),
        ("RoleArn", role.role_arn.clone()),
        ("RoleSessionName", role.session_name.clone()),
    ];
    if let Some(id) = &role.external_id {
        form.push(("ExternalId", id.clone()));
    }
    if let Some(d) = role.duration_seconds {
        form.push(("DurationSeconds", d.to_string()));
    }
    post(endpoint, &form)
}

/// AssumeRoleWithWebIdentity: unsigned; the token is the proof.
pub fn assume_role_with_web_identity(endpoint: &str, role: &RoleRequest, token: &str) -> Request {
    let mut form = vec![
        ("Action", "AssumeRoleWithWebIdentity".to_string()),
        ("Version", "2011-06-15".to_string()),
        ("RoleArn", role.role_arn.clone()),
        ("RoleSessionName", role.session_name.clone()),
        ("WebIdentityToken", token.to_string()),
    ];
    if let Some(d) = role.duration_seconds {
        form.push(("DurationSeconds", d.to_string()));
    }
    post(endpoint, &form)
}

/// An unsigned GetCallerIdentity request (sign it for "sts"): whose the credentials are.
/// It needs no permission and costs nothing.
pub fn get_caller_identity(endpoint: &str) -> Request {
    let form = [
        ("Action", "GetCallerIdentity".to_string()),
        ("Version", "2011-06-15".to_string()),
    ];
    post(endpoint, &form)
}

/// The 12-digit account of a GetCallerIdentity answer.
pub fn parse_account(action: &str, body: &[u8]) -> Result<String, CredError> {
    let text = String::from_utf8_lossy(body);
    match element(&text, "Account") {
        Some(a) if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) => Ok(a),
        _ => Err(CredError {
            transient: false,
            message: format!(
                "STS sent an answer to {action} without a 12-digit Account: {}",
                costexplorer::snippet(&body[..body.len().min(60)])
            ),
        }),
    }
}

fn post(endpoint: &str, form: &[(&str, String)]) -> Request {
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    Request {
        method: "POST",
        url: format!("{endpoint}/"),
        headers: vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        )],
        body: body.into_bytes(),
    }
}

fn percent_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The text of the first `<name>` element, entities decoded.
fn element(text: &str, name: &str) -> Option<String> {
    let start = text.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + text[start..].find(&format!("</{name}>"))?;
    Some(
        text[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// A 2xx answer of either action: the credentials, their expiry and the assumed role's ARN.
pub fn parse_answer(action: &str, body: &[u8]) -> Result<Assumed, CredError> {
    let bad = |what: &str| CredError {
        transient: false,
        message: format!(
            "STS sent an answer to {action} without {what}: {}",
            costexplorer::snippet(&body[..body.len().min(60)])
        ),
    };
    let text = std::str::from_utf8(body).map_err(|_| bad("UTF-8 text"))?;
    let creds = element(text, "Credentials").ok_or_else(|| bad("Credentials"))?;
    let field = |name: &str| element(&creds, name).filter(|v| !v.is_empty());
    let expiration = field("Expiration").ok_or_else(|| bad("Expiration"))?;
    let expiration = parse_time(&expiration).ok_or_else(|| bad("a valid Expiration"))?;
    let user = element(text, "AssumedRoleUser").unwrap_or_default();
    Ok(Assumed {
        credentials: Credentials {
            access_key_id: field("AccessKeyId").ok_or_else(|| bad("AccessKeyId"))?,
            secret_access_key: field("SecretAccessKey").ok_or_else(|| bad("SecretAccessKey"))?,
            session_token: Some(field("SessionToken").ok_or_else(|| bad("SessionToken"))?),
        },
        expiration,
        arn: element(&user, "Arn").unwrap_or_default(),
    })
}

/// RFC 3339 as STS, IMDS and ECS write it (`2026-11-30T12:00:00Z`, with or without fractions).
pub fn parse_time(value: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(value.trim(), &Rfc3339).ok()
}

/// A non-2xx answer, read like Cost Explorer's: throttling and 5xx are transient.
pub fn parse_error(action: &str, status: u16, body: &[u8]) -> CredError {
    let kind = costexplorer::parse_error(status, body).kind;
    let text = String::from_utf8_lossy(body);
    let code = element(&text, "Code");
    // STS's own names for "try again" (IDPCommunicationError: the identity provider was slow).
    let sts_transient = matches!(
        code.as_deref(),
        Some("Throttling" | "IDPCommunicationError" | "RequestLimitExceeded")
    );
    // Peer text: control characters escaped and cut, as Cost Explorer's errors are.
    let detail = match (
        code.as_deref().map(crate::log::peer),
        element(&text, "Message"),
    ) {
        // A SignatureDoesNotMatch may quote the canonical request: keep it out.
        (Some(code), Some(message)) => {
            let message = message.split("The Canonical String").next().unwrap_or("");
            format!(
                "{code}: {}",
                costexplorer::one_line(message, crate::log::PEER_TEXT_MAX)
            )
        }
        (Some(code), None) => code,
        _ if body.is_empty() => "an empty body".to_string(),
        _ => costexplorer::snippet(body),
    };
    CredError {
        transient: kind == ErrorKind::Transient || sts_transient,
        message: format!("STS refused {action} (HTTP {status}): {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/fixtures/sts/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn caller_identity_is_a_form_post_and_its_account_is_read() {
        let r = get_caller_identity("https://sts.us-east-1.amazonaws.com");
        assert_eq!(r.url, "https://sts.us-east-1.amazonaws.com/");
        assert_eq!(r.body, b"Action=GetCallerIdentity&Version=2011-06-15");
        let answer = b"<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/b</Arn><UserId>AIDA</UserId><Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>";
        assert_eq!(
            parse_account("GetCallerIdentity", answer).unwrap(),
            "123456789012"
        );
        let e = parse_account("GetCallerIdentity", b"<Account>12</Account>").unwrap_err();
        assert!(
            e.message.contains("without a 12-digit Account"),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_endpoint_is_regional_unless_overridden() {
        let none = |_: &str| None;
        assert_eq!(
            endpoint("eu-west-1", &none),
            "https://sts.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            endpoint("cn-north-1", &none),
            "https://sts.cn-north-1.amazonaws.com.cn"
        );
        let both = |k: &str| match k {
            "AWS_ENDPOINT_URL_STS" => Some("http://127.0.0.1:5000/".to_string()),
            "AWS_ENDPOINT_URL" => Some("http://other".to_string()),
            _ => None,
        };
        assert_eq!(endpoint("eu-west-1", &both), "http://127.0.0.1:5000");
        let general = |k: &str| (k == "AWS_ENDPOINT_URL").then(|| "http://other".to_string());
        assert_eq!(endpoint("eu-west-1", &general), "http://other");
    }

    #[test]
    fn assume_role_is_a_form_post_with_every_parameter_encoded() {
        let role = RoleRequest {
            role_arn: "arn:aws:iam::123456789012:role/path/billing".into(),
            session_name: "source-aws-billing".into(),
            external_id: Some("a b+c/=".into()),
            duration_seconds: Some(900),
        };
        let r = assume_role("https://sts.us-east-1.amazonaws.com", &role);
        assert_eq!(r.method, "POST");
        assert_eq!(r.url, "https://sts.us-east-1.amazonaws.com/");
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            "Action=AssumeRole&Version=2011-06-15\
             &RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fpath%2Fbilling\
             &RoleSessionName=source-aws-billing&ExternalId=a%20b%2Bc%2F%3D&DurationSeconds=900"
        );
        let w = assume_role_with_web_identity("http://h", &role, "eyJ.x-y");
        let body = String::from_utf8(w.body).unwrap();
        assert!(
            body.starts_with("Action=AssumeRoleWithWebIdentity&"),
            "{body}"
        );
        assert!(body.contains("&WebIdentityToken=eyJ.x-y"), "{body}");
        assert!(!body.contains("ExternalId"), "{body}");
    }

    /// Recorded from moto's server (fixtures/sts/README.md).
    #[test]
    fn answers_recorded_from_moto_are_read() {
        for (file, action) in [
            ("assume_role.xml", "AssumeRole"),
            (
                "assume_role_with_web_identity.xml",
                "AssumeRoleWithWebIdentity",
            ),
        ] {
            let a = parse_answer(action, &fixture(file)).unwrap();
            assert!(a.credentials.access_key_id.starts_with("ASIA"), "{file}");
            assert_eq!(a.credentials.secret_access_key.len(), 40, "{file}");
            assert!(a.credentials.session_token.as_ref().unwrap().len() > 100);
            assert!(
                a.arn.starts_with("arn:aws:sts::123456789012:assumed-role/"),
                "{}",
                a.arn
            );
            assert!(a.expiration.year() >= 2026, "{file}");
        }
    }

    #[test]
    fn an_answer_without_credentials_is_an_error_that_names_what_is_missing() {
        let e =
            parse_answer("AssumeRole", b"<AssumeRoleResponse></AssumeRoleResponse>").unwrap_err();
        assert!(e.message.contains("without Credentials"), "{}", e.message);
        let no_expiry = b"<Credentials><AccessKeyId>A</AccessKeyId></Credentials>";
        let e = parse_answer("AssumeRole", no_expiry).unwrap_err();
        assert!(e.message.contains("Expiration"), "{}", e.message);
    }

    #[test]
    fn errors_recorded_from_moto_are_classified() {
        let denied = parse_error("AssumeRole", 403, &fixture("access_denied.xml"));
        assert!(!denied.transient);
        assert!(
            denied
                .message
                .starts_with("STS refused AssumeRole (HTTP 403): AccessDenied: "),
            "{}",
            denied.message
        );
        let signature = parse_error("AssumeRole", 403, &fixture("signature_does_not_match.xml"));
        assert!(!signature.transient);
        assert!(
            signature.message.contains("SignatureDoesNotMatch"),
            "{}",
            signature.message
        );
        let quoting = b"<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>Check your key. The Canonical String for this request should have been 'POST / x-amz-security-token:IQo'</Message></Error></ErrorResponse>";
        let e = parse_error("AssumeRole", 403, quoting).message;
        assert!(e.ends_with("SignatureDoesNotMatch: Check your key."), "{e}");
        let throttled = b"<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>";
        assert!(parse_error("AssumeRole", 400, throttled).transient);
        assert!(parse_error("AssumeRole", 503, b"").transient);
        assert!(parse_error("AssumeRole", 500, b"<html>oops</html>").transient);
    }

    #[test]
    fn control_characters_in_an_error_are_escaped() {
        let forged = "<ErrorResponse><Error><Code>Throttling\u{1b}[2J</Code><Message>slow\r2026-11-30T00:00:00Z ERROR forged &#x1b;\u{1b}]0;title\u{7}</Message></Error></ErrorResponse>";
        let e = parse_error("AssumeRole", 400, forged.as_bytes()).message;
        assert!(!e.contains(|c: char| c.is_control()), "{e:?}");
        assert!(
            e.ends_with(
                "Throttling\\u{1b}[2J: slow 2026-11-30T00:00:00Z ERROR forged &#x1b;\\u{1b}]0;title\\u{7}"
            ),
            "{e}"
        );
    }

    #[test]
    fn times_with_and_without_fractions() {
        let t = parse_time("2026-11-30T12:00:00Z").unwrap();
        assert_eq!(t.unix_timestamp(), 1_796_040_000);
        assert_eq!(parse_time("2026-11-30T12:00:00.123Z").unwrap().second(), 0);
        assert!(parse_time("tomorrow").is_none());
    }
}
