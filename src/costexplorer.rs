//! GetCostAndUsage: the request body, the response pages, and what an error means.

use crate::breakdown::Breakdown;
use crate::event::{Group as LineGroup, Line, Metric};
use crate::yaml::{ConfigError, Doc};
use serde::{Deserialize, Serialize};
use time::Date;

pub const TARGET: &str = "AWSInsightsIndexService.GetCostAndUsage";
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Body<'a> {
    time_period: Period,
    granularity: &'a str,
    metrics: &'a [String],
    group_by: Vec<GroupBy<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    filter: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<&'a str>,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Period {
    pub start: String,
    pub end: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GroupBy<'a> {
    r#type: &'static str,
    key: &'a str,
}

/// The JSON body for the inclusive day range `first..=last` (End is exclusive on the wire).
pub fn request_body(
    first: Date,
    last: Date,
    breakdown: &Breakdown,
    page_token: Option<&str>,
) -> String {
    let body = Body {
        time_period: Period {
            start: crate::schedule::format_date(first),
            end: crate::schedule::format_date(last.next_day().unwrap_or(last)),
        },
        granularity: "DAILY",
        metrics: &breakdown.metrics,
        group_by: breakdown
            .group_by
            .iter()
            .map(|g| {
                let (r#type, key) = g.wire();
                GroupBy { r#type, key }
            })
            .collect(),
        filter: breakdown.filter.as_ref(),
        next_page_token: page_token,
    };
    serde_json::to_string(&body).expect("plain structs always serialize")
}

/// One GetCostAndUsage answer page as sent; `answer::Check` decides whether it can be trusted.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Answer {
    pub results_by_time: Option<Vec<DayResult>>,
    pub next_page_token: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct DayResult {
    pub time_period: Period,
    pub groups: Option<Vec<Group>>,
    /// Cost Explorer's numbers for the day may still change.
    #[serde(default)]
    pub estimated: bool,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct Group {
    pub keys: Vec<String>,
    /// Name and value of each metric, in the order sent (a list: lighter than a map).
    #[serde(deserialize_with = "metric_list")]
    pub metrics: Vec<(String, MetricValue)>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "PascalCase")]
pub struct MetricValue {
    pub amount: String,
    pub unit: String,
}

fn metric_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<(String, MetricValue)>, D::Error> {
    struct Visit;
    impl<'de> serde::de::Visitor<'de> for Visit {
        type Value = Vec<(String, MetricValue)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of metric names to {Amount, Unit}")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(entry) = map.next_entry()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Visit)
}

impl Answer {
    /// The token for the next page; an empty one ends the paging like a missing one.
    pub fn next_token(&self) -> Option<&str> {
        self.next_page_token.as_deref().filter(|t| !t.is_empty())
    }

    /// The billing lines of a checked answer (each group has one key per `group_by` entry and
    /// every metric: `answer::Check`), amounts moved as the exact strings sent, metrics in
    /// the order of `metric`. One at a time: the parsed page shrinks as its lines go, it is
    /// never held twice.
    pub fn into_lines<'a>(self, breakdown: &'a Breakdown) -> impl Iterator<Item = Line> + 'a {
        self.results_by_time
            .unwrap_or_default()
            .into_iter()
            .flat_map(move |result| {
                let date = result.time_period.start;
                let estimated = result.estimated;
                result
                    .groups
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |group| Line {
                        estimated,
                        ..breakdown.line(date.clone(), group)
                    })
            })
    }
}

