//! SigV4 headers for an AWS request (Cost Explorer, STS), via aws-sigv4, with the time passed in.

use crate::keys::Credentials;
use aws_sigv4::http_request::{self, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use std::time::SystemTime;

/// What SigV4 signs of a request: all of it, as it will be sent.
#[derive(Debug, Clone, Copy)]
pub struct Signable<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// The headers that sign `request` for `service` in `region` at `time`: `x-amz-date`,
/// `authorization` (and `x-amz-security-token` with a session token).
pub fn headers(
    request: Signable,
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
    let url = request.url;
    let signable = SignableRequest::new(
        request.method,
        url,
        request
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(request.body),
    )
    .map_err(|e| format!("cannot sign a request to {}: {e}", crate::urls::redact(url)))?;
    let (instructions, _signature) = http_request::sign(signable, &params)
        .map_err(|e| format!("cannot sign a request to {}: {e}", crate::urls::redact(url)))?
        .into_parts();
    let (headers, _params) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name().to_string(), h.value().to_string()))
        .collect())
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
        let path = format!(
            "{}/fixtures/sigv4/known_answers.json",
            env!("CARGO_MANIFEST_DIR")
        );
        #[derive(Deserialize)]
        struct File {
            cases: Vec<Case>,
        }
        let cases = serde_json::from_str::<File>(&std::fs::read_to_string(path).unwrap())
            .unwrap()
            .cases;
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
            let request = Signable {
                method: &case.method,
                url: &case.url,
                headers: &case.headers.into_iter().collect::<Vec<_>>(),
                body: case.body.as_bytes(),
            };
            let got: BTreeMap<String, String> = headers(
                request,
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
