//! FOCUS 1.2 column names for a line's data (`format: focus`), and the `format` and `billing_account_id` keys.
//!
//! Pure: the columns are made from the seed's data of the line (what the revision index
//! and the snapshots keep), its `revision` and `estimated` attributes, and the billing
//! account. This is FOCUS's vocabulary at the grain of a Cost Explorer line (a day by one
//! or two keys), not a conformant FOCUS dataset: columns Cost Explorer has no value for
//! are null.

use crate::event::{Data, Event};
use crate::schedule::{format_date, parse_date};
use crate::yaml::{ConfigError, Doc, show};
use serde_json::value::RawValue;

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

/// What a `format: focus` request asks for: Cost Explorer's FOCUS metrics `BilledCost`,
/// `ListCost` and `ContractedCost`, and `NetAmortizedCost` for `EffectiveCost`.
pub const METRICS: [&str; 4] = [BILLED, EFFECTIVE, LIST, CONTRACTED];
const BILLED: &str = "BilledCost";
const EFFECTIVE: &str = "NetAmortizedCost";
const LIST: &str = "ListCost";
const CONTRACTED: &str = "ContractedCost";

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
            "no metric with format: focus (it asks for BilledCost, NetAmortizedCost, ListCost and ContractedCost)",
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
    let json = columns(&event.data, billing_account, event);
    Some(RawValue::from_string(json).expect("the columns are a JSON object"))
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

/// A JSON object written member by member (less code than a map or a derive).
struct Object(Vec<u8>);

impl Object {
    /// A member whose value is JSON text as it is.
    fn raw(&mut self, name: &str, json: &[u8]) {
        self.0.push(if self.0.is_empty() { b'{' } else { b',' });
        self.0.push(b'"');
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b"\":");
        self.0.extend_from_slice(json);
    }

    /// A string member, or null.
    fn text(&mut self, name: &str, value: Option<&str>) {
        match value {
            None => self.raw(name, b"null"),
            Some(v) => {
                self.raw(name, b"");
                serde_json::to_writer(&mut self.0, v).expect("writing to memory cannot fail");
            }
        }
    }
}

fn columns(data: &Data, billing_account: Option<&str>, event: &Event) -> String {
    let metric = |name: &str| data.metrics.get(name);
    let billed = metric(BILLED);
    let dimension = |field: &str| data.dimensions.get(field).map(String::as_str);
    let [start, end, month, next_month] = periods(&data.date);
    let mut c = Object(Vec::with_capacity(768));
    c.text("BilledCost", billed.map(|m| m.amount.as_str()));
    c.text(
        "EffectiveCost",
        metric(EFFECTIVE).map(|m| m.amount.as_str()),
    );
    c.text("ListCost", metric(LIST).map(|m| m.amount.as_str()));
    c.text(
        "ContractedCost",
        metric(CONTRACTED).map(|m| m.amount.as_str()),
    );
    c.text("BillingCurrency", billed.map(|m| m.unit.as_str()));
    c.text("ChargePeriodStart", start.as_deref());
    c.text("ChargePeriodEnd", end.as_deref());
    c.text("BillingPeriodStart", month.as_deref());
    c.text("BillingPeriodEnd", next_month.as_deref());
    c.text("BillingAccountId", billing_account);
    c.text("SubAccountId", dimension("linkedAccount"));
    c.text("SubAccountName", None);
    c.text("ProviderName", Some("AWS"));
    c.text(
        "PublisherName",
        Some(dimension("legalEntityName").unwrap_or("AWS")),
    );
    c.text(
        "InvoiceIssuerName",
        Some(dimension("invoicingEntity").unwrap_or("AWS")),
    );
    c.text("ServiceName", data.service.as_deref());
    c.text(
        "ServiceCategory",
        data.service.as_deref().map(service_category),
    );
    c.text("RegionId", dimension("region"));
    c.text(
        "ChargeCategory",
        dimension("recordType").map(charge_category),
    );
    if let Some(az) = dimension("az") {
        c.text("AvailabilityZone", Some(az));
    }
    for (name, keyed) in [
        ("Tags", &data.tags),
        ("x_CostCategories", &data.cost_categories),
    ] {
        if !keyed.is_empty() {
            c.raw(name, b"");
            serde_json::to_writer(&mut c.0, keyed).expect("writing to memory cannot fail");
        }
    }
    for (field, value) in &data.dimensions {
        if !OWN_COLUMNS.contains(&field.as_str()) {
            c.text(&custom_name(field), Some(value));
        }
    }
    let estimated: &[u8] = if event.estimated() { b"true" } else { b"false" };
    c.raw("x_Estimated", estimated);
    c.raw(
        "x_Revision",
        event.revision().unwrap_or(0).to_string().as_bytes(),
    );
    c.0.push(b'}');
    String::from_utf8(c.0).expect("serde_json writes UTF-8")
}

