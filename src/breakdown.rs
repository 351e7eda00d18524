//! What a line is broken down by: the `group_by`, `metric` and `filter` config keys and their names on the wire and in events.

use crate::yaml::{ConfigError, Doc, show};
use serde_yaml::Value;

/// The seven classic Cost Explorer metrics `metric` may name.
pub const METRICS: [&str; 7] = [
    "AmortizedCost",
    "BlendedCost",
    "NetAmortizedCost",
    "NetUnblendedCost",
    "NormalizedUsageAmount",
    "UnblendedCost",
    "UsageQuantity",
];

/// Cost Explorer dimensions accepted in `group_by`.
pub const DIMENSIONS: [&str; 13] = [
    "AZ",
    "INSTANCE_TYPE",
    "LEGAL_ENTITY_NAME",
    "INVOICING_ENTITY",
    "LINKED_ACCOUNT",
    "OPERATION",
    "PLATFORM",
    "PURCHASE_TYPE",
    "REGION",
    "SERVICE",
    "TENANCY",
    "RECORD_TYPE",
    "USAGE_TYPE",
];

/// One entry of `group_by`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupBy {
    /// One of [`DIMENSIONS`].
    Dimension(&'static str),
    /// `TAG:<key>`
    Tag(String),
    /// `COST_CATEGORY:<name>`
    CostCategory(String),
}

impl GroupBy {
    /// `SERVICE`, `TAG:team`, `COST_CATEGORY:Teams`: the spelling of the config.
    pub fn parse(s: &str) -> Option<GroupBy> {
        if let Some(key) = s.strip_prefix("TAG:") {
            return (!key.is_empty()).then(|| GroupBy::Tag(key.to_string()));
        }
        if let Some(name) = s.strip_prefix("COST_CATEGORY:") {
            return (!name.is_empty()).then(|| GroupBy::CostCategory(name.to_string()));
        }
        DIMENSIONS
            .iter()
            .find(|d| **d == s)
            .map(|d| GroupBy::Dimension(d))
    }

    /// The config spelling back.
    pub fn label(&self) -> String {
        match self {
            GroupBy::Dimension(d) => d.to_string(),
            GroupBy::Tag(k) => format!("TAG:{k}"),
            GroupBy::CostCategory(n) => format!("COST_CATEGORY:{n}"),
        }
    }

    /// `(Type, Key)` of the request's GroupBy entry.
    pub fn wire(&self) -> (&'static str, &str) {
        match self {
            GroupBy::Dimension(d) => ("DIMENSION", d),
            GroupBy::Tag(k) => ("TAG", k),
            GroupBy::CostCategory(n) => ("COST_CATEGORY", n),
        }
    }

    /// The value of a group as Cost Explorer sends it in `Keys` → the value for the event.
    /// Tags come as `key$value` (untagged: `key$`), cost categories as `name$value`.
    pub fn value_of(&self, key: &str) -> String {
        match self {
            GroupBy::Dimension(_) => key.to_string(),
            GroupBy::Tag(prefix) | GroupBy::CostCategory(prefix) => {
                match key
                    .strip_prefix(prefix.as_str())
                    .and_then(|r| r.strip_prefix('$'))
                {
                    Some(value) => value.to_string(),
                    None => key.split_once('$').map_or(key, |(_, v)| v).to_string(),
                }
            }
        }
    }

    /// The event data field of a dimension in lower camel case (`LINKED_ACCOUNT` →
    /// `linkedAccount`); tags and cost categories go into `tags`/`costCategories` instead.
    pub fn field(&self) -> Option<String> {
        let GroupBy::Dimension(d) = self else {
            return None;
        };
        let mut out = String::new();
        for (i, word) in d.split('_').enumerate() {
            let lower = word.to_ascii_lowercase();
            let mut chars = lower.chars();
            if i > 0
                && let Some(first) = chars.next()
            {
                out.push(first.to_ascii_uppercase());
                out.push_str(chars.as_str());
            } else {
                out.push_str(&lower);
            }
        }
        Some(out)
    }

    /// The CloudEvents extension attribute carrying the value for routing: the dimension
    /// lower-cased without underscores (`linkedaccount`), `tag` + the tag key and
    /// `costcategory` + the name, each reduced to `a-z0-9`. `None` when nothing is left
    /// of a key (e.g. `TAG:日本`): that group is in data only.
    pub fn attribute(&self) -> Option<String> {
        let (prefix, name) = match self {
            GroupBy::Dimension(d) => ("", *d),
            GroupBy::Tag(k) => ("tag", k.as_str()),
            GroupBy::CostCategory(n) => ("costcategory", n.as_str()),
        };
        let clean: String = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        (!clean.is_empty()).then(|| format!("{prefix}{clean}"))
    }
}

/// The breakdown a config asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Breakdown {
    /// One or two entries; `[SERVICE]` by default.
    pub group_by: Vec<GroupBy>,
    /// One or more metrics, all in one request; the first gives `amount` and `unit`.
    pub metrics: Vec<String>,
    /// Sent verbatim as the request's `Filter`.
    pub filter: Option<serde_json::Value>,
    /// `group_by` was configured: the groups also become extension attributes. Without it
    /// the event keeps the seed's shape exactly.
    pub routing: bool,
}

