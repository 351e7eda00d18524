//! A billing line as a CloudEvent: its id from its content, its subject and partition key, and its HTTP binding in binary or structured mode.

use crate::breakdown::GroupBy;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// How an event goes over HTTP: attributes as `ce-` headers, or the whole event as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentMode {
    Binary,
    Structured,
}

pub const SOURCE: &str = "cloud.aws.billing";
pub const TYPE: &str = "aws.service.daily";
/// Extension attribute: the numbers are Cost Explorer's estimate and may be revised.
pub const ESTIMATED: &str = "estimated";
/// Extension attribute: 1, 2, ... for a line delivered again with new numbers.
pub const REVISION: &str = "revision";
/// Attributes every event gets as it goes out (`Event::seal`): the date and the line's
/// keys, the keys alone (the CloudEvents Partitioning extension), and, when configured,
/// the URL of the data's JSON Schema.
pub const SUBJECT: &str = "subject";
pub const PARTITION_KEY: &str = "partitionkey";
pub const DATASCHEMA: &str = "dataschema";

/// One group of a Cost Explorer result on a day: its group values and metrics, exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub date: String,
    /// One or two, in `group_by` order; tag and cost category values already split from
    /// their `key$` prefix.
    pub groups: Vec<Group>,
    /// At least one, in `metric` order; the first gives `amount` and `unit`.
    pub metrics: Vec<Metric>,
    /// The groups also become extension attributes (`group_by` was configured).
    pub routing: bool,
    /// Cost Explorer's `Estimated` flag of the result this line came from.
    pub estimated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub by: GroupBy,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    pub name: String,
    pub amount: String,
    pub unit: String,
}

impl Line {
    /// A line of the seed's shape: one service, one metric.
    pub fn service(date: &str, service: &str, metric: &str, amount: &str, unit: &str) -> Line {
        Line {
            date: date.into(),
            groups: vec![Group {
                by: GroupBy::Dimension("SERVICE"),
                value: service.into(),
            }],
            metrics: vec![Metric {
                name: metric.into(),
                amount: amount.into(),
                unit: unit.into(),
            }],
            routing: false,
            estimated: false,
        }
    }

    /// The amount of the first metric.
    pub fn amount(&self) -> &str {
        self.metrics.first().map_or("", |m| m.amount.as_str())
    }

    /// The unit of the first metric.
    pub fn unit(&self) -> &str {
        self.metrics.first().map_or("", |m| m.unit.as_str())
    }

    /// Names the same line across pulls: the date and each group (as configured) with its
    /// value, as a JSON array, e.g. `["2022-06-13","SERVICE","Amazon S3","TAG:team","web"]`.
    pub fn key(&self) -> String {
        let mut parts = vec![self.date.clone()];
        for g in &self.groups {
            parts.push(g.by.label());
            parts.push(g.value.clone());
        }
        serde_json::to_string(&parts).expect("strings always serialize")
    }
}

/// `amount` and `unit` of one metric in `metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    pub amount: String,
    pub unit: String,
}

/// The event data. With no breakdown keys in the config it is the seed's exactly:
/// vanceSource, vanceType, date, service, amount, unit.
/// Deserialize: by hand in event_de.rs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Data {
    // Empty only in a day summary, which carries none of them.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vance_source: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vance_type: String,
    pub date: String,
    /// Present when SERVICE is grouped (always, by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Other grouped dimensions by their lower camel case field (`linkedAccount`).
    #[serde(flatten)]
    pub dimensions: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cost_categories: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub amount: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    /// Every metric, when the config asks for more than one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, Amount>,
    /// Day summary only (summary.rs): the day's line count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<u64>,
    /// Day summary only: the exact sum of the day's amounts per unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<BTreeMap<String, String>>,
    /// Day summary only: Cost Explorer's Estimated flag of the day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated: Option<bool>,
}

impl Data {
    /// What the line is, for log lines: `"Amazon S3"`, `"Amazon S3" / "123456789012"`.
    pub fn label(&self) -> String {
        let mut parts: Vec<String> = self.service.iter().map(|s| format!("{s:?}")).collect();
        parts.extend(self.dimensions.values().map(|v| format!("{v:?}")));
        parts.extend(self.tags.iter().map(|(k, v)| format!("{k}={v:?}")));
        parts.extend(
            self.cost_categories
                .iter()
                .map(|(k, v)| format!("{k}={v:?}")),
        );
        parts.join(" / ")
    }
}

