//! EventBridge PutEvents: the bus target, entries and requests within its limits, and what each answer entry means.
//!
//! Shapes from botocore's model (`events/2015-10-07/service-2.json`, JSON 1.1 protocol):
//! `Entries` holds 1 to 10 entries, `Time` is a timestamp (epoch seconds on the wire), and
//! each result entry has an `EventId` or an `ErrorCode` and `ErrorMessage`, in the order sent.

use crate::yaml::{ConfigError, err};
use serde_json::Value;
use std::ops::Range;

pub const PUT_EVENTS: &str = "AWSEvents.PutEvents";
pub const DESCRIBE_EVENT_BUS: &str = "AWSEvents.DescribeEventBus";
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// The SigV4 signing name.
pub const SERVICE: &str = "events";
/// The model's `PutEventsRequestEntryList` max.
pub const MAX_ENTRIES: usize = 10;
/// The bytes of all entries of one request, counted as `entry_size` does: 256 KiB.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;
/// What a `Time` counts in an entry's size, whatever its value.
const TIME_BYTES: usize = 14;
/// Read before a bus name or ARN in `target`.
pub const PREFIX: &str = "eventbridge:";

/// An `eventbridge:` target: the bus, the region its requests are signed for, where they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bus {
    /// As written: a name (`default`) or an ARN; each entry's `EventBusName`.
    pub name: String,
    /// The ARN's region, else (`locate`) the config's `region`.
    pub region: String,
    /// `https://events.<region>.amazonaws.com`, or an AWS_ENDPOINT_URL_EVENTBRIDGE /
    /// AWS_ENDPOINT_URL override (set by `locate`).
    pub endpoint: String,
}

impl Bus {
    /// `default`, `billing-events` or `arn:aws:events:eu-west-1:123456789012:event-bus/billing`
    /// (what follows `eventbridge:` in `from`). The region and endpoint come with `locate`.
    pub fn parse(from: &str, value: &str) -> Result<Bus, ConfigError> {
        let region = match value.strip_prefix("arn:") {
            Some(arn) => arn_region(arn),
            None => valid_name(value).then(String::new),
        };
        match region {
            Some(region) if value.len() <= 1600 => Ok(Bus {
                name: value.to_string(),
                region,
                endpoint: String::new(),
            }),
            _ => err(format!(
                "{from}: expected {PREFIX}<bus name or ARN> such as {PREFIX}default or \
                 {PREFIX}arn:aws:events:us-east-1:123456789012:event-bus/billing, found {:?}",
                format!("{PREFIX}{value}")
            )),
        }
    }

    /// Fills what the bus name leaves open: the region (the config's, unless the ARN named
    /// one) and the endpoint (AWS_ENDPOINT_URL_EVENTBRIDGE, else AWS_ENDPOINT_URL, else the
    /// region's, as the AWS SDKs choose it).
    pub fn locate(
        &mut self,
        region: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if self.region.is_empty() {
            self.region = region.to_string();
        }
        let set = ["AWS_ENDPOINT_URL_EVENTBRIDGE", "AWS_ENDPOINT_URL"]
            .into_iter()
            .find_map(|k| env(k).filter(|v| !v.trim().is_empty()).map(|v| (k, v)));
        self.endpoint = match set {
            Some((var, url)) => {
                crate::urls::check_http_url(var, url.trim()).map_err(ConfigError)?;
                url.trim().trim_end_matches('/').to_string()
            }
            None => regional_endpoint(&self.region),
        };
        Ok(())
    }
}

impl std::fmt::Display for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EventBridge bus {} in {} at {}",
            self.name,
            self.region,
            crate::urls::redact(&self.endpoint)
        )
    }
}

