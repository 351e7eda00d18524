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

/// Where STS requests go and the region they are signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub signing_region: String,
}

/// The regions whose STS `AWS_STS_REGIONAL_ENDPOINTS=legacy` sends to the global endpoint
/// (botocore's LEGACY_GLOBAL_STS_REGIONS).
const LEGACY_GLOBAL: [&str; 16] = [
    "ap-northeast-1",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "aws-global",
    "ca-central-1",
    "eu-central-1",
    "eu-north-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

/// STS as the AWS SDKs find it. The region is `AWS_REGION`, else `AWS_DEFAULT_REGION`,
/// else `fallback` (Cost Explorer's signing region); the endpoint is
/// `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL` (signed for the region), else the
/// region's own (`AWS_STS_REGIONAL_ENDPOINTS=regional`, the default), or with `legacy` the
/// global `sts.amazonaws.com`, signed for us-east-1, for the regions that had it.
/// A bad variable is one line naming it.
pub fn endpoint(fallback: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Endpoint, String> {
    let set = |k: &str| {
        env(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let region = match ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .into_iter()
        .find_map(|k| set(k).map(|v| (k, v)))
    {
        Some((var, r)) if !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
            return Err(format!(
                "{var}: expected a region name like eu-west-1, found {r:?}"
            ));
        }
        Some((_, r)) => r,
        None => fallback.to_string(),
    };
    let legacy = match set("AWS_STS_REGIONAL_ENDPOINTS").as_deref() {
        None | Some("regional") => false,
        Some("legacy") => true,
        Some(other) => {
            return Err(format!(
                "AWS_STS_REGIONAL_ENDPOINTS: expected regional or legacy, found {other:?}"
            ));
        }
    };
    let overridden = ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|k| set(k));
    let global = |url: &str| Endpoint {
        url: url.to_string(),
        signing_region: "us-east-1".to_string(),
    };
    Ok(match overridden {
        Some(url) => Endpoint {
            url: url.trim_end_matches('/').to_string(),
            signing_region: region,
        },
        None if region == "aws-global" => global("https://sts.amazonaws.com"),
        None if legacy && LEGACY_GLOBAL.contains(&region.as_str()) => {
            global("https://sts.amazonaws.com")
        }
        None => Endpoint {
            url: format!("https://sts.{region}.{}", dns_suffix(&region)),
            signing_region: region,
        },
    })
}

/// The domain of a region's partition (botocore's partitions.json).
fn dns_suffix(region: &str) -> &'static str {
    [
        ("cn-", "amazonaws.com.cn"),
        ("eusc-", "amazonaws.eu"),
        ("us-isob-", "sc2s.sgov.gov"),
        ("us-isof-", "csp.hci.ic.gov"),
        ("us-iso-", "c2s.ic.gov"),
        ("eu-isoe-", "cloud.adc-e.uk"),
    ]
    .iter()
    .find(|(prefix, _)| region.starts_with(prefix))
    .map_or("amazonaws.com", |(_, suffix)| suffix)
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

    /// The expectations are botocore 1.44's answers for the same variables (the URL an STS
    /// client sends to and the region of its signing scope).
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
    fn the_endpoint_follows_the_region_variables_as_botocore_does() {
        let at = |fallback: &str, vars: &[(&str, &str)]| {
            let env = |k: &str| {
                vars.iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v.to_string())
            };
            endpoint(fallback, &env).map(|e| (e.url, e.signing_region))
        };
        let ok = |url: &str, region: &str| Ok((url.to_string(), region.to_string()));
        let legacy = ("AWS_STS_REGIONAL_ENDPOINTS", "legacy");
        for (fallback, vars, want) in [
            // No region variable: Cost Explorer's signing region, regionally.
            (
                "us-east-1",
                &[][..],
                ok("https://sts.us-east-1.amazonaws.com", "us-east-1"),
            ),
            (
                "cn-northwest-1",
                &[],
                ok(
                    "https://sts.cn-northwest-1.amazonaws.com.cn",
                    "cn-northwest-1",
                ),
            ),
            (
                "us-east-1",
                &[("AWS_REGION", "eu-west-1")],
                ok("https://sts.eu-west-1.amazonaws.com", "eu-west-1"),
            ),
            (
                "us-east-1",
                &[("AWS_DEFAULT_REGION", "eu-west-1")],
                ok("https://sts.eu-west-1.amazonaws.com", "eu-west-1"),
            ),
            (
                "us-east-1",
                &[
                    ("AWS_REGION", "ap-east-1"),
                    ("AWS_DEFAULT_REGION", "eu-west-1"),
                ],
                ok("https://sts.ap-east-1.amazonaws.com", "ap-east-1"),
            ),
            (
                "us-east-1",
                &[("AWS_REGION", "eu-west-1"), legacy],
                ok("https://sts.amazonaws.com", "us-east-1"),
            ),
            (
                "us-east-1",
                &[("AWS_REGION", "ap-east-1"), legacy],
                ok("https://sts.ap-east-1.amazonaws.com", "ap-east-1"),
            ),
            (
                "us-east-1",
                &[("AWS_REGION", "cn-north-1"), legacy],
                ok("https://sts.cn-north-1.amazonaws.com.cn", "cn-north-1"),
            ),
            (
                "us-east-1",
                &[("AWS_REGION", "aws-global")],
                ok("https://sts.amazonaws.com", "us-east-1"),
            ),
            (
                "us-east-1",
                &[("AWS_REGION", "us-gov-west-1"), legacy],
                ok("https://sts.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
            ),
            (
                "us-east-1",
                &[("AWS_REGION", "eusc-de-east-1")],
                ok("https://sts.eusc-de-east-1.amazonaws.eu", "eusc-de-east-1"),
            ),
            (
                "us-east-1",
                &[("AWS_REGION", "us-iso-east-1")],
                ok("https://sts.us-iso-east-1.c2s.ic.gov", "us-iso-east-1"),
            ),
            (
                "us-east-1",
                &[
                    ("AWS_REGION", "eu-west-1"),
                    ("AWS_STS_REGIONAL_ENDPOINTS", ""),
                ],
                ok("https://sts.eu-west-1.amazonaws.com", "eu-west-1"),
            ),
            // An override is signed for the region, in either mode.
            (
                "us-east-1",
                &[
                    ("AWS_REGION", "eu-west-1"),
                    legacy,
                    ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:5000/"),
                    ("AWS_ENDPOINT_URL", "http://other"),
                ],
                ok("http://127.0.0.1:5000", "eu-west-1"),
            ),
            (
                "us-east-1",
                &[("AWS_ENDPOINT_URL", "http://other")],
                ok("http://other", "us-east-1"),
            ),
            (
                "us-east-1",
                &[
                    ("AWS_REGION", "eu-west-1"),
                    ("AWS_STS_REGIONAL_ENDPOINTS", "REGIONAL"),
                ],
                Err(
                    "AWS_STS_REGIONAL_ENDPOINTS: expected regional or legacy, found \"REGIONAL\""
                        .to_string(),
                ),
            ),
            (
                "us-east-1",
                &[("AWS_REGION", "eu west 1")],
                Err(
                    "AWS_REGION: expected a region name like eu-west-1, found \"eu west 1\""
                        .to_string(),
                ),
            ),
        ] {
            assert_eq!(at(fallback, vars), want, "{fallback} {vars:?}");
        }
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