impl Breakdown {
    /// One group of a result as a line: its keys by `group_by`, its metrics by `metric`.
    fn line(&self, date: String, mut group: Group) -> Line {
        let mut metrics = Vec::with_capacity(self.metrics.len());
        for name in &self.metrics {
            if let Some(i) = group.metrics.iter().position(|(n, _)| n == name) {
                let (name, value) = group.metrics.swap_remove(i);
                metrics.push(Metric {
                    name,
                    amount: value.amount,
                    unit: value.unit,
                });
            }
        }
        let groups = self
            .group_by
            .iter()
            .zip(&group.keys)
            .map(|(by, key)| LineGroup {
                by: by.clone(),
                value: by.value_of(key),
            })
            .collect();
        Line {
            date,
            groups,
            metrics,
            routing: self.routing,
            estimated: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Throttling, 5xx, network: try again soon.
    Transient,
    /// Keys, signature, permission: retrying now will not help.
    Credentials,
    /// The request itself is wrong, or the answer is not what Cost Explorer sends.
    Permanent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeError {
    pub kind: ErrorKind,
    pub message: String,
}

/// Reads a 2xx body as an answer page (not yet checked against the request).
pub fn parse_answer(body: &[u8]) -> Result<Answer, String> {
    serde_json::from_slice(body).map_err(|e| {
        format!(
            "not a GetCostAndUsage result ({}): {}",
            crate::log::peer(&e.to_string()),
            snippet(body)
        )
    })
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "__type")]
    kind: Option<String>,
    #[serde(alias = "Message")]
    message: Option<String>,
}

/// Interprets a non-2xx answer: a readable line and whether retrying can help.
pub fn parse_error(status: u16, body: &[u8]) -> CeError {
    refusal("Cost Explorer", status, body)
}

/// `parse_error` for any AWS JSON service (EventBridge too), named `service` in the line.
pub fn refusal(service: &str, status: u16, body: &[u8]) -> CeError {
    let parsed = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .or_else(|| xml_error(body));
    let Some(ErrorBody {
        kind: Some(full),
        message,
    }) = parsed
    else {
        let kind = match status {
            429 | 500.. => ErrorKind::Transient,
            401 | 403 => ErrorKind::Credentials,
            _ => ErrorKind::Permanent,
        };
        let what = if body.is_empty() {
            "an empty body".to_string()
        } else {
            format!("a non-JSON body: {}", snippet(body))
        };
        return CeError {
            kind,
            message: format!("{service} answered HTTP {status} with {what}"),
        };
    };
    // "com.amazon.coral.service#InvalidSignatureException" → "InvalidSignatureException"
    let name = full
        .rsplit('#')
        .next()
        .unwrap_or(&full)
        .split(':')
        .next()
        .unwrap_or("")
        .to_string();
    let kind = match name.as_str() {
        "ThrottlingException"
        | "LimitExceededException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "ServiceUnavailableException"
        | "ServiceUnavailable"
        | "InternalFailure"
        | "InternalServerError"
        | "InternalServerException" => ErrorKind::Transient,
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "InvalidClientTokenId"
        | "ExpiredTokenException"
        | "ExpiredToken"
        | "AccessDeniedException"
        | "AccessDenied"
        | "MissingAuthenticationToken"
        | "IncompleteSignature"
        | "InvalidAccessKeyId"
        | "NotAuthorized"
        | "AuthFailure" => ErrorKind::Credentials,
        _ if status == 429 || status >= 500 => ErrorKind::Transient,
        _ if status == 401 || status == 403 => ErrorKind::Credentials,
        _ => ErrorKind::Permanent,
    };
    // An InvalidSignatureException may quote the canonical request, signed headers and all.
    let message = message
        .map(|m| {
            m.split("The Canonical String")
                .next()
                .unwrap_or("")
                .to_string()
        })
        .map(|m| format!(": {}", one_line(&m, 300)))
        .unwrap_or_default();
    CeError {
        kind,
        message: format!(
            "{service} refused the request (HTTP {status}): {}{message}",
            crate::log::peer(&name)
        ),
    }
}

/// An AWS query-style XML error (`<Error><Code>…</Code><Message>…</Message>`), as some
/// front ends and emulators send even for JSON services.
fn xml_error(body: &[u8]) -> Option<ErrorBody> {
    let text = std::str::from_utf8(body).ok()?;
    let element = |name: &str| {
        let start = text.find(&format!("<{name}>"))? + name.len() + 2;
        let end = start + text[start..].find(&format!("</{name}>"))?;
        Some(text[start..end].trim().to_string())
    };
    Some(ErrorBody {
        kind: Some(element("Code")?),
        message: element("Message"),
    })
}

/// The first bytes of a body as one printable line.
pub fn snippet(body: &[u8]) -> String {
    let head = &body[..body.len().min(1024)];
    format!("\"{}\"", one_line(&String::from_utf8_lossy(head), 120))
}

/// Peer text as one line: whitespace runs as one space, control characters escaped, cut at `max`.
pub(crate) fn one_line(s: &str, max: usize) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::log::escape(&joined, max)
}

/// The config key this module reads: `endpoint`.
pub const KEYS: [&str; 1] = ["endpoint"];
pub const DEFAULT_ENDPOINT: &str = "https://ce.us-east-1.amazonaws.com";

