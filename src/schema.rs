//! The JSON Schema (draft 2020-12) of the data of every event type a config produces, and the `dataschema` key.
//!
//! Pure: the document follows from the breakdown (which keys and metrics a line has),
//! `summary` and the data format. Each type's data is an object with exactly the listed
//! members, every one required; amounts are decimal strings, never numbers.

use crate::breakdown::{Breakdown, GroupBy};
use crate::focus::Format;
use crate::yaml::{ConfigError, Doc};
use serde_json::{Map, Value};

/// The config key this module owns.
pub const KEYS: [&str; 1] = ["dataschema"];

/// Reads `dataschema`: the URL of this schema where the user publishes it (an absolute
/// URI), put on every event as the `dataschema` attribute.
pub fn settings(doc: &Doc) -> Result<Option<String>, ConfigError> {
    let expected = "an absolute URI such as https://example.com/billing.schema.json";
    match doc.string("dataschema")? {
        None => Ok(None),
        Some(url) if is_absolute_uri(&url) => Ok(Some(url)),
        Some(url) => doc.expected("dataschema", expected, &format!("{url:?}")),
    }
}

/// RFC 3986: a scheme (a letter, then letters, digits, `+`, `-`, `.`), `:`, and a rest of
/// printable ASCII without spaces, quotes or angle brackets.
fn is_absolute_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut letters = scheme.chars();
    letters.next().is_some_and(|c| c.is_ascii_alphabetic())
        && letters.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && !matches!(b, b'"' | b'<' | b'>' | b'\\'))
}

/// The document: `oneOf` the data of each event type, each also under `$defs/<type>`.
pub fn document(breakdown: &Breakdown, summary: bool, format: Format, id: Option<&str>) -> Value {
    let mut doc = json(
        r##"{"$schema": "https://json-schema.org/draft/2020-12/schema",
        "oneOf": [{"$ref": "#/$defs/aws.service.daily"}],
        "$defs": {"decimal": {"type": "string",
            "pattern": "^-?[0-9]+(\\.[0-9]+)?([eE][+-]?[0-9]+)?$"}}}"##,
    );
    if let Some(id) = id {
        set(&mut doc, "$id", id.into());
    }
    let title = format!("source-aws-billing event data ({} format)", format.name());
    set(&mut doc, "title", title.into());
    let line = match format {
        Format::Seed => seed_line(breakdown),
        Format::Focus => focus_line(breakdown),
    };
    set(defs(&mut doc), crate::event::TYPE, line);
    if summary {
        set(defs(&mut doc), crate::summary::TYPE, object(json(SUMMARY)));
        let one_of = json(r##"{"$ref": "#/$defs/aws.service.daily.summary"}"##);
        if let Some(Value::Array(list)) = doc.get_mut("oneOf") {
            list.push(one_of);
        }
    }
    doc
}

/// A piece of the document from its JSON text (less code than building it by hand).
fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("the schema's own JSON is valid")
}

/// Sets a member of an object (`IndexMut` would link an entry API for this alone).
fn set(object: &mut Value, key: &str, value: Value) {
    if let Value::Object(members) = object {
        members.insert(key.to_string(), value);
    }
}

fn defs(doc: &mut Value) -> &mut Value {
    doc.get_mut("$defs").expect("the document has $defs")
}

const STRING: &str = r#"{"type": "string"}"#;
const DECIMAL: &str = r##"{"$ref": "#/$defs/decimal"}"##;
const DATE: &str = r#"{"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}"#;
const SUMMARY: &str = r##"{"date": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
    "lines": {"type": "integer", "minimum": 0},
    "totals": {"type": "object", "additionalProperties": {"$ref": "#/$defs/decimal"}},
    "estimated": {"type": "boolean"}}"##;

