//! The JSON Schema (draft 2020-12) of the data of every event type a config produces, and the `dataschema` key.
//!
//! Pure: the document follows from the breakdown (which keys and metrics a line has),
//! `summary` and the data format. Each type's data is an object with exactly the listed
//! members, every one required; amounts are decimal strings, never numbers.

use crate::breakdown::{Breakdown, GroupBy};
use crate::focus::Format;
use crate::yaml::{ConfigError, Doc};
use serde_json::{Map, Value, json};

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
    let mut defs = Map::new();
    let line = match format {
        Format::Seed => seed_line(breakdown),
        Format::Focus => focus_line(breakdown),
    };
    defs.insert(crate::event::TYPE.into(), line);
    if summary {
        defs.insert(crate::summary::TYPE.into(), summary_data());
    }
    defs.insert("decimal".into(), decimal());
    let one_of: Vec<Value> = defs
        .keys()
        .filter(|k| *k != "decimal")
        .map(|k| json!({"$ref": format!("#/$defs/{k}")}))
        .collect();
    let mut doc = Map::new();
    doc.insert(
        "$schema".into(),
        "https://json-schema.org/draft/2020-12/schema".into(),
    );
    if let Some(id) = id {
        doc.insert("$id".into(), id.into());
    }
    doc.insert(
        "title".into(),
        format!("source-aws-billing event data ({} format)", format.name()).into(),
    );
    doc.insert("oneOf".into(), one_of.into());
    doc.insert("$defs".into(), defs.into());
    doc.into()
}

/// An amount exactly as Cost Explorer writes it: `-12.5`, `0.0000001234`, `1.2E-7`.
fn decimal() -> Value {
    json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?([eE][+-]?[0-9]+)?$"})
}

fn decimal_ref() -> Value {
    json!({"$ref": "#/$defs/decimal"})
}

fn string() -> Value {
    json!({"type": "string"})
}

/// An object of exactly these members, all required.
fn object(properties: Map<String, Value>) -> Value {
    let required: Vec<&String> = properties.keys().collect();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn seed_line(breakdown: &Breakdown) -> Value {
    let mut p = Map::new();
    p.insert("vanceSource".into(), json!({"const": crate::event::SOURCE}));
    p.insert("vanceType".into(), json!({"const": crate::event::TYPE}));
    p.insert(
        "date".into(),
        json!({"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}),
    );
    let (mut tags, mut categories) = (Map::new(), Map::new());
    for group in &breakdown.group_by {
        match group {
            GroupBy::Dimension(_) => {
                let field = group.field().expect("a dimension has a field");
                p.insert(field, string());
            }
            GroupBy::Tag(key) => {
                tags.insert(key.clone(), string());
            }
            GroupBy::CostCategory(name) => {
                categories.insert(name.clone(), string());
            }
        }
    }
    if !tags.is_empty() {
        p.insert("tags".into(), object(tags));
    }
    if !categories.is_empty() {
        p.insert("costCategories".into(), object(categories));
    }
    p.insert("amount".into(), decimal_ref());
    p.insert("unit".into(), string());
    if breakdown.metrics.len() > 1 {
        let mut metrics = Map::new();
        for m in &breakdown.metrics {
            let mut amount = Map::new();
            amount.insert("amount".into(), decimal_ref());
            amount.insert("unit".into(), string());
            metrics.insert(m.clone(), object(amount));
        }
        p.insert("metrics".into(), object(metrics));
    }
    object(p)
}

fn focus_line(breakdown: &Breakdown) -> Value {
    let null = || json!({"type": "null"});
    let grouped = |d: &str| {
        breakdown
            .group_by
            .iter()
            .any(|g| matches!(g, GroupBy::Dimension(x) if *x == d))
    };
    let date_time =
        || json!({"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T00:00:00Z$"});
    let string_if = |d: &str| if grouped(d) { string() } else { null() };
    let mut p = Map::new();
    p.insert("BilledCost".into(), decimal_ref());
    p.insert("EffectiveCost".into(), decimal_ref());
    p.insert("ListCost".into(), null());
    p.insert("ContractedCost".into(), null());
    p.insert("BillingCurrency".into(), string());
    for period in [
        "ChargePeriodStart",
        "ChargePeriodEnd",
        "BillingPeriodStart",
        "BillingPeriodEnd",
    ] {
        p.insert(period.into(), date_time());
    }
    p.insert(
        "BillingAccountId".into(),
        json!({"type": ["string", "null"], "pattern": "^[0-9]{12}$"}),
    );
    p.insert("SubAccountId".into(), string_if("LINKED_ACCOUNT"));
    p.insert("SubAccountName".into(), null());
    p.insert("ProviderName".into(), json!({"const": "AWS"}));
    p.insert("PublisherName".into(), string());
    p.insert("InvoiceIssuerName".into(), string());
    p.insert("ServiceName".into(), string_if("SERVICE"));
    let categories: Vec<&str> = {
        let mut all: Vec<&str> = crate::focus::SERVICE_CATEGORIES
            .iter()
            .map(|(_, c)| *c)
            .chain(["Other"])
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    };
    p.insert(
        "ServiceCategory".into(),
        match grouped("SERVICE") {
            true => json!({"enum": categories}),
            false => null(),
        },
    );
    p.insert("RegionId".into(), string_if("REGION"));
    p.insert(
        "ChargeCategory".into(),
        match grouped("RECORD_TYPE") {
            true => json!({"enum": ["Usage", "Purchase", "Tax", "Credit", "Adjustment"]}),
            false => null(),
        },
    );
    let (mut tags, mut categories) = (Map::new(), Map::new());
    for group in &breakdown.group_by {
        match group {
            GroupBy::Dimension("AZ") => {
                p.insert("AvailabilityZone".into(), string());
            }
            GroupBy::Dimension(
                "LINKED_ACCOUNT" | "LEGAL_ENTITY_NAME" | "INVOICING_ENTITY" | "REGION"
                | "RECORD_TYPE" | "SERVICE",
            ) => {}
            GroupBy::Dimension(_) => {
                let field = group.field().expect("a dimension has a field");
                p.insert(crate::focus::custom_name(&field), string());
            }
            GroupBy::Tag(key) => {
                tags.insert(key.clone(), string());
            }
            GroupBy::CostCategory(name) => {
                categories.insert(name.clone(), string());
            }
        }
    }
    if !tags.is_empty() {
        p.insert("Tags".into(), object(tags));
    }
    if !categories.is_empty() {
        p.insert("x_CostCategories".into(), object(categories));
    }
    p.insert("x_Estimated".into(), json!({"type": "boolean"}));
    p.insert(
        "x_Revision".into(),
        json!({"type": "integer", "minimum": 0}),
    );
    object(p)
}

fn summary_data() -> Value {
    let mut p = Map::new();
    p.insert(
        "date".into(),
        json!({"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}),
    );
    p.insert("lines".into(), json!({"type": "integer", "minimum": 0}));
    p.insert(
        "totals".into(),
        json!({"type": "object", "additionalProperties": decimal_ref()}),
    );
    p.insert("estimated".into(), json!({"type": "boolean"}));
    object(p)
}

#[cfg(test)]
mod tests {
    use super::*;

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