/// The whole event, in the field order of the seed document. Deserialize: by hand in event_de.rs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Event {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub datacontenttype: String,
    pub time: String,
    /// Extension attributes (routing by group: `service`, `linkedaccount`, `tagteam`, ...).
    #[serde(flatten)]
    pub extensions: BTreeMap<String, serde_json::Value>,
    pub data: Data,
}

impl Event {
    /// The event of a pulled line; its `id` and the attributes from its content are set by
    /// `seal` once its revision is known.
    pub fn new(line: Line, time: String) -> Event {
        let mut data = Data {
            vance_source: SOURCE.into(),
            vance_type: TYPE.into(),
            date: line.date,
            ..Data::default()
        };
        let mut extensions = BTreeMap::new();
        extensions.insert(ESTIMATED.into(), serde_json::Value::Bool(line.estimated));
        for group in line.groups {
            if line.routing
                && let Some(name) = group.by.attribute()
            {
                extensions.insert(name, serde_json::Value::String(group.value.clone()));
            }
            match group.by {
                GroupBy::Dimension("SERVICE") => data.service = Some(group.value),
                GroupBy::Dimension(_) => {
                    let field = group.by.field().expect("a dimension has a field");
                    data.dimensions.insert(field, group.value);
                }
                GroupBy::Tag(key) => {
                    data.tags.insert(key, group.value);
                }
                GroupBy::CostCategory(name) => {
                    data.cost_categories.insert(name, group.value);
                }
            }
        }
        if let Some(first) = line.metrics.first() {
            data.amount = first.amount.clone();
            data.unit = first.unit.clone();
        }
        if line.metrics.len() > 1 {
            for m in line.metrics {
                let amount = Amount {
                    amount: m.amount,
                    unit: m.unit,
                };
                data.metrics.insert(m.name, amount);
            }
        }
        Event {
            specversion: "1.0".into(),
            id: String::new(),
            source: SOURCE.into(),
            kind: TYPE.into(),
            datacontenttype: "application/json".into(),
            time,
            extensions,
            data,
        }
    }

    /// The `estimated` attribute (false when absent, as in a spool written before it).
    pub fn estimated(&self) -> bool {
        self.extensions.get(ESTIMATED) == Some(&serde_json::Value::Bool(true))
    }

    /// The `revision` attribute, if this event is a revision.
    pub fn revision(&self) -> Option<u32> {
        self.extensions
            .get(REVISION)
            .and_then(|v| v.as_u64())
            .and_then(|n| u32::try_from(n).ok())
    }

    /// Marks this event as revision `n` of its line.
    pub fn set_revision(&mut self, n: u32) {
        self.extensions.insert(REVISION.into(), n.into());
    }

    /// Makes the event what goes out, from what it carries: `subject` (`<date>/<key>...`,
    /// the keys in `group_by` order) and `partitionkey` (the keys alone), `dataschema` when
    /// configured, and the `id` from its content (`content_id`). `data` is the data as it
    /// goes out: `raw_data`, or FOCUS columns. A day summary (it has `lines`) has no keys:
    /// its subject is its date and its partition key its type.
    pub fn seal(&mut self, data: &RawValue, group_by: &[GroupBy], dataschema: Option<&str>) {
        let date = &self.data.date;
        let (subject, partition) = if self.data.lines.is_some() {
            (date.clone(), self.kind.clone())
        } else {
            let mut subject = String::with_capacity(date.len() + 64);
            subject.push_str(date);
            for value in group_values(&self.data, group_by) {
                subject.push('/');
                key_segment(&mut subject, value);
            }
            let keys = subject.get(date.len() + 1..).unwrap_or("").to_string();
            (subject, keys)
        };
        let text = serde_json::Value::String;
        self.extensions.insert(SUBJECT.into(), text(subject));
        self.extensions
            .insert(PARTITION_KEY.into(), text(partition));
        if let Some(url) = dataschema {
            self.extensions.insert(DATASCHEMA.into(), text(url.into()));
        }
        let revision = self.revision().unwrap_or(0);
        self.id = content_id(&self.source, &self.kind, revision, data);
    }