/// The Cost Explorer endpoint: the config's `endpoint`, else the AWS variables, else us-east-1.
pub fn endpoint_setting(
    file: &Doc,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let (endpoint, from) = match file.string("endpoint")? {
        Some(e) => (e, format!("{}: endpoint", file.name)),
        None => match ["AWS_ENDPOINT_URL_COST_EXPLORER", "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|k| env(k).filter(|v| !v.is_empty()).map(|v| (v, k.to_string())))
        {
            Some(found) => found,
            None => (DEFAULT_ENDPOINT.to_string(), "endpoint".to_string()),
        },
    };
    crate::urls::check_http_url(&from, endpoint.trim()).map_err(ConfigError)?;
    Ok(endpoint.trim().trim_end_matches('/').to_string())
}

/// `https://ce.eu-west-1.amazonaws.com` → `eu-west-1`.
pub fn region_of(endpoint: &str) -> Option<&str> {
    let host = crate::urls::url_host(endpoint);
    let rest = host.strip_prefix("ce.")?;
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))?;
    (!region.is_empty() && !region.contains('.')).then_some(region)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn metric(name: &str) -> Breakdown {
        Breakdown {
            metrics: vec![name.to_string()],
            ..Breakdown::default()
        }
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/fixtures/ce/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn body_is_the_documented_request_with_exclusive_end() {
        assert_eq!(
            request_body(
                date!(2022 - 06 - 13),
                date!(2022 - 06 - 13),
                &metric("BlendedCost"),
                None
            ),
            r#"{"TimePeriod":{"Start":"2022-06-13","End":"2022-06-14"},"Granularity":"DAILY","Metrics":["BlendedCost"],"GroupBy":[{"Type":"DIMENSION","Key":"SERVICE"}]}"#
        );
        let paged = request_body(
            date!(2022 - 12 - 30),
            date!(2022 - 12 - 31),
            &metric("UnblendedCost"),
            Some("tok"),
        );
        assert!(
            paged.contains(r#""Start":"2022-12-30","End":"2023-01-01""#),
            "{paged}"
        );
        assert!(paged.ends_with(r#","NextPageToken":"tok"}"#), "{paged}");
    }

    #[test]
    fn pages_keep_amounts_as_exact_strings() {
        let first = parse_answer(&fixture("page-1-of-2.json")).unwrap();
        assert_eq!(first.next_token(), Some("AAMA-EXAMPLE-TOKEN-2"));
        let lines: Vec<_> = first.into_lines(&metric("BlendedCost")).collect();
        let amounts: Vec<_> = lines.iter().map(|l| l.amount()).collect();
        assert_eq!(amounts, ["0.01", "12.294", "0.0000001234"]);
        assert_eq!(
            lines[1].groups[0].value,
            "Amazon Elastic Compute Cloud - Compute"
        );
        assert_eq!(lines[1].date, "2022-06-13");
        let last = parse_answer(&fixture("page-2-of-2.json")).unwrap();
        assert_eq!(last.next_token(), None);
        let lines: Vec<_> = last.into_lines(&metric("BlendedCost")).collect();
        assert_eq!(lines[0].amount(), "-12.5");
        assert_eq!(lines[1].amount(), "3.1000000000");
    }

    #[test]
    fn a_range_dates_each_line_by_its_result_and_empty_token_ends() {
        let page = parse_answer(&fixture("range-3-days.json")).unwrap();
        assert_eq!(page.next_token(), None);
        let lines: Vec<_> = page.into_lines(&metric("BlendedCost")).collect();
        let dates: Vec<_> = lines.iter().map(|l| l.date.as_str()).collect();
        assert_eq!(dates, ["2022-06-11", "2022-06-13", "2022-06-13"]);
        // Each line carries the Estimated flag of its own ResultsByTime entry.
        let estimated: Vec<_> = lines.iter().map(|l| l.estimated).collect();
        assert_eq!(estimated, [false, true, true]);
    }

    fn breakdown() -> Breakdown {
        use crate::breakdown::GroupBy;
        Breakdown {
            group_by: vec![
                GroupBy::Dimension("LINKED_ACCOUNT"),
                GroupBy::Tag("team".into()),
            ],
            metrics: vec!["UnblendedCost".into(), "UsageQuantity".into()],
            filter: Some(
                serde_json::json!({"Not": {"Dimensions": {"Key": "RECORD_TYPE", "Values": ["Credit"]}}}),
            ),
            routing: true,
        }
    }

    #[test]
    fn a_breakdown_body_groups_by_each_entry_asks_every_metric_and_sends_the_filter() {
        assert_eq!(
            request_body(
                date!(2022 - 06 - 13),
                date!(2022 - 06 - 13),
                &breakdown(),
                None
            ),
            r#"{"TimePeriod":{"Start":"2022-06-13","End":"2022-06-14"},"Granularity":"DAILY","Metrics":["UnblendedCost","UsageQuantity"],"GroupBy":[{"Type":"DIMENSION","Key":"LINKED_ACCOUNT"},{"Type":"TAG","Key":"team"}],"Filter":{"Not":{"Dimensions":{"Key":"RECORD_TYPE","Values":["Credit"]}}}}"#
        );
        let mut cc = breakdown();
        cc.group_by = vec![crate::breakdown::GroupBy::CostCategory("Teams".into())];
        let body = request_body(date!(2022 - 06 - 13), date!(2022 - 06 - 13), &cc, None);
        assert!(
            body.contains(r#""GroupBy":[{"Type":"COST_CATEGORY","Key":"Teams"}]"#),
            "{body}"
        );
    }

    #[test]
    fn breakdown_groups_keep_each_key_and_every_metric() {
        let body = br#"{"ResultsByTime":[{"TimePeriod":{"Start":"2022-06-13","End":"2022-06-14"},"Estimated":true,"Groups":[
            {"Keys":["123456789012","team$web"],"Metrics":{"UnblendedCost":{"Amount":"1.10","Unit":"USD"},"UsageQuantity":{"Amount":"24","Unit":"Hrs"}}},
            {"Keys":["123456789012","team$"],"Metrics":{"UsageQuantity":{"Amount":"0","Unit":"N/A"},"UnblendedCost":{"Amount":"-0.0000000001","Unit":"USD"}}}]}]}"#;
        let lines = parse_answer(body)
            .unwrap()
            .into_lines(&breakdown())
            .collect::<Vec<_>>();
        let line = &lines[0];
        assert_eq!(line.groups[0].value, "123456789012");
        assert_eq!(line.groups[1].value, "web");
        assert_eq!(lines[1].groups[1].value, "", "untagged");
        assert!(line.routing);
        let metrics: Vec<_> = lines[1]
            .metrics
            .iter()
            .map(|m| (m.name.as_str(), m.amount.as_str(), m.unit.as_str()))
            .collect();
        assert_eq!(
            metrics,
            [
                ("UnblendedCost", "-0.0000000001", "USD"),
                ("UsageQuantity", "0", "N/A")
            ],
            "in the order asked, whatever the order sent"
        );
    }

    #[test]
    fn errors_are_classified_and_readable() {
        let e = parse_error(400, &fixture("error-invalid-signature.json"));
        assert_eq!(e.kind, ErrorKind::Credentials);
        assert!(e.message.starts_with("Cost Explorer refused the request (HTTP 400): InvalidSignatureException: The request signature we calculated"), "{}", e.message);
        let e = parse_error(400, &fixture("error-access-denied.json"));
        assert_eq!(e.kind, ErrorKind::Credentials);
        assert!(
            e.message
                .contains("AccessDeniedException: User: arn:aws:iam"),
            "{}",
            e.message
        );
        assert_eq!(
            parse_error(400, &fixture("error-unrecognized-client.json")).kind,
            ErrorKind::Credentials
        );
        assert_eq!(
            parse_error(400, &fixture("error-limit-exceeded.json")).kind,
            ErrorKind::Transient
        );
        assert_eq!(
            parse_error(400, &fixture("error-validation.json")).kind,
            ErrorKind::Permanent
        );
        assert_eq!(
            parse_error(500, br#"{"__type":"Whatever"}"#).kind,
            ErrorKind::Transient
        );
    }

    #[test]
    fn xml_errors_are_read_like_json_ones() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?><ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message><Type>Sender</Type></Error></Errors></ErrorResponse>"#;
        let e = parse_error(403, body);
        assert_eq!(e.kind, ErrorKind::Credentials);
        assert_eq!(
            e.message,
            "Cost Explorer refused the request (HTTP 403): SignatureDoesNotMatch: The request signature we calculated does not match the signature you provided."
        );
    }

    #[test]
    fn a_non_json_error_page_is_reported_with_status_and_snippet() {
        let e = parse_error(502, &fixture("error-proxy.html"));
        assert_eq!(e.kind, ErrorKind::Transient);
        assert!(e.message.starts_with("Cost Explorer answered HTTP 502 with a non-JSON body: \"<html><head><title>502 Bad Gateway"), "{}", e.message);
        assert!(!e.message.contains('\n'));
        let e = parse_answer(&fixture("error-proxy.html")).unwrap_err();
        assert!(e.starts_with("not a GetCostAndUsage result"), "{e}");
        assert_eq!(
            parse_error(403, b"").message,
            "Cost Explorer answered HTTP 403 with an empty body"
        );
    }

    #[test]
    fn region_comes_from_the_endpoint_host() {
        assert_eq!(
            region_of("https://ce.cn-northwest-1.amazonaws.com.cn"),
            Some("cn-northwest-1")
        );
        assert_eq!(region_of("http://127.0.0.1:5000"), None);
    }
}