/// An object of exactly these members (`properties`, a JSON object), all required.
fn object(properties: Value) -> Value {
    let required: Vec<Value> = match &properties {
        Value::Object(p) => p.keys().map(|k| Value::from(k.as_str())).collect(),
        _ => Vec::new(),
    };
    let mut schema = json(r#"{"type": "object", "additionalProperties": false}"#);
    set(&mut schema, "properties", properties);
    set(&mut schema, "required", required.into());
    schema
}

/// The tag and cost category members of a line: `{"<key>": string, ...}` per grouped kind.
fn keyed(breakdown: &Breakdown, tags: bool) -> Option<Value> {
    let mut members = Map::new();
    for group in &breakdown.group_by {
        match (group, tags) {
            (GroupBy::Tag(name), true) | (GroupBy::CostCategory(name), false) => {
                members.insert(name.clone(), json(STRING));
            }
            _ => {}
        }
    }
    (!members.is_empty()).then(|| object(members.into()))
}

fn seed_line(breakdown: &Breakdown) -> Value {
    let mut p = json(
        r#"{"vanceSource": {"const": "cloud.aws.billing"},
        "vanceType": {"const": "aws.service.daily"}, "unit": {"type": "string"}}"#,
    );
    set(&mut p, "date", json(DATE));
    set(&mut p, "amount", json(DECIMAL));
    for group in &breakdown.group_by {
        if let Some(field) = group.field() {
            set(&mut p, &field, json(STRING));
        }
    }
    if let Some(tags) = keyed(breakdown, true) {
        set(&mut p, "tags", tags);
    }
    if let Some(categories) = keyed(breakdown, false) {
        set(&mut p, "costCategories", categories);
    }
    if breakdown.metrics.len() > 1 {
        let mut metrics = Map::new();
        for m in &breakdown.metrics {
            let amount =
                json(r##"{"amount": {"$ref": "#/$defs/decimal"}, "unit": {"type": "string"}}"##);
            metrics.insert(m.clone(), object(amount));
        }
        set(&mut p, "metrics", object(metrics.into()));
    }
    object(p)
}

/// The columns every FOCUS line has, whatever it is grouped by.
const FOCUS_COLUMNS: &str = r##"{
    "BilledCost": {"$ref": "#/$defs/decimal"},
    "EffectiveCost": {"$ref": "#/$defs/decimal"},
    "ListCost": {"$ref": "#/$defs/decimal"},
    "ContractedCost": {"$ref": "#/$defs/decimal"},
    "BillingCurrency": {"type": "string"},
    "ChargePeriodStart": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T00:00:00Z$"},
    "ChargePeriodEnd": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T00:00:00Z$"},
    "BillingPeriodStart": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-01T00:00:00Z$"},
    "BillingPeriodEnd": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-01T00:00:00Z$"},
    "BillingAccountId": {"type": ["string", "null"], "pattern": "^[0-9]{12}$"},
    "SubAccountId": {"type": "null"},
    "SubAccountName": {"type": "null"},
    "ProviderName": {"const": "AWS"},
    "PublisherName": {"type": "string"},
    "InvoiceIssuerName": {"type": "string"},
    "ServiceName": {"type": "null"},
    "ServiceCategory": {"type": "null"},
    "RegionId": {"type": "null"},
    "ChargeCategory": {"type": "null"},
    "x_Estimated": {"type": "boolean"},
    "x_Revision": {"type": "integer", "minimum": 0}
}"##;

/// FOCUS's allowed ServiceCategory values.
const SERVICE_CATEGORIES: &str = r#"{"enum": ["AI and Machine Learning", "Analytics",
    "Business Applications", "Compute", "Databases", "Developer Tools", "Multicloud",
    "Identity", "Integration", "Internet of Things", "Management and Governance", "Media",
    "Migration", "Mobile", "Networking", "Security", "Storage", "Web", "Other"]}"#;