/// The bus name characters of the model's `NonPartnerEventBusNameOrArn`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// `aws:events:eu-west-1:123456789012:event-bus/billing` → `eu-west-1`.
fn arn_region(arn: &str) -> Option<String> {
    let mut parts = arn.splitn(5, ':');
    let (partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let name = resource.strip_prefix("event-bus/")?;
    let region_ok = region.split('-').count() >= 3
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ok = partition.starts_with("aws")
        && service == "events"
        && region_ok
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && valid_name(name);
    ok.then(|| region.to_string())
}

/// `https://events.eu-west-1.amazonaws.com`; China's regions are under `amazonaws.com.cn`.
pub fn regional_endpoint(region: &str) -> String {
    let suffix = if region.starts_with("cn-") { ".cn" } else { "" };
    format!("https://events.{region}.amazonaws.com{suffix}")
}

/// One spooled event as a PutEvents entry: its JSON and its size as EventBridge counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    json: String,
    pub size: usize,
}

/// The entry for a spooled event (a structured-mode CloudEvent line): `Source` its source,
/// `DetailType` its type, `Detail` the whole event, `Time` its time in whole seconds. The
/// error is the reason it can never be sent (too large, not an event).
pub fn entry(line: &str, bus: &str) -> Result<Entry, String> {
    // A Value, not a type of its own: serde_json's Value code is in the binary already.
    let event: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let text = |key: &str| event.get(key).and_then(Value::as_str);
    let (Some(source), Some(kind)) = (text("source"), text("type")) else {
        return Err("not a CloudEvent with a source and a type".into());
    };
    let time = text("time").and_then(epoch_seconds);
    let size = entry_size(source, kind, line, time.is_some());
    if size > MAX_REQUEST_BYTES {
        return Err(format!(
            "too large for EventBridge: {size} bytes as a PutEvents entry, at most {MAX_REQUEST_BYTES}; not sent"
        ));
    }
    let quoted = |s: &str| Value::from(s).to_string();
    let json = format!(
        "{{\"Source\":{},\"DetailType\":{},\"Detail\":{},\"EventBusName\":{}{}}}",
        quoted(source),
        quoted(kind),
        quoted(line),
        quoted(bus),
        time.map(|t| format!(",\"Time\":{t}")).unwrap_or_default()
    );
    Ok(Entry { json, size })
}

/// An entry's size as the EventBridge User Guide computes it ("Calculating PutEvents event
/// entry size"): 14 for a `Time`, plus the UTF-8 bytes of Source, DetailType and Detail
/// (there are no Resources).
pub fn entry_size(source: &str, detail_type: &str, detail: &str, has_time: bool) -> usize {
    let time = if has_time { TIME_BYTES } else { 0 };
    time + source.len() + detail_type.len() + detail.len()
}

