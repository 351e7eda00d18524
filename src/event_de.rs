//! Reads an `Event` back from its JSON (spool lines) by hand: serde's derive with `flatten` would buffer every field and link a second copy of each field's deserializer.

use crate::event::{Amount, Data, Event};
use serde::de::{Deserialize, Deserializer, Error, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;

/// Sets a field once; a second occurrence is an error, as with serde's derive.
fn once<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    slot: &mut Option<T>,
    map: &mut A,
    name: &'static str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(A::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

fn need<T, E: Error>(slot: Option<T>, name: &'static str) -> Result<T, E> {
    slot.ok_or_else(|| E::missing_field(name))
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a CloudEvent object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        let (mut specversion, mut id, mut source, mut kind) = (None, None, None, None);
        let (mut datacontenttype, mut time, mut data) = (None, None, None);
        let mut extensions = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "specversion" => once(&mut specversion, &mut map, "specversion")?,
                "id" => once(&mut id, &mut map, "id")?,
                "source" => once(&mut source, &mut map, "source")?,
                "type" => once(&mut kind, &mut map, "type")?,
                "datacontenttype" => once(&mut datacontenttype, &mut map, "datacontenttype")?,
                "time" => once(&mut time, &mut map, "time")?,
                "data" => once(&mut data, &mut map, "data")?,
                _ => {
                    let value: serde_json::Value = map.next_value()?;
                    extensions.insert(key, value);
                }
            }
        }
        Ok(Event {
            specversion: need(specversion, "specversion")?,
            id: need(id, "id")?,
            source: need(source, "source")?,
            kind: need(kind, "type")?,
            datacontenttype: need(datacontenttype, "datacontenttype")?,
            time: need(time, "time")?,
            extensions,
            data: need(data, "data")?,
        })
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Event, D::Error> {
        deserializer.deserialize_map(EventVisitor)
    }
}

struct DataVisitor;

impl<'de> Visitor<'de> for DataVisitor {
    type Value = Data;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the event data object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data, A::Error> {
        let (mut vance_source, mut vance_type, mut date) = (None, None, None);
        let (mut service, mut tags, mut cost_categories) = (None, None, None);
        let (mut amount, mut unit, mut metrics) = (None, None, None::<BTreeMap<String, Amount>>);
        let (mut lines, mut totals, mut estimated) = (None, None, None);
        let mut dimensions = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "vanceSource" => once(&mut vance_source, &mut map, "vanceSource")?,
                "vanceType" => once(&mut vance_type, &mut map, "vanceType")?,
                "date" => once(&mut date, &mut map, "date")?,
                "service" => once(&mut service, &mut map, "service")?,
                "tags" => once(&mut tags, &mut map, "tags")?,
                "costCategories" => once(&mut cost_categories, &mut map, "costCategories")?,
                "amount" => once(&mut amount, &mut map, "amount")?,
                "unit" => once(&mut unit, &mut map, "unit")?,
                "metrics" => once(&mut metrics, &mut map, "metrics")?,
                "lines" => once(&mut lines, &mut map, "lines")?,
                "totals" => once(&mut totals, &mut map, "totals")?,
                "estimated" => once(&mut estimated, &mut map, "estimated")?,
                // FOCUS columns (`format: focus`; seed fields are lower camel case): what a
                // log line names is read back, the rest skipped.
                _ if key.starts_with(|c: char| c.is_ascii_uppercase()) || key.starts_with("x_") => {
                    let value: serde_json::Value = map.next_value()?;
                    let text = value.as_str().map(str::to_string);
                    match key.as_str() {
                        "ChargePeriodStart" => {
                            date = text.map(|t| t.get(..10).unwrap_or(&t).to_string())
                        }
                        "ServiceName" => service = Some(text),
                        "BilledCost" => amount = text,
                        "BillingCurrency" => unit = text,
                        _ => {}
                    }
                }
                // Other grouped dimensions, by their lower camel case field.
                _ => {
                    let value: String = map.next_value()?;
                    dimensions.insert(key, value);
                }
            }
        }
        Ok(Data {
            vance_source: vance_source.unwrap_or_default(),
            vance_type: vance_type.unwrap_or_default(),
            date: need(date, "date")?,
            service: service.flatten(),
            dimensions,
            tags: tags.unwrap_or_default(),
            cost_categories: cost_categories.unwrap_or_default(),
            amount: amount.unwrap_or_default(),
            unit: unit.unwrap_or_default(),
            metrics: metrics.unwrap_or_default(),
            lines: lines.flatten(),
            totals: totals.flatten(),
            estimated: estimated.flatten(),
        })
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Data, D::Error> {
        deserializer.deserialize_map(DataVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_become_extensions_and_dimensions() {
        let json = r#"{"specversion":"1.0","id":"i","source":"s","type":"t","datacontenttype":"application/json","time":"x","estimated":true,"revision":2,"data":{"date":"2022-06-13","service":"S3","linkedAccount":"123","amount":"1","unit":"USD","lines":null}}"#;
        let event: Event = serde_json::from_str(json).unwrap();
        assert_eq!(event.extensions["revision"], serde_json::json!(2));
        assert!(event.estimated());
        assert_eq!(event.data.dimensions["linkedAccount"], "123");
        assert_eq!(event.data.service.as_deref(), Some("S3"));
        assert_eq!(event.data.lines, None);
        assert_eq!(event.to_json(), json.replace(r#","lines":null"#, ""));
    }

    #[test]
    fn focus_data_reads_back_what_a_log_line_names() {
        let json = r#"{"specversion":"1.0","id":"i","source":"s","type":"t","datacontenttype":"application/json","time":"x","data":{"BilledCost":"1.5","ListCost":null,"BillingCurrency":"USD","ChargePeriodStart":"2022-06-13T00:00:00Z","ServiceName":"S3","SubAccountId":null,"Tags":{"team":"web"},"x_Estimated":true,"x_Revision":0}}"#;
        let event: Event = serde_json::from_str(json).unwrap();
        assert_eq!(event.data.date, "2022-06-13");
        assert_eq!(event.data.service.as_deref(), Some("S3"));
        assert_eq!((&*event.data.amount, &*event.data.unit), ("1.5", "USD"));
        assert!(event.data.dimensions.is_empty());
    }

    #[test]
    fn missing_duplicate_and_mistyped_fields_are_errors() {
        let ok = r#""specversion":"1.0","id":"i","source":"s","type":"t","datacontenttype":"a","time":"x""#;
        let err = |json: String| {
            serde_json::from_str::<Event>(&json)
                .unwrap_err()
                .to_string()
        };
        assert!(err(format!("{{{ok}}}")).contains("missing field `data`"));
        assert!(err(format!(r#"{{{ok},"data":{{}}}}"#)).contains("missing field `date`"));
        assert!(
            err(format!(r#"{{{ok},"id":"j","data":{{"date":"d"}}}}"#))
                .contains("duplicate field `id`")
        );
        assert!(
            err(format!(r#"{{{ok},"data":{{"date":"d","region":7}}}}"#)).contains("invalid type")
        );
    }
}