/// The day as ChargePeriodStart and End, and its month as BillingPeriodStart and End.
fn periods(date: &str) -> [Option<String>; 4] {
    let Some(day) = parse_date(date) else {
        return [None, None, None, None];
    };
    let (year, month, _) = day.to_calendar_date();
    let (next_year, next_month) = match u8::from(month) {
        12 => (year + 1, 1),
        m => (year, m + 1),
    };
    [
        Some(format!("{date}T00:00:00Z")),
        day.next_day()
            .map(|d| format!("{}T00:00:00Z", format_date(d))),
        Some(format!("{year:04}-{:02}-01T00:00:00Z", u8::from(month))),
        Some(format!("{next_year:04}-{next_month:02}-01T00:00:00Z")),
    ]
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
    for line in SERVICE_CATEGORIES.lines() {
        let mut names = line.split('\t');
        let category = names.next().unwrap_or("Other");
        if names.any(|name| name == service) {
            return category;
        }
    }
    "Other"
}

/// Each FOCUS category, then, tab-separated, Cost Explorer's names of the common services
/// in it (as its SERVICE dimension spells them), by their primary function: one text, not
/// a table of pointers, for the binary's size.
pub const SERVICE_CATEGORIES: &str = "\
Compute\t\
Amazon Elastic Compute Cloud - Compute\t\
EC2 - Other\t\
AWS Lambda\t\
Amazon Elastic Container Service\t\
Amazon Elastic Container Service for Kubernetes\t\
Amazon Elastic Kubernetes Service\t\
Amazon Lightsail\t\
AWS Batch\t\
AWS Elastic Beanstalk\t\
AWS App Runner\n\
Multicloud\t\
AWS Outposts\n\
Developer Tools\t\
Amazon Elastic Container Registry (ECR)\t\
Amazon EC2 Container Registry (ECR)\n\
Storage\t\
Amazon Simple Storage Service\t\
Amazon Elastic File System\t\
Amazon Elastic Block Store\t\
Amazon Glacier\t\
Amazon S3 Glacier\t\
Amazon FSx\t\
AWS Backup\t\
AWS Storage Gateway\n\
Databases\t\
Amazon Relational Database Service\t\
Amazon DynamoDB\t\
Amazon ElastiCache\t\
Amazon DocumentDB (with MongoDB compatibility)\t\
Amazon Neptune\t\
Amazon Keyspaces (for Apache Cassandra)\t\
Amazon MemoryDB\t\
Amazon Timestream\t\
Amazon Redshift\n\
Analytics\t\
Amazon Athena\t\
Amazon EMR\t\
Amazon Elastic MapReduce\t\
AWS Glue\t\
Amazon Kinesis\t\
Amazon Kinesis Firehose\t\
Amazon Managed Streaming for Apache Kafka\t\
Amazon OpenSearch Service\t\
Amazon Elasticsearch Service\t\
Amazon QuickSight\t\
AWS Lake Formation\n\
AI and Machine Learning\t\
Amazon SageMaker\t\
Amazon Bedrock\t\
Amazon Rekognition\t\
Amazon Comprehend\t\
Amazon Textract\t\
Amazon Polly\t\
Amazon Transcribe\t\
Amazon Translate\t\
Amazon Lex\n\
Networking\t\
Amazon Virtual Private Cloud\t\
Amazon CloudFront\t\
Amazon Route 53\t\
Elastic Load Balancing\t\
Amazon API Gateway\t\
AWS Direct Connect\t\
AWS Global Accelerator\t\
AWS Data Transfer\n\
Identity\t\
AWS Identity and Access Management\t\
Amazon Cognito\t\
AWS Directory Service\n\
Security\t\
AWS Key Management Service\t\
AWS Secrets Manager\t\
AWS WAF\t\
Amazon GuardDuty\t\
AWS Security Hub\t\
AWS Shield\t\
Amazon Inspector\n\
Management and Governance\t\
AmazonCloudWatch\t\
Amazon CloudWatch\t\
AWS CloudTrail\t\
AWS Config\t\
AWS Systems Manager\t\
AWS Cost Explorer\n\
Integration\t\
Amazon Simple Queue Service\t\
Amazon Simple Notification Service\t\
Amazon EventBridge\t\
AWS Step Functions";

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
                Metric {
                    name: LIST.into(),
                    amount: "13.5".into(),
                    unit: "USD".into(),
                },
                Metric {
                    name: CONTRACTED.into(),
                    amount: "12.9000".into(),
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
            "ListCost": "13.5",
            "ContractedCost": "12.9000",
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
        for line in SERVICE_CATEGORIES.lines() {
            let category = line.split('\t').next().unwrap();
            let service = line;
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