impl Default for Breakdown {
    fn default() -> Breakdown {
        Breakdown {
            group_by: vec![GroupBy::Dimension("SERVICE")],
            metrics: vec!["BlendedCost".to_string()],
            filter: None,
            routing: false,
        }
    }
}

/// The config keys this module owns.
pub const KEYS: [&str; 3] = ["metric", "group_by", "filter"];

/// Reads `group_by`, `metric` and `filter` of the config.
pub fn settings(doc: &Doc) -> Result<Breakdown, ConfigError> {
    let fail = |key: &str, expected: &str, found: String| doc.expected(key, expected, &found);
    let mut breakdown = Breakdown::default();
    match doc.value("group_by") {
        None => {}
        Some(value) => {
            let expected = "a list of one or two of the dimensions \
                AZ, INSTANCE_TYPE, LEGAL_ENTITY_NAME, INVOICING_ENTITY, LINKED_ACCOUNT, OPERATION, \
                PLATFORM, PURCHASE_TYPE, REGION, SERVICE, TENANCY, RECORD_TYPE, USAGE_TYPE, \
                TAG:<key>, COST_CATEGORY:<name>";
            let Value::Sequence(items) = value else {
                return fail("group_by", expected, show(value));
            };
            if items.is_empty() || items.len() > 2 {
                let found = format!("a list of {}", items.len());
                return fail("group_by", expected, found);
            }
            let mut group_by = Vec::new();
            for item in items {
                let parsed = match item {
                    Value::String(s) => GroupBy::parse(s.trim()),
                    _ => None,
                };
                match parsed {
                    Some(g) if !group_by.contains(&g) => group_by.push(g),
                    Some(g) => {
                        return fail(
                            "group_by",
                            "two different groups",
                            format!("{:?} twice", g.label()),
                        );
                    }
                    None => return fail("group_by", expected, show(item)),
                }
            }
            if let [a, b] = &group_by[..]
                && a.attribute().is_some()
                && a.attribute() == b.attribute()
            {
                let found = format!("{:?} and {:?}", a.label(), b.label());
                return fail("group_by", "groups whose attribute names differ", found);
            }
            breakdown.group_by = group_by;
            breakdown.routing = true;
        }
    }
    let expected = format!("one of {} (or a list of them)", METRICS.join(", "));
    let metric = |v: &Value| match v {
        Value::String(s) if METRICS.contains(&s.trim()) => Some(s.trim().to_string()),
        _ => None,
    };
    match doc.value("metric") {
        None => {}
        Some(Value::Sequence(items)) if !items.is_empty() => {
            let mut metrics = Vec::new();
            for item in items {
                match metric(item) {
                    Some(m) if !metrics.contains(&m) => metrics.push(m),
                    Some(m) => return fail("metric", "different metrics", format!("{m:?} twice")),
                    None => return fail("metric", &expected, show(item)),
                }
            }
            breakdown.metrics = metrics;
        }
        Some(value) => match metric(value) {
            Some(m) => breakdown.metrics = vec![m],
            None => return fail("metric", &expected, show(value)),
        },
    }
    match doc.value("filter") {
        None => {}
        Some(value @ Value::Mapping(_)) => match serde_json::to_value(value) {
            Ok(json) => breakdown.filter = Some(json),
            Err(e) => {
                return fail(
                    "filter",
                    "a Cost Explorer Expression in plain YAML",
                    e.to_string(),
                );
            }
        },
        Some(value) => {
            return fail(
                "filter",
                "a Cost Explorer Expression (a mapping such as Not: {Dimensions: {Key: RECORD_TYPE, Values: [Credit, Refund]}})",
                show(value),
            );
        }
    }
    Ok(breakdown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Breakdown, String> {
        let map: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
        settings(&Doc::new("c.yml", &map)).map_err(|e| e.0)
    }

    #[test]
    fn no_keys_is_the_seed_breakdown() {
        let b = parse("target: x").unwrap();
        assert_eq!(b, Breakdown::default());
        assert_eq!(b.group_by, [GroupBy::Dimension("SERVICE")]);
        assert!(!b.routing);
    }

    #[test]
    fn group_by_accepts_one_or_two_dimensions_tags_and_categories() {
        let b = parse("group_by: [SERVICE, LINKED_ACCOUNT]").unwrap();
        assert_eq!(
            b.group_by,
            [
                GroupBy::Dimension("SERVICE"),
                GroupBy::Dimension("LINKED_ACCOUNT")
            ]
        );
        assert!(b.routing);
        let b = parse("group_by: ['TAG:cost-center', 'COST_CATEGORY:Teams']").unwrap();
        assert_eq!(
            b.group_by,
            [
                GroupBy::Tag("cost-center".into()),
                GroupBy::CostCategory("Teams".into())
            ]
        );
        assert!(parse("group_by: [SERVICE]").unwrap().routing);
    }

    #[test]
    fn bad_group_by_names_the_key() {
        for (yaml, found) in [
            ("group_by: [SERVICE, AZ, REGION]", "found a list of 3"),
            ("group_by: []", "found a list of 0"),
            ("group_by: [REGIONS]", "found \"REGIONS\""),
            ("group_by: ['TAG:']", "found \"TAG:\""),
            ("group_by: ['COST_CATEGORY:']", "found \"COST_CATEGORY:\""),
            ("group_by: SERVICE", "found \"SERVICE\""),
            ("group_by: [service]", "found \"service\""),
            ("group_by: [[SERVICE]]", "found a list"),
            ("group_by: [SERVICE, SERVICE]", "\"SERVICE\" twice"),
            (
                "group_by: ['TAG:a-b', 'TAG:ab']",
                "\"TAG:a-b\" and \"TAG:ab\"",
            ),
        ] {
            let e = parse(yaml).unwrap_err();
            assert!(e.starts_with("c.yml: group_by: expected "), "{yaml}: {e}");
            assert!(e.ends_with(found), "{yaml}: {e}");
        }
    }

    #[test]
    fn metric_is_a_name_or_a_list() {
        assert_eq!(
            parse("metric: UnblendedCost").unwrap().metrics,
            ["UnblendedCost"]
        );
        assert_eq!(
            parse("metric: [UnblendedCost, UsageQuantity]")
                .unwrap()
                .metrics,
            ["UnblendedCost", "UsageQuantity"]
        );
        for yaml in [
            "metric: Cost",
            "metric: []",
            "metric: [BlendedCost, Cost]",
            "metric: 3",
        ] {
            let e = parse(yaml).unwrap_err();
            assert!(
                e.starts_with("c.yml: metric: expected one of AmortizedCost"),
                "{yaml}: {e}"
            );
        }
        let e = parse("metric: [BlendedCost, BlendedCost]").unwrap_err();
        assert!(e.ends_with("\"BlendedCost\" twice"), "{e}");
    }

    #[test]
    fn filter_is_a_mapping_kept_verbatim() {
        let b = parse(
            "filter:\n  Not:\n    Dimensions: {Key: RECORD_TYPE, Values: [Credit, Refund]}\n",
        )
        .unwrap();
        assert_eq!(
            b.filter,
            Some(
                serde_json::json!({"Not": {"Dimensions": {"Key": "RECORD_TYPE", "Values": ["Credit", "Refund"]}}})
            )
        );
        for yaml in ["filter: [a]", "filter: RECORD_TYPE", "filter: 1"] {
            let e = parse(yaml).unwrap_err();
            assert!(
                e.starts_with("c.yml: filter: expected a Cost Explorer Expression"),
                "{e}"
            );
        }
    }

    #[test]
    fn dimension_fields_are_lower_camel_case() {
        let field = |d| GroupBy::parse(d).unwrap().field();
        assert_eq!(field("SERVICE").as_deref(), Some("service"));
        assert_eq!(field("LINKED_ACCOUNT").as_deref(), Some("linkedAccount"));
        assert_eq!(field("USAGE_TYPE").as_deref(), Some("usageType"));
        assert_eq!(field("AZ").as_deref(), Some("az"));
        assert_eq!(field("INSTANCE_TYPE").as_deref(), Some("instanceType"));
        assert_eq!(
            field("LEGAL_ENTITY_NAME").as_deref(),
            Some("legalEntityName")
        );
        assert_eq!(field("TAG:team"), None);
    }

    #[test]
    fn attribute_names_are_lower_case_alphanumerics() {
        let attr = |d| GroupBy::parse(d).unwrap().attribute();
        assert_eq!(attr("SERVICE").as_deref(), Some("service"));
        assert_eq!(attr("LINKED_ACCOUNT").as_deref(), Some("linkedaccount"));
        assert_eq!(attr("USAGE_TYPE").as_deref(), Some("usagetype"));
        assert_eq!(
            attr("LEGAL_ENTITY_NAME").as_deref(),
            Some("legalentityname")
        );
        assert_eq!(attr("TAG:Cost-Center").as_deref(), Some("tagcostcenter"));
        assert_eq!(
            attr("COST_CATEGORY:My Teams").as_deref(),
            Some("costcategorymyteams")
        );
        assert_eq!(attr("TAG:日本"), None);
        for d in DIMENSIONS {
            let a = attr(d).unwrap();
            assert!(
                a.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                "{a}"
            );
        }
    }

    #[test]
    fn tag_and_category_values_are_split_at_the_key() {
        let tag = GroupBy::Tag("team".into());
        assert_eq!(tag.value_of("team$web"), "web");
        assert_eq!(tag.value_of("team$"), "");
        assert_eq!(tag.value_of("team$a$b"), "a$b");
        assert_eq!(tag.value_of("other$x"), "x");
        let cc = GroupBy::CostCategory("Teams".into());
        assert_eq!(cc.value_of("Teams$Platform"), "Platform");
        assert_eq!(cc.value_of("Teams$"), "");
        let dim = GroupBy::Dimension("USAGE_TYPE");
        assert_eq!(dim.value_of("USE1$BoxUsage"), "USE1$BoxUsage");
    }
}
