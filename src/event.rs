//! A billing line as a CloudEvent, and its HTTP binding in binary or structured mode.

use crate::config::ContentMode;
use serde::{Deserialize, Serialize};

pub const SOURCE: &str = "cloud.aws.billing";
pub const TYPE: &str = "aws.service.daily";

/// One group of a Cost Explorer result: a service's cost on a day, exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub date: String,
    pub service: String,
    pub amount: String,
    pub unit: String,
    /// Cost Explorer's `Estimated` flag of the result this line came from.
    pub estimated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Data {
    pub vance_source: String,
    pub vance_type: String,
    pub date: String,
    pub service: String,
    pub amount: String,
    pub unit: String,
}

/// The whole event, in the field order of the seed document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub datacontenttype: String,
    pub time: String,
    /// Extension attribute: the numbers are Cost Explorer's estimate and may be revised.
    #[serde(default)]
    pub estimated: bool,
    /// Extension attribute: 1, 2, ... for a line delivered again with new numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    pub data: Data,
}

impl Event {
    /// `id` is made once per event and kept across retries and restarts.
    pub fn new(line: Line, id: String, time: String) -> Event {
        Event {
            specversion: "1.0".into(),
            id,
            source: SOURCE.into(),
            kind: TYPE.into(),
            datacontenttype: "application/json".into(),
            time,
            estimated: line.estimated,
            revision: None,
            data: Data {
                vance_source: SOURCE.into(),
                vance_type: TYPE.into(),
                date: line.date,
                service: line.service,
                amount: line.amount,
                unit: line.unit,
            },
        }
    }

    /// The structured-mode JSON: one line, as printed for `--target -` and kept in the spool.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain strings always serialize")
    }

    /// Headers and body for POSTing this event in the given content mode.
    pub fn http_parts(&self, mode: ContentMode) -> (Vec<(&'static str, String)>, Vec<u8>) {
        match mode {
            ContentMode::Binary => {
                let mut headers = vec![
                    ("ce-specversion", self.specversion.clone()),
                    ("ce-id", self.id.clone()),
                    ("ce-source", self.source.clone()),
                    ("ce-type", self.kind.clone()),
                    ("ce-time", self.time.clone()),
                    ("ce-estimated", self.estimated.to_string()),
                ];
                if let Some(r) = self.revision {
                    headers.push(("ce-revision", r.to_string()));
                }
                headers.push(("content-type", self.datacontenttype.clone()));
                let body = serde_json::to_vec(&self.data).expect("plain strings always serialize");
                (headers, body)
            }
            ContentMode::Structured => (
                vec![("content-type", "application/cloudevents+json".into())],
                self.to_json().into_bytes(),
            ),
        }
    }
}

/// A random (version 4) UUID from 16 random bytes.
pub fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 15)]));
    }
    id
}

/// A fresh event id from the operating system's random source.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    uuid_v4(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        Event::new(
            Line {
                date: "2022-06-13".into(),
                service: "Amazon Elastic Compute Cloud - Compute".into(),
                amount: "12.294".into(),
                unit: "USD".into(),
                estimated: false,
            },
            "4395ffa3-f6de-443c-bf0e-bb9798d26a1d".into(),
            "2022-06-14T07:05:55.777689Z".into(),
        )
    }

    #[test]
    fn structured_json_is_the_seed_example() {
        assert_eq!(
            sample().to_json(),
            r#"{"specversion":"1.0","id":"4395ffa3-f6de-443c-bf0e-bb9798d26a1d","source":"cloud.aws.billing","type":"aws.service.daily","datacontenttype":"application/json","time":"2022-06-14T07:05:55.777689Z","estimated":false,"data":{"vanceSource":"cloud.aws.billing","vanceType":"aws.service.daily","date":"2022-06-13","service":"Amazon Elastic Compute Cloud - Compute","amount":"12.294","unit":"USD"}}"#
        );
        let back: Event = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn binary_mode_puts_attributes_in_headers_and_data_in_the_body() {
        let (headers, body) = sample().http_parts(ContentMode::Binary);
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("ce-specversion"), Some("1.0"));
        assert_eq!(get("ce-id"), Some("4395ffa3-f6de-443c-bf0e-bb9798d26a1d"));
        assert_eq!(get("ce-source"), Some("cloud.aws.billing"));
        assert_eq!(get("ce-type"), Some("aws.service.daily"));
        assert_eq!(get("ce-time"), Some("2022-06-14T07:05:55.777689Z"));
        assert_eq!(get("ce-estimated"), Some("false"));
        assert_eq!(get("ce-revision"), None);
        assert_eq!(get("content-type"), Some("application/json"));
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"vanceSource":"cloud.aws.billing","vanceType":"aws.service.daily","date":"2022-06-13","service":"Amazon Elastic Compute Cloud - Compute","amount":"12.294","unit":"USD"}"#
        );
    }

    #[test]
    fn structured_mode_sends_the_whole_event() {
        let (headers, body) = sample().http_parts(ContentMode::Structured);
        assert_eq!(
            headers,
            vec![("content-type", "application/cloudevents+json".to_string())]
        );
        assert_eq!(body, sample().to_json().into_bytes());
    }

    #[test]
    fn ids_are_version_4_uuids_and_differ() {
        assert_eq!(uuid_v4([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
        assert_ne!(new_id(), new_id());
    }
}