/// RFC 3339 → whole seconds since the epoch (EventBridge keeps events to the second).
fn epoch_seconds(time: &str) -> Option<i64> {
    let format = time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(time, &format)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Consecutive runs of entries (by their sizes, in order) that make one PutEvents request
/// each: at most `MAX_ENTRIES` and `MAX_REQUEST_BYTES`. Every size must be within the bound.
pub fn requests(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, size) in sizes.iter().enumerate() {
        if i > start && (i - start == MAX_ENTRIES || bytes + size > MAX_REQUEST_BYTES) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// The PutEvents body for these entries.
pub fn body<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> String {
    let list: Vec<&str> = entries.into_iter().map(|e| e.json.as_str()).collect();
    format!("{{\"Entries\":[{}]}}", list.join(","))
}

/// The DescribeEventBus body for `bus` (a name or an ARN).
pub fn describe_body(bus: &str) -> String {
    format!("{{\"Name\":{}}}", Value::from(bus))
}

/// What EventBridge did with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// Taken, with EventBridge's id for it.
    Accepted(String),
    /// Throttled or an internal failure: worth sending again. The code and message.
    Transient(String),
    /// Any other error code: sending it again will not help. The code and message.
    Rejected(String),
}

/// The error codes PutEvents documents as retryable (InternalFailure, ThrottlingException),
/// and its modeled InternalException.
const TRANSIENT_CODES: [&str; 3] = [
    "ThrottlingException",
    "InternalFailure",
    "InternalException",
];

/// Reads a 2xx PutEvents answer for `sent` entries: one outcome per entry, in order. An
/// answer that does not account for every entry exactly is an error (the request is sent
/// again): nothing is taken as accepted that EventBridge did not give an id.
pub fn outcomes(body: &[u8], sent: usize) -> Result<Vec<Put>, String> {
    let answer: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "not a PutEvents result ({}): {}",
            crate::log::peer(&e.to_string()),
            crate::costexplorer::snippet(body)
        )
    })?;
    let entries = match answer.get("Entries").and_then(Value::as_array) {
        Some(list) if list.len() == sent => list,
        list => {
            let n = list.map_or(0, Vec::len);
            return Err(format!(
                "a PutEvents result with {n} entries for {sent} sent"
            ));
        }
    };
    let mut out = Vec::with_capacity(sent);
    for (i, e) in entries.iter().enumerate() {
        let text = |key: &str| e.get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
        out.push(match (text("EventId"), text("ErrorCode")) {
            (_, Some(code)) => {
                let message = text("ErrorMessage").unwrap_or_default();
                let reason = format!(
                    "{}: {}",
                    crate::log::peer(code),
                    crate::costexplorer::one_line(message, crate::log::PEER_TEXT_MAX)
                );
                match TRANSIENT_CODES.contains(&code) {
                    true => Put::Transient(reason),
                    false => Put::Rejected(reason),
                }
            }
            (Some(id), _) => Put::Accepted(id.to_string()),
            _ => {
                return Err(format!(
                    "a PutEvents result whose entry {} has neither EventId nor ErrorCode",
                    i + 1
                ));
            }
        });
    }
    let failed = out
        .iter()
        .filter(|p| !matches!(p, Put::Accepted(_)))
        .count();
    match answer.get("FailedEntryCount").and_then(Value::as_u64) {
        Some(n) if n != failed as u64 => Err(format!(
            "a PutEvents result with FailedEntryCount {n} and {failed} failed entries"
        )),
        _ => Ok(out),
    }
}