fn focus_line(breakdown: &Breakdown) -> Value {
    let mut p = json(FOCUS_COLUMNS);
    for group in &breakdown.group_by {
        let GroupBy::Dimension(dimension) = group else {
            continue;
        };
        let (column, schema) = match *dimension {
            "LINKED_ACCOUNT" => ("SubAccountId", STRING),
            "REGION" => ("RegionId", STRING),
            "AZ" => ("AvailabilityZone", STRING),
            "LEGAL_ENTITY_NAME" | "INVOICING_ENTITY" => continue,
            "SERVICE" => {
                set(&mut p, "ServiceCategory", json(SERVICE_CATEGORIES));
                ("ServiceName", STRING)
            }
            "RECORD_TYPE" => (
                "ChargeCategory",
                r#"{"enum": ["Usage", "Purchase", "Tax", "Credit", "Adjustment"]}"#,
            ),
            _ => {
                let field = group.field().expect("a dimension has a field");
                set(&mut p, &crate::focus::custom_name(&field), json(STRING));
                continue;
            }
        };
        set(&mut p, column, json(schema));
    }
    if let Some(tags) = keyed(breakdown, true) {
        set(&mut p, "Tags", tags);
    }
    if let Some(categories) = keyed(breakdown, false) {
        set(&mut p, "x_CostCategories", categories);
    }
    object(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(yaml: &str) -> Result<Option<String>, String> {
        let map: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
        settings(&Doc::new("c.yml", &map)).map_err(|e| e.0)
    }

    #[test]
    fn dataschema_is_an_absolute_uri() {
        assert_eq!(parse("target: x"), Ok(None));
        for good in [
            "https://example.com/billing.schema.json",
            "urn:example:billing",
            "tag:example.com,2024:billing#v1",
        ] {
            assert_eq!(
                parse(&format!("dataschema: '{good}'")),
                Ok(Some(good.into()))
            );
        }
        for bad in [
            "billing.json",
            "/schemas/billing.json",
            "https://a b",
            "1http://x",
            "x:",
        ] {
            let e = parse(&format!("dataschema: '{bad}'")).unwrap_err();
            assert!(
                e.starts_with("c.yml: dataschema: expected an absolute URI") && e.contains(bad),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn the_seed_line_is_the_seed_shape_exactly() {
        let doc = document(&Breakdown::default(), false, Format::Seed, None);
        let line = &doc["$defs"]["aws.service.daily"];
        assert_eq!(
            line["required"],
            json!([
                "amount",
                "date",
                "service",
                "unit",
                "vanceSource",
                "vanceType"
            ])
        );
        assert_eq!(line["additionalProperties"], false);
        assert_eq!(doc["oneOf"], json!([{"$ref": "#/$defs/aws.service.daily"}]));
        assert!(doc.get("$id").is_none());
    }

    #[test]
    fn breakdowns_summaries_and_focus_shape_the_document() {
        let breakdown = Breakdown {
            group_by: vec![
                GroupBy::Dimension("LINKED_ACCOUNT"),
                GroupBy::Tag("team".into()),
            ],
            metrics: vec!["UnblendedCost".into(), "UsageQuantity".into()],
            filter: None,
            routing: true,
        };
        let doc = document(&breakdown, true, Format::Seed, Some("urn:x"));
        assert_eq!(doc["$id"], "urn:x");
        let line = &doc["$defs"]["aws.service.daily"];
        assert_eq!(line["properties"]["tags"]["required"], json!(["team"]));
        assert_eq!(
            line["properties"]["metrics"]["required"],
            json!(["UnblendedCost", "UsageQuantity"])
        );
        assert!(line["properties"]["linkedAccount"].is_object());
        assert!(line["properties"].get("service").is_none());
        assert_eq!(doc["oneOf"].as_array().unwrap().len(), 2);
        let focus = document(&breakdown, false, Format::Focus, None);
        let p = &focus["$defs"]["aws.service.daily"]["properties"];
        assert_eq!(p["SubAccountId"], json!({"type": "string"}));
        assert_eq!(p["ServiceName"], json!({"type": "null"}));
        assert_eq!(p["Tags"]["required"], json!(["team"]));
        assert_eq!(p["x_Revision"]["type"], "integer");
    }
}