    /// A pulled line's event as it goes out in the seed's format (for tests).
    #[cfg(test)]
    pub fn sealed(line: Line, time: &str) -> Event {
        let group_by: Vec<GroupBy> = line.groups.iter().map(|g| g.by.clone()).collect();
        let mut event = Event::new(line, time.into());
        event.seal(&event.raw_data(), &group_by, None);
        event
    }

    /// The structured-mode JSON line (what goes out is `to_json_with` the data as sent).
    #[cfg(test)]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain strings always serialize")
    }

    /// The data's JSON, as `to_json` writes it.
    pub fn raw_data(&self) -> Box<RawValue> {
        serde_json::value::to_raw_value(&self.data).expect("plain strings always serialize")
    }

    /// `to_json` with the data already serialized (`raw_data`): the same line.
    pub fn to_json_with(&self, data: &RawValue) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            specversion: &'a str,
            id: &'a str,
            source: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
            datacontenttype: &'a str,
            time: &'a str,
            #[serde(flatten)]
            extensions: &'a BTreeMap<String, serde_json::Value>,
            data: &'a RawValue,
        }
        let line = Line {
            specversion: &self.specversion,
            id: &self.id,
            source: &self.source,
            kind: &self.kind,
            datacontenttype: &self.datacontenttype,
            time: &self.time,
            extensions: &self.extensions,
            data,
        };
        serde_json::to_string(&line).expect("plain strings always serialize")
    }
}

/// An HTTP request's headers and body.
pub type Parts = (Vec<(String, String)>, Vec<u8>);

/// Headers and body for POSTing a spooled event, read straight from its structured-mode
/// JSON line (no `Event` is built). Structured mode sends the line as it is. Binary mode
/// makes every attribute a `ce-` header, its value percent-encoded as the HTTP binding
/// says, in the line's order, and sends `data` as the exact JSON text the line holds.
/// Only the attributes a request needs are checked: lines come from the spool, whose lines
/// are read as whole events when a batch is opened, or were just written by `to_json_with`.
pub fn http_parts(line: &str, mode: ContentMode) -> Result<Parts, String> {
    if mode == ContentMode::Structured {
        let content_type = ("content-type".into(), "application/cloudevents+json".into());
        return Ok((vec![content_type], line.as_bytes().to_vec()));
    }
    let Fields(fields) = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let mut headers = Vec::with_capacity(fields.len());
    let (mut content_type, mut data) = (None, None);
    for (name, value) in fields {
        match &*name.0 {
            "data" => data = Some(value),
            "datacontenttype" => content_type = Some(text(value)?.into_owned()),
            name => headers.push((["ce-", name].concat(), header_value(value)?)),
        }
    }
    for required in ["specversion", "id", "source", "type"] {
        if !headers
            .iter()
            .any(|(h, _)| h.strip_prefix("ce-") == Some(required))
        {
            return Err(format!("no {required} attribute"));
        }
    }
    let content_type = content_type.ok_or("no datacontenttype attribute")?;
    headers.push(("content-type".into(), content_type));
    let data = data.ok_or("no data")?;
    Ok((headers, data.get().as_bytes().to_vec()))
}

/// An attribute as a header value: a string percent-encoded, a boolean or number as written.
fn header_value(value: &RawValue) -> Result<String, String> {
    match value.get().starts_with('"') {
        true => Ok(percent_encode(&text(value)?)),
        false => Ok(value.get().to_string()),
    }
}

/// A JSON string's text, borrowed from the line unless it has escapes.
fn text(value: &RawValue) -> Result<Cow<'_, str>, String> {
    serde_json::from_str::<Text>(value.get())
        .map(|t| t.0)
        .map_err(|e| format!("{}: {e}", value.get()))
}

/// A JSON string, borrowed where it can be (serde's own `Cow` always copies).
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Text<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON object's members in their order, each value as its JSON text.
struct Fields<'a>(Vec<(Text<'a>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Fields<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a CloudEvent object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut fields = Vec::with_capacity(12);
                while let Some(member) = map.next_entry()? {
                    fields.push(member);
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(V)
    }
}