/// The bus's ARN from a 2xx DescribeEventBus answer.
pub fn described(body: &[u8]) -> Result<String, String> {
    let answer = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    match answer.get("Arn").and_then(Value::as_str) {
        Some(arn) if !arn.is_empty() => Ok(crate::log::peer(arn)),
        _ => Err(format!(
            "EventBridge sent an answer that is not a DescribeEventBus result: {}",
            crate::costexplorer::snippet(body)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn located(value: &str, region: &str, vars: &[(&str, &str)]) -> Bus {
        let mut bus = Bus::parse("config.yml: target", value).unwrap();
        bus.locate(region, &env(vars)).unwrap();
        bus
    }

    #[test]
    fn a_name_takes_the_config_region_and_an_arn_its_own() {
        let bus = located("default", "us-east-1", &[]);
        assert_eq!(bus.name, "default");
        assert_eq!(bus.region, "us-east-1");
        assert_eq!(bus.endpoint, "https://events.us-east-1.amazonaws.com");
        let arn = "arn:aws:events:eu-west-1:123456789012:event-bus/billing";
        let bus = located(arn, "us-east-1", &[]);
        assert_eq!((bus.name.as_str(), bus.region.as_str()), (arn, "eu-west-1"));
        assert_eq!(bus.endpoint, "https://events.eu-west-1.amazonaws.com");
        let cn = located(
            "arn:aws-cn:events:cn-north-1:123456789012:event-bus/b.c_d-e",
            "us-east-1",
            &[],
        );
        assert_eq!(cn.endpoint, "https://events.cn-north-1.amazonaws.com.cn");
        assert_eq!(
            cn.to_string(),
            "EventBridge bus arn:aws-cn:events:cn-north-1:123456789012:event-bus/b.c_d-e in cn-north-1 at https://events.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn the_endpoint_is_overridden_as_the_sdks_do() {
        let both = [
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1/"),
            ("AWS_ENDPOINT_URL_EVENTBRIDGE", "http://127.0.0.1:2/"),
        ];
        assert_eq!(
            located("default", "us-east-1", &both).endpoint,
            "http://127.0.0.1:2"
        );
        assert_eq!(
            located("default", "us-east-1", &both[..1]).endpoint,
            "http://127.0.0.1:1"
        );
        let empty = [("AWS_ENDPOINT_URL_EVENTBRIDGE", "")];
        assert_eq!(
            located("default", "eu-central-1", &empty).endpoint,
            "https://events.eu-central-1.amazonaws.com"
        );
        let mut bus = Bus::parse("t", "default").unwrap();
        let e = bus
            .locate(
                "us-east-1",
                &env(&[("AWS_ENDPOINT_URL_EVENTBRIDGE", "ftp://x")]),
            )
            .unwrap_err();
        assert!(
            e.0.starts_with("AWS_ENDPOINT_URL_EVENTBRIDGE: expected an http:// or https:// URL"),
            "{e}"
        );
    }

    #[test]
    fn bad_bus_names_and_arns_are_one_line_naming_the_value() {
        for bad in [
            "",
            "my bus",
            "aws.partner/x",
            "arn:aws:events:us-east-1:123456789012:rule/x",
            "arn:aws:sqs:us-east-1:123456789012:event-bus/x",
            "arn:aws:events:us-east-1:1234:event-bus/x",
            "arn:aws:events:useast1:123456789012:event-bus/x",
            "arn:aws:events:us-east-1:123456789012:event-bus/",
            "arn:aws:events:us-east-1:123456789012",
        ] {
            let e = Bus::parse("config.yml: target", bad).unwrap_err().0;
            assert!(
                e.starts_with("config.yml: target: expected eventbridge:<bus name or ARN> such as eventbridge:default")
                    && e.ends_with(&format!("found {:?}", format!("eventbridge:{bad}"))),
                "{bad:?}: {e}"
            );
        }
        assert!(Bus::parse("t", &"b".repeat(1601)).is_err());
    }

    const LINE: &str = r#"{"specversion":"1.0","id":"x","source":"cloud.aws.billing","type":"aws.service.daily","datacontenttype":"application/json","time":"2022-06-14T07:05:55.777689Z","estimated":true,"data":{"service":"Amazon S3 – Ünïcode \"q\"","amount":"0.0000001234","unit":"USD"}}"#;

    #[test]
    fn an_entry_carries_the_whole_event_as_detail() {
        let e = entry(LINE, "default").unwrap();
        let v: serde_json::Value = serde_json::from_str(&e.json).unwrap();
        assert_eq!(v["Source"], "cloud.aws.billing");
        assert_eq!(v["DetailType"], "aws.service.daily");
        assert_eq!(v["EventBusName"], "default");
        assert_eq!(v["Time"], 1655190355);
        assert_eq!(v["Detail"], LINE, "the spooled line, byte for byte");
        assert_eq!(
            v.as_object().unwrap().len(),
            5,
            "no Resources, no TraceHeader"
        );
        // 14 for Time, then UTF-8 bytes: "–", "Ü" and "ï" are 3, 2 and 2 bytes.
        assert_eq!(e.size, 14 + 17 + 17 + LINE.len());
        assert_eq!(LINE.len(), LINE.chars().count() + 2 + 1 + 1);
        let no_time = LINE.replace(r#""time":"2022-06-14T07:05:55.777689Z","#, "");
        let e = entry(&no_time, "default").unwrap();
        assert_eq!(e.size, 17 + 17 + no_time.len());
        assert!(!e.json.contains("\"Time\""));
    }

    #[test]
    fn an_event_too_large_for_an_entry_is_refused_with_its_size() {
        let fits = MAX_REQUEST_BYTES - 14 - 17 - 17 - LINE.len();
        let line = |pad: usize| LINE.replace("USD", &format!("USD{}", "x".repeat(pad)));
        assert_eq!(entry(&line(fits), "b").unwrap().size, MAX_REQUEST_BYTES);
        let e = entry(&line(fits + 1), "b").unwrap_err();
        assert_eq!(
            e,
            "too large for EventBridge: 262145 bytes as a PutEvents entry, at most 262144; not sent"
        );
        assert!(
            entry("{\"id\":1}", "b")
                .unwrap_err()
                .starts_with("not a CloudEvent")
        );
    }

    #[test]
    fn requests_hold_at_most_ten_entries_and_256_kib() {
        assert_eq!(requests(&[]), Vec::<Range<usize>>::new());
        assert_eq!(requests(&[100; 10]), vec![0..10]);
        assert_eq!(requests(&[100; 25]), vec![0..10, 10..20, 20..25]);
        let third = MAX_REQUEST_BYTES / 3;
        assert_eq!(requests(&[third; 4]), vec![0..3, 3..4]);
        assert_eq!(
            requests(&[MAX_REQUEST_BYTES, 1, MAX_REQUEST_BYTES - 1, 2]),
            vec![0..1, 1..3, 3..4]
        );
    }

    #[test]
    fn the_body_lists_the_entries_in_order() {
        let a = entry(LINE, "default").unwrap();
        let b = entry(&LINE.replace("\"x\"", "\"y\""), "default").unwrap();
        let body = body([&a, &b]);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let details: Vec<&str> = v["Entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Detail"].as_str().unwrap())
            .collect();
        assert_eq!(details.len(), 2);
        assert!(details[0].contains("\"id\":\"x\"") && details[1].contains("\"id\":\"y\""));
        assert_eq!(describe_body("default"), r#"{"Name":"default"}"#);
    }

    #[test]
    fn each_answer_entry_is_accepted_transient_or_rejected() {
        let body = br#"{"FailedEntryCount":3,"Entries":[{"EventId":"e-1"},
            {"ErrorCode":"ThrottlingException","ErrorMessage":"Rate exceeded"},
            {"ErrorCode":"InvalidArgument","ErrorMessage":"Parameter Detail is not valid.\r\nX"},
            {"ErrorCode":"InternalFailure"}]}"#;
        assert_eq!(
            outcomes(body, 4).unwrap(),
            [
                Put::Accepted("e-1".into()),
                Put::Transient("ThrottlingException: Rate exceeded".into()),
                Put::Rejected("InvalidArgument: Parameter Detail is not valid. X".into()),
                Put::Transient("InternalFailure: ".into()),
            ]
        );
        let all = br#"{"FailedEntryCount":0,"Entries":[{"EventId":"a"},{"EventId":"b"}]}"#;
        assert_eq!(outcomes(all, 2).unwrap().len(), 2);
    }

    #[test]
    fn an_answer_that_does_not_account_for_every_entry_is_an_error() {
        for (body, sent) in [
            (
                &br#"{"FailedEntryCount":0,"Entries":[{"EventId":"a"}]}"#[..],
                2,
            ),
            (br#"{"FailedEntryCount":0}"#, 1),
            (br#"{"FailedEntryCount":0,"Entries":[{}]}"#, 1),
            (br#"{"FailedEntryCount":0,"Entries":[{"EventId":""}]}"#, 1),
            (
                br#"{"FailedEntryCount":0,"Entries":[{"ErrorCode":"InvalidArgument"}]}"#,
                1,
            ),
            (b"<html>", 1),
        ] {
            assert!(
                outcomes(body, sent).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn describe_event_bus_gives_the_arn() {
        let body = br#"{"Name":"default","Arn":"arn:aws:events:us-east-1:123456789012:event-bus/default"}"#;
        assert_eq!(
            described(body).unwrap(),
            "arn:aws:events:us-east-1:123456789012:event-bus/default"
        );
        assert!(described(b"{}").is_err());
    }
}
