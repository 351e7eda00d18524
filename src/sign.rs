//! SigV4 headers for a Cost Explorer request, via aws-sigv4, with the time passed in.

use crate::config::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use std::time::SystemTime;

/// The headers to add (`x-amz-date`, `authorization`, and `x-amz-security-token` with a
/// session token) so that `method url headers body` is signed for `service` in `region`.
pub fn sigv4_headers(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let identity: Identity = aws_credential_types::Credentials::new(
        &credentials.access_key_id,
        &credentials.secret_access_key,
        credentials.session_token.clone(),
        None,
        "source-aws-billing",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("cannot sign the request: {e}"))?
        .into();
    let request = SignableRequest::new(method, url, headers.iter().copied(), SignableBody::Bytes(body))
        .map_err(|e| format!("cannot sign a request to {url}: {e}"))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| format!("cannot sign a request to {url}: {e}"))?
        .into_parts();
    let (out, _params) = instructions.into_parts();
    Ok(out.into_iter().map(|h| (h.name().to_string(), h.value().to_string())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Deserialize)]
    struct Case {
        name: String,
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
        region: String,
        service: String,
        amz_date: String,
        method: String,
        url: String,
        headers: BTreeMap<String, String>,
        body: String,
        expected: BTreeMap<String, String>,
    }

    /// Expected values come from botocore via fixtures/sigv4/generate.py.
    #[test]
    fn matches_botocore_known_answers() {
        let path = format!("{}/fixtures/sigv4/known_answers.json", env!("CARGO_MANIFEST_DIR"));
        #[derive(Deserialize)]
        struct File {
            cases: Vec<Case>,
        }
        let cases = serde_json::from_str::<File>(&std::fs::read_to_string(path).unwrap()).unwrap().cases;
        assert!(cases.len() >= 4);
        for case in cases {
            let when = time::PrimitiveDateTime::parse(
                &case.amz_date,
                time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
            )
            .unwrap()
            .assume_utc();
            let credentials = Credentials {
                access_key_id: case.access_key_id,
                secret_access_key: case.secret_access_key,
                session_token: case.session_token,
            };
            let headers: Vec<(&str, &str)> = case.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let got: BTreeMap<String, String> = sigv4_headers(
                &case.method,
                &case.url,
                &headers,
                case.body.as_bytes(),
                &credentials,
                &case.region,
                &case.service,
                when.into(),
            )
            .unwrap()
            .into_iter()
            .collect();
            assert_eq!(got, case.expected, "case {}", case.name);
        }
    }
}
