//! FOCUS 1.2 column names for a line's data (`format: focus`), and the `format` and `billing_account_id` keys.
//!
//! Pure: the columns are made from the seed's data of the line (what the revision index
//! and the snapshots keep), its `revision` and `estimated` attributes, and the billing
//! account. This is FOCUS's vocabulary at the grain of a Cost Explorer line (a day by one
//! or two keys), not a conformant FOCUS dataset: columns Cost Explorer has no value for
//! are null.

use crate::event::{Amount, Data, Event};
use crate::schedule::{format_date, parse_date};
use crate::yaml::{ConfigError, Doc, show};
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// What `data` holds: the seed's fields (the default), or FOCUS columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Seed,
    Focus,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Seed => "seed",
            Format::Focus => "focus",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub format: Format,
    /// `BillingAccountId`; without it the service asks STS whose the credentials are.
    pub billing_account_id: Option<String>,
}

/// The config keys this module owns.
pub const KEYS: [&str; 2] = ["format", "billing_account_id"];

/// What a `format: focus` request asks for: `BilledCost`, then `EffectiveCost`.
pub const METRICS: [&str; 2] = [BILLED, EFFECTIVE];
const BILLED: &str = "NetUnblendedCost";
const EFFECTIVE: &str = "NetAmortizedCost";

/// Reads `format` and `billing_account_id`. With `format: focus` the metrics are FOCUS's,
/// so a `metric` key as well is refused rather than silently overridden.
pub fn settings(doc: &Doc) -> Result<Settings, ConfigError> {
    let format = match doc.one_of("format", &["seed", "focus"], "seed or focus")? {
        Some(f) if f == "focus" => Format::Focus,
        _ => Format::Seed,
    };
    if format == Format::Focus
        && let Some(metric) = doc.value("metric")
    {
        return doc.expected(
            "metric",
            "no metric with format: focus (it asks for NetUnblendedCost and NetAmortizedCost)",
            &show(metric),
        );
    }
    let account = "a 12-digit AWS account id in quotes, e.g. \"123456789012\"";
    let billing_account_id = match doc.value("billing_account_id") {
        None => None,
        Some(serde_yaml::Value::String(s))
            if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(s.clone())
        }
        Some(other) => return doc.expected("billing_account_id", account, &show(other)),
    };
    Ok(Settings {
        format,
        billing_account_id,
    })
}

/// The FOCUS columns of a line event, as the JSON its data becomes; `None` for a day
/// summary, which keeps its own shape.
pub fn data(event: &Event, billing_account: Option<&str>) -> Option<Box<RawValue>> {
    if event.data.lines.is_some() {
        return None;
    }
    let columns = Columns::of(&event.data, billing_account, event);
    Some(serde_json::value::to_raw_value(&columns).expect("plain strings always serialize"))
}

/// The columns, in the FOCUS specification's groups: costs, then periods, then who and what.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Columns<'a> {
    billed_cost: Option<&'a str>,
    effective_cost: Option<&'a str>,
    list_cost: Option<&'a str>,
    contracted_cost: Option<&'a str>,
    billing_currency: Option<&'a str>,
    charge_period_start: Option<String>,
    charge_period_end: Option<String>,
    billing_period_start: Option<String>,
    billing_period_end: Option<String>,
    billing_account_id: Option<&'a str>,
    sub_account_id: Option<&'a str>,
    sub_account_name: Option<&'a str>,
    provider_name: &'a str,
    publisher_name: &'a str,
    invoice_issuer_name: &'a str,
    service_name: Option<&'a str>,
    service_category: Option<&'a str>,
    region_id: Option<&'a str>,
    charge_category: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    availability_zone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<&'a BTreeMap<String, String>>,
    /// The other grouped dimensions (`x_UsageType`, ...) and `x_CostCategories`.
    #[serde(flatten)]
    custom: BTreeMap<String, serde_json::Value>,
    #[serde(rename = "x_Estimated")]
    estimated: bool,
    #[serde(rename = "x_Revision")]
    revision: u32,
}