/// A header value as the CloudEvents HTTP binding (3.1.3.2) wants it: UTF-8 bytes of space,
/// `"`, `%` and anything outside printable ASCII as `%XX`, so no value can break or add a header.
pub fn percent_encode(value: &str) -> String {
    let plain = |b: u8| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'%';
    if value.bytes().all(plain) {
        return value.to_string();
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(value.len() + 8);
    for b in value.bytes() {
        if plain(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
    String::from_utf8(out).expect("printable ASCII only")
}

/// The values of a line's groups in `group_by` order (`""` for one its data lacks).
fn group_values<'a>(data: &'a Data, group_by: &'a [GroupBy]) -> impl Iterator<Item = &'a str> {
    group_by.iter().map(move |g| {
        let value = match g {
            GroupBy::Dimension("SERVICE") => data.service.as_ref(),
            GroupBy::Dimension(_) => g.field().and_then(|f| data.dimensions.get(&f)),
            GroupBy::Tag(key) => data.tags.get(key),
            GroupBy::CostCategory(name) => data.cost_categories.get(name),
        };
        value.map_or("", String::as_str)
    })
}

/// A key as one segment of a subject or partition key: `%` and `/` as `%25` and `%2F`, so
/// the segments split back unambiguously; the rest as it is (binary mode percent-encodes
/// the whole header value on top, as for every attribute).
fn key_segment(out: &mut String, value: &str) {
    if !value.bytes().any(|b| b == b'%' || b == b'/') {
        return out.push_str(value);
    }
    for c in value.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
}

/// The namespace of event ids: the UUID version 5 of the DNS name `cloud.aws.billing`
/// (d1bdd1f3-bcd4-508c-9849-803cc3505a28).
pub const ID_NAMESPACE: [u8; 16] = [
    0xd1, 0xbd, 0xd1, 0xf3, 0xbc, 0xd4, 0x50, 0x8c, 0x98, 0x49, 0x80, 0x3c, 0xc3, 0x50, 0x5a, 0x28,
];

/// An event's id from its content: a name-based UUID version 8 over SHA-256 (RFC 9562,
/// B.2): the first 16 bytes of SHA-256(`ID_NAMESPACE` ‖ name), with the version and variant
/// bits set. The name is the canonical JSON text of
/// `{"data":<data>,"revision":<revision>,"source":<source>,"type":<type>}`: object keys sorted
/// by code point at every level, no whitespace, strings escaped only where JSON must
/// (`\"`, `\\`, and control characters as `\n`, `\u001b`, ...), everything else as UTF-8
/// (Python: `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`).
/// `revision` is 0 for a first delivery.
pub fn content_id(source: &str, kind: &str, revision: u32, data: &RawValue) -> String {
    use std::io::Write;
    let mut name = Vec::with_capacity(ID_NAMESPACE.len() + data.get().len() + 96);
    name.extend_from_slice(&ID_NAMESPACE);
    name.extend_from_slice(b"{\"data\":");
    canonical(&mut name, data);
    let _ = write!(name, ",\"revision\":{revision},\"source\":");
    serde_json::to_writer(&mut name, source).expect("writing to memory cannot fail");
    name.extend_from_slice(b",\"type\":");
    serde_json::to_writer(&mut name, kind).expect("writing to memory cannot fail");
    name.push(b'}');
    let digest = ring::digest::digest(&ring::digest::SHA256, &name);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    uuid_text(bytes, 8)
}

/// The canonical JSON text of `value`, appended to `out`. The data of an event is an object
/// whose members are mostly plain strings: those are copied as they are (a JSON string
/// without a backslash has only one spelling), as are whole numbers, booleans and null;
/// only members that are objects, or strings with escapes, are parsed and written again
/// (`serde_json::Value` keeps object keys sorted).
fn canonical(out: &mut Vec<u8>, value: &RawValue) {
    let write_value = |out: &mut Vec<u8>, raw: &str| {
        let value: serde_json::Value =
            serde_json::from_str(raw).expect("a RawValue holds valid JSON");
        serde_json::to_writer(out, &value).expect("writing to memory cannot fail");
    };
    // The members in their order (the reader binary mode uses), then sorted by key; an
    // object with a key twice is parsed whole instead (the last one counts, as there).
    let Ok(Fields(mut members)) = serde_json::from_str::<Fields>(value.get()) else {
        return write_value(out, value.get());
    };
    for i in 1..members.len() {
        let mut j = i;
        while j > 0 && members[j - 1].0.0 > members[j].0.0 {
            members.swap(j - 1, j);
            j -= 1;
        }
    }
    if members.windows(2).any(|w| w[0].0.0 == w[1].0.0) {
        return write_value(out, value.get());
    }
    out.push(b'{');
    for (i, (Text(key), member)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match key {
            // Borrowed: it had no escape, so it is written as it was.
            Cow::Borrowed(key) => {
                out.push(b'"');
                out.extend_from_slice(key.as_bytes());
                out.push(b'"');
            }
            Cow::Owned(key) => {
                serde_json::to_writer(&mut *out, &key).expect("writing to memory cannot fail")
            }
        }
        out.push(b':');
        let text = member.get();
        let plain = match text.as_bytes().first() {
            Some(b'"') => !text.contains('\\'),
            Some(b'0'..=b'9') => text.bytes().all(|b| b.is_ascii_digit()),
            _ => matches!(text, "true" | "false" | "null"),
        };
        match plain {
            true => out.extend_from_slice(text.as_bytes()),
            false => write_value(out, text),
        }
    }
    out.push(b'}');
}

/// 16 bytes as a UUID of `version` (RFC 9562 variant), in its lower-case text form.
fn uuid_text(mut bytes: [u8; 16], version: u8) -> String {
    bytes[6] = (bytes[6] & 0x0f) | (version << 4);
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [b'-'; 36];
    let mut at = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        id[at] = HEX[usize::from(b >> 4)];
        id[at + 1] = HEX[usize::from(b & 15)];
        at += 2;
    }
    String::from_utf8(id.to_vec()).expect("hex digits and dashes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        let mut event = Event::new(
            Line::service(
                "2022-06-13",
                "Amazon Elastic Compute Cloud - Compute",
                "BlendedCost",
                "12.294",
                "USD",
            ),
            "2022-06-14T07:05:55.777689Z".into(),
        );
        event.id = "4395ffa3-f6de-443c-bf0e-bb9798d26a1d".into();
        event
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
        let (headers, body) = http_parts(&sample().to_json(), ContentMode::Binary).unwrap();
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
        let (headers, body) = http_parts(&sample().to_json(), ContentMode::Structured).unwrap();
        assert_eq!(
            headers,
            vec![(
                "content-type".to_string(),
                "application/cloudevents+json".to_string()
            )]
        );
        assert_eq!(body, sample().to_json().into_bytes());
    }

    fn with_id(mut event: Event) -> Event {
        event.id = "id-1".into();
        event
    }

    fn breakdown_line() -> Line {
        let group = |by: GroupBy, value: &str| Group {
            by,
            value: value.into(),
        };
        let metric = |name: &str, amount: &str, unit: &str| Metric {
            name: name.into(),
            amount: amount.into(),
            unit: unit.into(),
        };
        Line {
            date: "2022-06-13".into(),
            groups: vec![
                group(GroupBy::Dimension("LINKED_ACCOUNT"), "123456789012"),
                group(GroupBy::Tag("team".into()), "web \"1\" é\r\nX-Evil: 1"),
            ],
            metrics: vec![
                metric("UnblendedCost", "-0.0000000001", "USD"),
                metric("UsageQuantity", "3.5", "N/A"),
            ],
            routing: true,
            estimated: true,
        }
    }

    #[test]
    fn a_breakdown_adds_fields_tags_metrics_and_routing_attributes() {
        let event = with_id(Event::new(breakdown_line(), "t".into()));
        assert_eq!(
            event.to_json(),
            r#"{"specversion":"1.0","id":"id-1","source":"cloud.aws.billing","type":"aws.service.daily","datacontenttype":"application/json","time":"t","estimated":true,"linkedaccount":"123456789012","tagteam":"web \"1\" é\r\nX-Evil: 1","data":{"vanceSource":"cloud.aws.billing","vanceType":"aws.service.daily","date":"2022-06-13","linkedAccount":"123456789012","tags":{"team":"web \"1\" é\r\nX-Evil: 1"},"amount":"-0.0000000001","unit":"USD","metrics":{"UnblendedCost":{"amount":"-0.0000000001","unit":"USD"},"UsageQuantity":{"amount":"3.5","unit":"N/A"}}}}"#
        );
        let back: Event = serde_json::from_str(&event.to_json()).unwrap();
        assert_eq!(back, event, "the spool reads back what it wrote");
        assert_eq!(event.to_json_with(&event.raw_data()), event.to_json());
        let mut line = breakdown_line();
        line.groups[1] = Group {
            by: GroupBy::CostCategory("Teams".into()),
            value: "".into(),
        };
        line.routing = false;
        let event = with_id(Event::new(line, "t".into()));
        assert_eq!(event.extensions.keys().collect::<Vec<_>>(), ["estimated"]);
        assert_eq!(
            serde_json::to_value(&event.data).unwrap()["costCategories"],
            serde_json::json!({"Teams": ""})
        );
    }

    #[test]
    fn binary_headers_percent_encode_values_so_none_breaks_or_adds_a_header() {
        let event = with_id(Event::new(breakdown_line(), "t".into()));
        let (headers, body) = http_parts(&event.to_json(), ContentMode::Binary).unwrap();
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get("ce-linkedaccount").as_deref(), Some("123456789012"));
        assert_eq!(get("ce-estimated").as_deref(), Some("true"));
        let mut revised = event.clone();
        revised.set_revision(2);
        let (headers, _) = http_parts(&revised.to_json(), ContentMode::Binary).unwrap();
        assert!(headers.contains(&("ce-revision".to_string(), "2".to_string())));
        assert_eq!(revised.revision(), Some(2));
        assert_eq!(
            get("ce-tagteam").as_deref(),
            Some("web%20%221%22%20%C3%A9%0D%0AX-Evil:%201")
        );
        for (name, value) in &headers {
            assert!(
                value
                    .bytes()
                    .all(|b| (0x21..=0x7e).contains(&b) && b != b'"'),
                "{name}: {value}"
            );
        }
        let data: Data = serde_json::from_slice(&body).unwrap();
        assert_eq!(data, event.data);
        assert_eq!(percent_encode("a%b c"), "a%25b%20c");
        assert_eq!(percent_encode("Amazon S3"), "Amazon%20S3");
    }

    #[test]
    fn binary_parts_come_from_the_line_as_written() {
        let line = r#"{"specversion":"1.0","id":"a\u0062c","source":"s","type":"t","datacontenttype":"application/json","time":"x y","revision":2,"tagteam":"\"q\"","data":{"date":"2022-06-13", "amount":"1.50"}}"#;
        let (headers, body) = http_parts(line, ContentMode::Binary).unwrap();
        let expected = [
            ("ce-specversion", "1.0"),
            ("ce-id", "abc"),
            ("ce-source", "s"),
            ("ce-type", "t"),
            ("ce-time", "x%20y"),
            ("ce-revision", "2"),
            ("ce-tagteam", "%22q%22"),
            ("content-type", "application/json"),
        ];
        let got: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(
            body, br#"{"date":"2022-06-13", "amount":"1.50"}"#,
            "data as written"
        );
        for (cut, what) in [
            (r#""id":"a\u0062c","#, "id"),
            (r#","data":{"date":"2022-06-13", "amount":"1.50"}"#, "data"),
        ] {
            let err = http_parts(&line.replace(cut, ""), ContentMode::Binary).unwrap_err();
            assert!(err.contains(what), "{err}");
        }
        assert!(http_parts("{\"id\":", ContentMode::Binary).is_err());
    }

    #[test]
    fn line_keys_name_the_date_and_each_group() {
        assert_eq!(
            breakdown_line().key(),
            r#"["2022-06-13","LINKED_ACCOUNT","123456789012","TAG:team","web \"1\" é\r\nX-Evil: 1"]"#
        );
        let mut other = breakdown_line();
        other.metrics[0].amount = "7".into();
        assert_eq!(
            other.key(),
            breakdown_line().key(),
            "numbers are not part of the key"
        );
        other.date = "2022-06-14".into();
        assert_ne!(other.key(), breakdown_line().key());
    }

    fn id_of(revision: u32, data: &str) -> String {
        let raw = RawValue::from_string(data.to_string()).unwrap();
        content_id(SOURCE, TYPE, revision, &raw)
    }

    #[test]
    fn content_ids_are_known_answers_computed_elsewhere() {
        // Expected values from Python's hashlib, json.dumps(sort_keys=True,
        // separators=(",", ":"), ensure_ascii=False) and uuid, as the README says.
        let mut event = sample();
        event.seal(&event.raw_data(), &[GroupBy::Dimension("SERVICE")], None);
        assert_eq!(event.id, "5de50fd6-7fb3-82d4-a912-016713ea4b3f");
        event.set_revision(2);
        event.seal(&event.raw_data(), &[GroupBy::Dimension("SERVICE")], None);
        assert_eq!(event.id, "f93043f1-9709-855a-aef3-15a16d1d66d4");
        let odd = r#"{"date":"2022-06-13","tags":{"t\u00e9am":"a\"/b\\c\r\n\u001b\u007f\u2028\ud83d\ude00"},"amount":"1","unit":"USD"}"#;
        assert_eq!(id_of(0, odd), "2ce4a8a9-aa32-8a29-b980-7a103c5b596f");
        assert_eq!(
            ID_NAMESPACE,
            *b"\xd1\xbd\xd1\xf3\xbc\xd4\x50\x8c\x98\x49\x80\x3c\xc3\x50\x5a\x28"
        );
    }

    /// The canonical name the slow, obvious way: the whole data parsed into sorted maps.
    fn reference_name(revision: u32, data: &str) -> String {
        let data: serde_json::Value = serde_json::from_str(data).unwrap();
        let name =
            serde_json::json!({"data": data, "revision": revision, "source": SOURCE, "type": TYPE});
        serde_json::to_string(&name).unwrap()
    }

    #[test]
    fn the_canonical_form_is_the_sorted_json_of_the_whole_name() {
        let seed = sample().raw_data();
        let breakdown = Event::new(breakdown_line(), "t".into()).raw_data();
        let summary = r#"{"date":"2026-11-20","lines":4,"totals":{"USD":"-0.2","N/A":"3.5"},"estimated":true}"#;
        let focus = r#"{"BilledCost":"1","ListCost":null,"x_Revision":0,"x_Estimated":false,"Tags":{"b":"1","a":"\u00e9"},"RegionId":"eu\u002dwest-1"}"#;
        for data in [
            seed.get(),
            breakdown.get(),
            summary,
            focus,
            r#"{"b\u0061":"x","a":"y"}"#,
            r#"{"a":"1","a":"2","\u0061":"3","b":{"d":1,"c":2}}"#,
            "{}",
        ] {
            for revision in [0, 7] {
                let mut fast = Vec::new();
                canonical(&mut fast, &RawValue::from_string(data.into()).unwrap());
                let name = format!(
                    r#"{{"data":{},"revision":{revision},"source":"{SOURCE}","type":"{TYPE}"}}"#,
                    String::from_utf8(fast).unwrap()
                );
                assert_eq!(name, reference_name(revision, data), "{data}");
            }
        }
    }

    #[test]
    fn the_canonical_form_ignores_key_order_and_escapes_but_not_content() {
        let a = r#"{"date":"d","amount":"1","tags":{"b":"x","a":"é"}}"#;
        let b = r#"{"tags":{"a":"\u00e9","b":"x"},"amount":"1","date":"d"}"#;
        let spaced = "{ \"amount\" : \"1\",\n \"date\":\"d\", \"tags\":{\"b\":\"x\",\"a\":\"é\"}}";
        assert_eq!(
            id_of(0, a),
            id_of(0, b),
            "order and escapes are not content"
        );
        assert_eq!(id_of(0, a), id_of(0, spaced), "nor is whitespace");
        // The same letter composed and decomposed are different strings, so different ids.
        let nfd = r#"{"date":"d","amount":"1","tags":{"b":"x","a":"e\u0301"}}"#;
        assert_ne!(id_of(0, a), id_of(0, nfd));
        // Values that plain concatenation would run together stay apart.
        let pairs = [
            (r#"{"a":"x","b":"yz"}"#, r#"{"a":"xy","b":"z"}"#),
            (r#"{"a":"x\",\"b\":\"y"}"#, r#"{"a":"x","b":"y"}"#),
            (r#"{"a":"1"}"#, r#"{"a":1}"#),
            (r#"{"a":{"b":"c"}}"#, r#"{"a.b":"c"}"#),
            (r#"{"ab":"c"}"#, r#"{"a":"bc"}"#),
        ];
        for (x, y) in pairs {
            assert_ne!(id_of(0, x), id_of(0, y), "{x} vs {y}");
        }
        assert_eq!(id_of(0, a), id_of(0, a), "the same content, the same id");
    }

    #[test]
    fn changing_any_one_field_changes_the_id() {
        let base = Event::sealed(breakdown_line(), "t");
        let mut seen = std::collections::BTreeMap::new();
        let mut check = |what: String, event: Event| {
            if let Some(before) = seen.insert(event.id.clone(), what.clone()) {
                panic!("{what} has the id of {before}");
            }
        };
        check("the base line".into(), base.clone());
        let values = [
            "", "0", "1", "x", "/", "%2F", "\"", "é", "e\u{301}", "a/b", "日本",
        ];
        type Edit = fn(&mut Line, &str);
        let edits: [(&str, Edit); 9] = [
            ("date", |l, v| l.date = format!("2022-06-13{v}")),
            ("first key", |l, v| {
                l.groups[0].value = format!("123456789012{v}")
            }),
            ("second key", |l, v| l.groups[1].value = v.into()),
            ("first amount", |l, v| {
                l.metrics[0].amount = format!("-0.0000000001{v}")
            }),
            ("first unit", |l, v| l.metrics[0].unit = format!("USD{v}")),
            ("second amount", |l, v| {
                l.metrics[1].amount = format!("3.5{v}")
            }),
            ("second unit", |l, v| l.metrics[1].unit = format!("N/A{v}")),
            ("second metric", |l, v| {
                l.metrics[1].name = format!("UsageQuantity{v}")
            }),
            ("tag key", |l, v| {
                l.groups[1].by = GroupBy::Tag(format!("team{v}"))
            }),
        ];
        for (what, edit) in edits {
            for v in values {
                let mut line = breakdown_line();
                edit(&mut line, v);
                if line == breakdown_line() {
                    continue;
                }
                check(format!("{what} {v:?}"), Event::sealed(line, "t"));
            }
        }
        for n in 1..4 {
            let mut event = base.clone();
            event.set_revision(n);
            event.seal(&event.raw_data(), &[], None);
            check(format!("revision {n}"), event);
        }
        let time = Event::sealed(breakdown_line(), "another time");
        assert_eq!(time.id, base.id, "when it was pulled is not content");
        let mut final_numbers = breakdown_line();
        final_numbers.estimated = false;
        assert_eq!(
            Event::sealed(final_numbers, "t").id,
            base.id,
            "nor is the flag"
        );
    }

    #[test]
    fn subject_and_partition_key_name_the_line_in_group_by_order() {
        let event = Event::sealed(breakdown_line(), "t");
        let text = |name: &str| event.extensions[name].as_str().unwrap().to_string();
        assert_eq!(
            text(SUBJECT),
            "2022-06-13/123456789012/web \"1\" é\r\nX-Evil: 1"
        );
        assert_eq!(text(PARTITION_KEY), "123456789012/web \"1\" é\r\nX-Evil: 1");
        let mut line = breakdown_line();
        line.groups.reverse();
        line.groups[0].value = "a/b%c".into();
        let event = Event::sealed(line, "t");
        assert_eq!(
            event.extensions[SUBJECT], "2022-06-13/a%2Fb%25c/123456789012",
            "group_by order; / and % escaped so the keys split back"
        );
        assert_eq!(event.extensions[PARTITION_KEY], "a%2Fb%25c/123456789012");
        assert!(!event.extensions.contains_key(DATASCHEMA));
        let mut seed = sample();
        let url = "https://example.com/schema.json";
        seed.seal(
            &seed.raw_data(),
            &[GroupBy::Dimension("SERVICE")],
            Some(url),
        );
        assert_eq!(
            seed.extensions[SUBJECT],
            "2022-06-13/Amazon Elastic Compute Cloud - Compute"
        );
        assert_eq!(
            seed.extensions[PARTITION_KEY],
            "Amazon Elastic Compute Cloud - Compute"
        );
        assert_eq!(seed.extensions[DATASCHEMA], url);
        let (headers, _) = http_parts(&seed.to_json(), ContentMode::Binary).unwrap();
        assert!(headers.contains(&(
            "ce-subject".to_string(),
            "2022-06-13/Amazon%20Elastic%20Compute%20Cloud%20-%20Compute".to_string()
        )));
    }

    #[test]
    fn uuid_text_sets_version_and_variant() {
        assert_eq!(
            uuid_text([0xff; 16], 8),
            "ffffffff-ffff-8fff-bfff-ffffffffffff"
        );
        assert_eq!(
            uuid_text([0; 16], 8),
            "00000000-0000-8000-8000-000000000000"
        );
    }
}