/// Grouped dimensions with a FOCUS column of their own (by their data field).
const OWN_COLUMNS: [&str; 6] = [
    "linkedAccount",
    "legalEntityName",
    "invoicingEntity",
    "region",
    "recordType",
    "az",
];

impl<'a> Columns<'a> {
    fn of(data: &'a Data, billing_account: Option<&'a str>, event: &Event) -> Columns<'a> {
        let metric = |name: &str| -> Option<&'a Amount> { data.metrics.get(name) };
        let billed = metric(BILLED);
        let dimension = |field: &str| data.dimensions.get(field).map(String::as_str);
        let day = parse_date(&data.date);
        let midnight = |d: time::Date| format!("{}T00:00:00Z", format_date(d));
        let month = day.map(|d| d.replace_day(1).expect("every month has a first day"));
        let next_month = month.map(|m| {
            let after = m + time::Duration::days(31);
            after.replace_day(1).expect("every month has a first day")
        });
        let mut custom = BTreeMap::new();
        for (field, value) in &data.dimensions {
            if !OWN_COLUMNS.contains(&field.as_str()) {
                custom.insert(custom_name(field), value.clone().into());
            }
        }
        if !data.cost_categories.is_empty() {
            let categories = serde_json::to_value(&data.cost_categories).expect("strings");
            custom.insert("x_CostCategories".into(), categories);
        }
        Columns {
            billed_cost: billed.map(|m| m.amount.as_str()),
            effective_cost: metric(EFFECTIVE).map(|m| m.amount.as_str()),
            list_cost: None,
            contracted_cost: None,
            billing_currency: billed.map(|m| m.unit.as_str()),
            charge_period_start: day.map(midnight),
            charge_period_end: day.and_then(|d| d.next_day()).map(midnight),
            billing_period_start: month.map(midnight),
            billing_period_end: next_month.map(midnight),
            billing_account_id: billing_account,
            sub_account_id: dimension("linkedAccount"),
            sub_account_name: None,
            provider_name: "AWS",
            publisher_name: dimension("legalEntityName").unwrap_or("AWS"),
            invoice_issuer_name: dimension("invoicingEntity").unwrap_or("AWS"),
            service_name: data.service.as_deref(),
            service_category: data.service.as_deref().map(service_category),
            region_id: dimension("region"),
            charge_category: dimension("recordType").map(charge_category),
            availability_zone: dimension("az"),
            tags: (!data.tags.is_empty()).then_some(&data.tags),
            custom,
            estimated: event.estimated(),
            revision: event.revision().unwrap_or(0),
        }
    }
}

/// `usageType` → `x_UsageType`.
pub fn custom_name(field: &str) -> String {
    let mut chars = field.chars();
    let first = chars.next().map(|c| c.to_ascii_uppercase());
    format!(
        "x_{}{}",
        first.map(String::from).unwrap_or_default(),
        chars.as_str()
    )
}

/// FOCUS's ChargeCategory of a Cost Explorer RECORD_TYPE; a type it does not know (AWS
/// adds some) is an `Adjustment`, FOCUS's category for charges that fit no other.
pub fn charge_category(record_type: &str) -> &'static str {
    match record_type {
        "Usage" | "DiscountedUsage" | "SavingsPlanCoveredUsage" | "SavingsPlanNegation" => "Usage",
        "RIFee" | "SavingsPlanRecurringFee" | "SavingsPlanUpfrontFee" | "Fee" | "Support" => {
            "Purchase"
        }
        "Tax" => "Tax",
        "Credit" => "Credit",
        _ => "Adjustment",
    }
}

/// FOCUS's ServiceCategory of a Cost Explorer SERVICE name, "Other" when it is not known.
pub fn service_category(service: &str) -> &'static str {
    SERVICE_CATEGORIES
        .iter()
        .find(|(name, _)| *name == service)
        .map_or("Other", |(_, category)| category)
}

/// Cost Explorer's names of the common services (as its SERVICE dimension spells them)
/// and the category of each by its primary function.
pub const SERVICE_CATEGORIES: [(&str, &str); 78] = [
    ("Amazon Elastic Compute Cloud - Compute", "Compute"),
    ("EC2 - Other", "Compute"),
    ("AWS Lambda", "Compute"),
    ("Amazon Elastic Container Service", "Compute"),
    ("Amazon Elastic Container Service for Kubernetes", "Compute"),
    ("Amazon Elastic Kubernetes Service", "Compute"),
    ("Amazon Lightsail", "Compute"),
    ("AWS Batch", "Compute"),
    ("AWS Elastic Beanstalk", "Compute"),
    ("AWS App Runner", "Compute"),
    ("AWS Outposts", "Multicloud"),
    ("Amazon Elastic Container Registry (ECR)", "Developer Tools"),
    ("Amazon EC2 Container Registry (ECR)", "Developer Tools"),
    ("Amazon Simple Storage Service", "Storage"),
    ("Amazon Elastic File System", "Storage"),
    ("Amazon Elastic Block Store", "Storage"),
    ("Amazon Glacier", "Storage"),
    ("Amazon S3 Glacier", "Storage"),
    ("Amazon FSx", "Storage"),
    ("AWS Backup", "Storage"),
    ("AWS Storage Gateway", "Storage"),
    ("Amazon Relational Database Service", "Databases"),
    ("Amazon DynamoDB", "Databases"),
    ("Amazon ElastiCache", "Databases"),
    (
        "Amazon DocumentDB (with MongoDB compatibility)",
        "Databases",
    ),
    ("Amazon Neptune", "Databases"),
    ("Amazon Keyspaces (for Apache Cassandra)", "Databases"),
    ("Amazon MemoryDB", "Databases"),
    ("Amazon Timestream", "Databases"),
    ("Amazon Redshift", "Databases"),
    ("Amazon Athena", "Analytics"),
    ("Amazon EMR", "Analytics"),
    ("Amazon Elastic MapReduce", "Analytics"),
    ("AWS Glue", "Analytics"),
    ("Amazon Kinesis", "Analytics"),
    ("Amazon Kinesis Firehose", "Analytics"),
    ("Amazon Managed Streaming for Apache Kafka", "Analytics"),
    ("Amazon OpenSearch Service", "Analytics"),
    ("Amazon Elasticsearch Service", "Analytics"),
    ("Amazon QuickSight", "Analytics"),
    ("AWS Lake Formation", "Analytics"),
    ("Amazon SageMaker", "AI and Machine Learning"),
    ("Amazon Bedrock", "AI and Machine Learning"),
    ("Amazon Rekognition", "AI and Machine Learning"),
    ("Amazon Comprehend", "AI and Machine Learning"),
    ("Amazon Textract", "AI and Machine Learning"),
    ("Amazon Polly", "AI and Machine Learning"),
    ("Amazon Transcribe", "AI and Machine Learning"),
    ("Amazon Translate", "AI and Machine Learning"),
    ("Amazon Lex", "AI and Machine Learning"),
    ("Amazon Virtual Private Cloud", "Networking"),
    ("Amazon CloudFront", "Networking"),
    ("Amazon Route 53", "Networking"),
    ("Elastic Load Balancing", "Networking"),
    ("Amazon API Gateway", "Networking"),
    ("AWS Direct Connect", "Networking"),
    ("AWS Global Accelerator", "Networking"),
    ("AWS Data Transfer", "Networking"),
    ("AWS Identity and Access Management", "Identity"),
    ("Amazon Cognito", "Identity"),
    ("AWS Directory Service", "Identity"),
    ("AWS Key Management Service", "Security"),
    ("AWS Secrets Manager", "Security"),
    ("AWS WAF", "Security"),
    ("Amazon GuardDuty", "Security"),
    ("AWS Security Hub", "Security"),
    ("AWS Shield", "Security"),
    ("Amazon Inspector", "Security"),
    ("AmazonCloudWatch", "Management and Governance"),
    ("Amazon CloudWatch", "Management and Governance"),
    ("AWS CloudTrail", "Management and Governance"),
    ("AWS Config", "Management and Governance"),
    ("AWS Systems Manager", "Management and Governance"),
    ("AWS Cost Explorer", "Management and Governance"),
    ("Amazon Simple Queue Service", "Integration"),
    ("Amazon Simple Notification Service", "Integration"),
    ("Amazon EventBridge", "Integration"),
    ("AWS Step Functions", "Integration"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breakdown::GroupBy;
    use crate::event::{Group, Line, Metric};

    fn parse(yaml: &str) -> Result<Settings, String> {
        let map: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap();
        settings(&Doc::new("c.yml", &map)).map_err(|e| e.0)
    }

    fn line(groups: &[(&str, &str)], date: &str) -> Line {
        Line {
            date: date.into(),
            groups: groups
                .iter()
                .map(|(by, value)| Group {
                    by: GroupBy::parse(by).unwrap(),
                    value: value.to_string(),
                })
                .collect(),
            metrics: vec![
                Metric {
                    name: BILLED.into(),
                    amount: "12.294".into(),
                    unit: "USD".into(),
                },
                Metric {
                    name: EFFECTIVE.into(),
                    amount: "-0.0000000001".into(),
                    unit: "USD".into(),
                },
            ],
            routing: true,
            estimated: true,
        }
    }

    fn columns(event: &Event, account: Option<&str>) -> serde_json::Value {
        serde_json::from_str(data(event, account).unwrap().get()).unwrap()
    }

    #[test]
    fn format_is_seed_or_focus_and_the_account_is_twelve_digits() {
        assert_eq!(parse("target: x").unwrap(), Settings::default());
        let s = parse("format: focus\nbilling_account_id: '012345678901'").unwrap();
        assert_eq!(s.format, Format::Focus);
        assert_eq!(s.billing_account_id.as_deref(), Some("012345678901"));
        for (yaml, want) in [
            (
                "format: FOCUS",
                "c.yml: format: expected seed or focus, found \"FOCUS\"",
            ),
            (
                "billing_account_id: 12345678901",
                "c.yml: billing_account_id: expected a 12-digit AWS account id in quotes",
            ),
            ("billing_account_id: '1234'", "found \"1234\""),
            (
                "format: focus\nmetric: UnblendedCost",
                "c.yml: metric: expected no metric with format: focus",
            ),
        ] {
            let e = parse(yaml).unwrap_err();
            assert!(e.contains(want), "{yaml}: {e}");
        }
        assert!(
            parse("metric: UnblendedCost").is_ok(),
            "metric alone is fine"
        );
    }

    #[test]
    fn a_service_line_in_focus_columns() {
        let mut event = Event::new(
            line(
                &[("SERVICE", "Amazon Simple Storage Service")],
                "2024-02-29",
            ),
            "t".into(),
        );
        event.set_revision(2);
        let got = columns(&event, Some("123456789012"));
        let want = serde_json::json!({
            "BilledCost": "12.294",
            "EffectiveCost": "-0.0000000001",
            "ListCost": null,
            "ContractedCost": null,
            "BillingCurrency": "USD",
            "ChargePeriodStart": "2024-02-29T00:00:00Z",
            "ChargePeriodEnd": "2024-03-01T00:00:00Z",
            "BillingPeriodStart": "2024-02-01T00:00:00Z",
            "BillingPeriodEnd": "2024-03-01T00:00:00Z",
            "BillingAccountId": "123456789012",
            "SubAccountId": null,
            "SubAccountName": null,
            "ProviderName": "AWS",
            "PublisherName": "AWS",
            "InvoiceIssuerName": "AWS",
            "ServiceName": "Amazon Simple Storage Service",
            "ServiceCategory": "Storage",
            "RegionId": null,
            "ChargeCategory": null,
            "x_Estimated": true,
            "x_Revision": 2
        });
        assert_eq!(got, want);
    }

    #[test]
    fn grouped_dimensions_fill_their_columns_and_the_rest_are_custom() {
        let december = line(
            &[("LINKED_ACCOUNT", "210987654321"), ("REGION", "eu-west-1")],
            "2023-12-31",
        );
        let got = columns(&Event::new(december, "t".into()), None);
        assert_eq!(got["SubAccountId"], "210987654321");
        assert_eq!(got["RegionId"], "eu-west-1");
        assert_eq!(got["BillingPeriodStart"], "2023-12-01T00:00:00Z");
        assert_eq!(got["BillingPeriodEnd"], "2024-01-01T00:00:00Z");
        assert_eq!(got["ChargePeriodEnd"], "2024-01-01T00:00:00Z");
        assert_eq!(got["ServiceName"], serde_json::Value::Null);
        assert_eq!(got["ServiceCategory"], serde_json::Value::Null);
        assert_eq!(got["BillingAccountId"], serde_json::Value::Null);
        assert_eq!(got["x_Revision"], 0);
        let other = line(
            &[
                ("RECORD_TYPE", "SavingsPlanUpfrontFee"),
                ("INVOICING_ENTITY", "Amazon Web Services EMEA SARL"),
            ],
            "2023-01-15",
        );
        let got = columns(&Event::new(other, "t".into()), None);
        assert_eq!(got["ChargeCategory"], "Purchase");
        assert_eq!(got["InvoiceIssuerName"], "Amazon Web Services EMEA SARL");
        assert_eq!(got["PublisherName"], "AWS");
        let other = line(
            &[("USAGE_TYPE", "USE1-BoxUsage"), ("TAG:team", "web")],
            "2023-01-15",
        );
        let got = columns(&Event::new(other, "t".into()), None);
        assert_eq!(got["x_UsageType"], "USE1-BoxUsage");
        assert_eq!(got["Tags"], serde_json::json!({"team": "web"}));
        let other = line(
            &[("AZ", "us-east-1a"), ("COST_CATEGORY:Teams", "")],
            "2023-01-15",
        );
        let got = columns(&Event::new(other, "t".into()), None);
        assert_eq!(got["AvailabilityZone"], "us-east-1a");
        assert_eq!(got["x_CostCategories"], serde_json::json!({"Teams": ""}));
        assert!(got.get("Tags").is_none());
    }

    #[test]
    fn record_types_and_services_map_to_focus_values() {
        for (record, category) in [
            ("Usage", "Usage"),
            ("SavingsPlanCoveredUsage", "Usage"),
            ("RIFee", "Purchase"),
            ("Tax", "Tax"),
            ("Credit", "Credit"),
            ("Refund", "Adjustment"),
            ("Enterprise Discount Program Discount", "Adjustment"),
        ] {
            assert_eq!(charge_category(record), category, "{record}");
        }
        assert_eq!(service_category("AWS Lambda"), "Compute");
        assert_eq!(service_category("Amazon DynamoDB"), "Databases");
        assert_eq!(service_category("Something New"), "Other");
        let allowed = [
            "AI and Machine Learning",
            "Analytics",
            "Business Applications",
            "Compute",
            "Databases",
            "Developer Tools",
            "Multicloud",
            "Identity",
            "Integration",
            "Internet of Things",
            "Management and Governance",
            "Media",
            "Migration",
            "Mobile",
            "Networking",
            "Security",
            "Storage",
            "Web",
            "Other",
        ];
        for (service, category) in SERVICE_CATEGORIES {
            assert!(allowed.contains(&category), "{service}: {category}");
        }
    }

    #[test]
    fn a_summary_keeps_its_shape() {
        let summary = crate::summary::event(
            Data {
                lines: Some(1),
                ..Data::default()
            },
            None,
            "t".into(),
        );
        assert!(data(&summary, None).is_none());
    }
}
