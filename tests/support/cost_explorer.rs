//! A fake AWS Cost Explorer: checks and records GetCostAndUsage calls, serves scripted errors, then generated paginated costs.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

use serde_json::{Value, json};
use time::Date;
use time::macros::format_description;

use super::http::{Request, Response, Server};

pub const X_AMZ_TARGET: &str = "AWSInsightsIndexService.GetCostAndUsage";
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Amount strings the generator cycles through: each must reach the receiver untouched.
pub const TRICKY_AMOUNTS: &[&str] = &[
    "12.294",
    "0.0000001234",
    "-12.5",
    "3.1000000000",
    "0",
    "98765432109876543210.0123456789",
    "0.01",
    "-0.0000000001",
];

/// How the fake generates its default answers and what it expects of a caller.
#[derive(Clone, Debug)]
pub struct CeOptions {
    pub groups_per_day: usize,
    pub page_size: usize,
    /// The access key id the Authorization header must carry; `None` accepts any.
    pub key_id: Option<String>,
    /// When set, X-Amz-Security-Token must equal it.
    pub session_token: Option<String>,
    /// Send `"NextPageToken": ""` on the last page instead of leaving it out.
    pub empty_final_token: bool,
    pub unit: String,
}

impl Default for CeOptions {
    fn default() -> CeOptions {
        CeOptions {
            groups_per_day: 3,
            page_size: 100,
            key_id: Some(super::ACCESS_KEY_ID.to_string()),
            session_token: None,
            empty_final_token: false,
            unit: "USD".to_string(),
        }
    }
}

/// One generated billing line, as the events must carry it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Line {
    pub date: String,
    pub service: String,
    pub amount: String,
    pub unit: String,
}

/// What the fake answered to one request.
#[derive(Clone, Debug)]
pub struct Served {
    /// Read by tests/bench/servers.rs.
    #[allow(dead_code)]
    pub status: u16,
    /// The NextPageToken handed out in this answer, if any.
    pub next_token: Option<String>,
    /// Read by the examples (the demo's fake and the benchmark's servers).
    #[allow(dead_code)]
    pub groups: usize,
}

/// Answers a request from its parsed body and its number (1 for the first request).
pub type Rule = Arc<dyn Fn(&Value, usize) -> Response + Send + Sync>;

#[derive(Default)]
struct State {
    requests: Vec<Request>,
    served: Vec<Served>,
    script: VecDeque<Response>,
    always: Option<Response>,
    rule: Option<Rule>,
    violations: Vec<String>,
    /// token -> (the query it pages: the body without its token, offset)
    tokens: HashMap<String, (String, usize)>,
    /// Numbers that moved since the first answer: (date, first key) -> amount of every metric.
    revised: HashMap<(String, String), String>,
    /// Groups that are no longer there: (date, first key).
    removed: Vec<(String, String)>,
    /// Days up to this one (YYYY-MM-DD) are final (`Estimated: false`); later ones are estimates.
    final_through: Option<String>,
    /// Every nth generated group (0: none) has moved to a new amount (for the benchmark).
    drift: usize,
}

struct Shared {
    options: CeOptions,
    state: Mutex<State>,
    /// Answers to requests from this number on wait until released (see `hold_from`).
    held_from: Mutex<Option<usize>>,
    released: Condvar,
}

pub struct FakeCostExplorer {
    shared: Arc<Shared>,
    server: Server,
}

impl FakeCostExplorer {
    pub fn start(options: CeOptions) -> FakeCostExplorer {
        let shared = Arc::new(Shared {
            options,
            state: Mutex::new(State::default()),
            held_from: Mutex::new(None),
            released: Condvar::new(),
        });
        let handler_shared = Arc::clone(&shared);
        let server = Server::bind_loopback(Arc::new(move |request: &Request| {
            let response = handle(&handler_shared, request);
            let number = handler_shared.state.lock().map_or(0, |s| s.requests.len());
            let mut held = handler_shared
                .held_from
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            while held.is_some_and(|from| number >= from) {
                held = handler_shared
                    .released
                    .wait(held)
                    .unwrap_or_else(|e| e.into_inner());
            }
            response
        }))
        .expect("bind fake Cost Explorer");
        FakeCostExplorer { shared, server }
    }

    /// Defaults, with this many groups per day and groups per page.
    pub fn with_groups(groups_per_day: usize, page_size: usize) -> FakeCostExplorer {
        FakeCostExplorer::start(CeOptions {
            groups_per_day,
            page_size,
            ..CeOptions::default()
        })
    }

    /// `http://127.0.0.1:PORT`, the value for the `endpoint` config key.
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn options(&self) -> &CeOptions {
        &self.shared.options
    }

    /// From now on the answer to the `n`th request (1 for the first) and to every later one
    /// waits until `release`; requests are still recorded as they come. A page in flight
    /// for as long as a test needs.
    #[allow(dead_code)] // the demo's fake and the benchmark's servers
    pub fn hold_from(&self, n: usize) {
        *self
            .shared
            .held_from
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(n);
    }

    /// Answers every held request, and no longer holds any.
    #[allow(dead_code)]
    pub fn release(&self) {
        *self
            .shared
            .held_from
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        self.shared.released.notify_all();
    }

    /// Serve this before any generated answer (queued in order).
    pub fn push(&self, response: Response) {
        self.state().script.push_back(response);
    }

    /// Once the script is used up, answer every request with this instead of generating.
    pub fn always(&self, response: Response) {
        self.state().always = Some(response);
    }

    /// Once the script is used up, answer every request with `rule` (a lying Cost Explorer:
    /// cycling tokens, short or misdated answers, bad keys).
    pub fn answer_with(&self, rule: impl Fn(&Value, usize) -> Response + Send + Sync + 'static) {
        self.state().rule = Some(Arc::new(rule));
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state().requests.clone()
    }

    pub fn request_count(&self) -> usize {
        self.state().requests.len()
    }

    /// Every request body, parsed.
    pub fn bodies(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .map(|r| r.json().unwrap_or(Value::Null))
            .collect()
    }

    pub fn served(&self) -> Vec<Served> {
        self.state().served.clone()
    }

    /// Requests that did not look like a signed GetCostAndUsage call.
    pub fn violations(&self) -> Vec<String> {
        self.state().violations.clone()
    }

    /// Panic (with the details) if any request had the wrong shape.
    pub fn assert_no_violations(&self) {
        let violations = self.violations();
        assert!(
            violations.is_empty(),
            "fake Cost Explorer saw malformed requests:\n{}",
            violations.join("\n")
        );
    }

    /// The lines the default generator produces for days in [start, end).
    pub fn expected_lines(&self, start: &str, end: &str) -> Vec<Line> {
        expected_lines(&self.shared.options, start, end)
    }

    /// From now on, the group whose first key is `key` on `date` has this amount (every metric).
    pub fn revise(&self, date: &str, key: &str, amount: &str) {
        self.state()
            .revised
            .insert((date.into(), key.into()), amount.into());
    }

    /// From now on, the group whose first key is `key` on `date` is no longer sent.
    pub fn remove(&self, date: &str, key: &str) {
        self.state().removed.push((date.into(), key.into()));
    }

    /// From now on, every `n`th generated group of a request has a new amount (every metric).
    #[allow(dead_code)] // tests/bench/servers.rs
    pub fn drift(&self, n: usize) {
        self.state().drift = n;
    }

    /// From now on, days up to `date` are final (`Estimated: false`), as AWS finishes metering.
    pub fn finalize_through(&self, date: &str) {
        self.state().final_through = Some(date.into());
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One generated group as Cost Explorer sends it: Keys in GroupBy order, and
/// (metric, amount, unit) in Metrics order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    pub date: String,
    pub keys: Vec<String>,
    pub metrics: Vec<(String, String, String)>,
}

/// A GroupBy entry of a request: (Type, Key).
pub type GroupByEntry = (String, String);

/// The request's GroupBy as Cost Explorer validates it: one or two entries of a known type.
fn parse_group_by(value: &Value) -> Result<Vec<GroupByEntry>, String> {
    let entries = match value.as_array() {
        Some(list) if (1..=2).contains(&list.len()) => list,
        _ => return Err(format!("GroupBy {value} (expected one or two entries)")),
    };
    let mut out = Vec::new();
    for entry in entries {
        match (entry["Type"].as_str(), entry["Key"].as_str()) {
            (Some(t @ ("DIMENSION" | "TAG" | "COST_CATEGORY")), Some(k)) if !k.is_empty() => {
                out.push((t.to_string(), k.to_string()));
            }
            _ => return Err(format!("GroupBy entry {entry} (expected Type and Key)")),
        }
    }
    Ok(out)
}

/// The Keys value of group `group` for one GroupBy entry: services and accounts by number,
/// tags as `key$value` (every third group untagged: `key$`; some values non-ASCII),
/// cost categories as `name$value`.
pub fn key_for(entry: &GroupByEntry, group: usize) -> String {
    let (kind, key) = (entry.0.as_str(), entry.1.as_str());
    match (kind, key) {
        ("DIMENSION", "SERVICE") => service_name(group),
        ("DIMENSION", "LINKED_ACCOUNT") => format!("{:012}", 100_000_000_000usize + group),
        ("DIMENSION", other) => format!("{other} {group:04}"),
        ("TAG", _) if group.is_multiple_of(3) => format!("{key}$"),
        ("TAG", _) if group % 3 == 1 => format!("{key}$équipe \"{group}\""),
        ("TAG", _) => format!("{key}$web-{group}"),
        _ => format!("{key}$Team {group}"),
    }
}

/// What the generator answers for days in [start, end) to a request with this GroupBy and
/// these Metrics; the nth metric of a group is the amount of the (group + n)th.
pub fn breakdown_lines(
    options: &CeOptions,
    start: &str,
    end: &str,
    group_by: &[GroupByEntry],
    metrics: &[String],
) -> Vec<Generated> {
    let (Some(start), Some(end)) = (parse_date(start), parse_date(end)) else {
        panic!("breakdown_lines: bad dates {start} {end}");
    };
    let mut lines = Vec::new();
    let mut day = start;
    while day < end {
        for group in 1..=options.groups_per_day {
            let metrics = metrics
                .iter()
                .enumerate()
                .map(|(n, m)| {
                    let unit = match m.as_str() {
                        "UsageQuantity" | "NormalizedUsageAmount" => "N/A".to_string(),
                        _ => options.unit.clone(),
                    };
                    (m.clone(), amount_for(day, group + n), unit)
                })
                .collect();
            lines.push(Generated {
                date: format_date(day),
                keys: group_by.iter().map(|e| key_for(e, group)).collect(),
                metrics,
            });
        }
        day = day.next_day().expect("date in range");
    }
    lines
}

/// The lines the default generator produces for days in [start, end).
pub fn expected_lines(options: &CeOptions, start: &str, end: &str) -> Vec<Line> {
    let (Some(start), Some(end)) = (parse_date(start), parse_date(end)) else {
        panic!("expected_lines: bad dates {start} {end}");
    };
    let mut lines = Vec::new();
    let mut day = start;
    while day < end {
        for group in 1..=options.groups_per_day {
            lines.push(line_for(options, day, group));
        }
        day = day.next_day().expect("date in range");
    }
    lines
}

pub fn service_name(group: usize) -> String {
    format!("Service {group:04}")
}

pub fn amount_for(day: Date, group: usize) -> String {
    let index = (group + usize::from(day.day())) % TRICKY_AMOUNTS.len();
    TRICKY_AMOUNTS[index].to_string()
}

fn line_for(options: &CeOptions, day: Date, group: usize) -> Line {
    Line {
        date: format_date(day),
        service: service_name(group),
        amount: amount_for(day, group),
        unit: options.unit.clone(),
    }
}

pub fn parse_date(text: &str) -> Option<Date> {
    Date::parse(text, format_description!("[year]-[month]-[day]")).ok()
}

pub fn format_date(date: Date) -> String {
    date.format(format_description!("[year]-[month]-[day]"))
        .expect("format date")
}

/// A fixture file from fixtures/ce.
pub fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "fixtures", "ce", name]
        .iter()
        .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("read fixture {}: {e}", path.display()))
}

/// A JSON 1.1 error answer.
pub fn error_response(status: u16, body: impl Into<Vec<u8>>) -> Response {
    Response::with_body(status, CONTENT_TYPE, body)
}

pub fn throttling() -> Response {
    error_response(
        400,
        r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
    )
}

pub fn limit_exceeded() -> Response {
    error_response(400, fixture("error-limit-exceeded.json"))
}

pub fn internal_error() -> Response {
    error_response(
        500,
        r#"{"__type":"InternalFailure","message":"We encountered an internal error. Please try again."}"#,
    )
}

/// An nginx 502 page, as a proxy in front of the endpoint would send it.
pub fn html_502() -> Response {
    Response::with_body(502, "text/html", fixture("error-proxy.html"))
}

pub fn unrecognized_client() -> Response {
    error_response(403, fixture("error-unrecognized-client.json"))
}

pub fn access_denied() -> Response {
    error_response(400, fixture("error-access-denied.json"))
}

pub fn invalid_signature() -> Response {
    error_response(403, fixture("error-invalid-signature.json"))
}

fn handle(shared: &Shared, request: &Request) -> Response {
    let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
    state.requests.push(request.clone());

    let problems = check_shape(&shared.options, request);
    if !problems.is_empty() {
        let message = format!("request #{}: {}", state.requests.len(), problems.join("; "));
        state.violations.push(message.clone());
        let body = json!({"__type": "ValidationException", "message": format!("fake Cost Explorer: {message}")});
        state.served.push(Served {
            status: 400,
            next_token: None,
            groups: 0,
        });
        return error_response(400, body.to_string());
    }

    let ruled = state.rule.clone().map(|rule| {
        let body = request.json().unwrap_or(Value::Null);
        move |n| rule(&body, n)
    });
    let scripted = state
        .script
        .pop_front()
        .or_else(|| state.always.clone())
        .or_else(|| ruled.map(|answer| answer(state.requests.len())));
    if let Some(response) = scripted {
        state.served.push(Served {
            status: response.status,
            next_token: None,
            groups: 0,
        });
        return response;
    }

    // Cost Explorer's own answer to a Filter it cannot read: a ValidationException.
    let filter = request.json().ok().and_then(|b| b.get("Filter").cloned());
    if let Some(message) = filter.as_ref().and_then(filter_problem) {
        state.served.push(Served {
            status: 400,
            next_token: None,
            groups: 0,
        });
        let body = json!({"__type": "ValidationException", "message": message});
        return error_response(400, body.to_string());
    }

    match generate(&shared.options, &mut state, request) {
        Ok((body, next_token, groups)) => {
            state.served.push(Served {
                status: 200,
                next_token,
                groups,
            });
            Response::with_body(200, CONTENT_TYPE, body.to_string())
                .header("x-amzn-RequestId", "00000000-0000-4000-8000-000000000000")
        }
        Err(message) => {
            let message = format!("request #{}: {message}", state.requests.len());
            state.violations.push(message.clone());
            state.served.push(Served {
                status: 400,
                next_token: None,
                groups: 0,
            });
            error_response(
                400,
                json!({"__type": "ValidationException", "message": format!("fake Cost Explorer: {message}")})
                    .to_string(),
            )
        }
    }
}

/// What Cost Explorer says about an Expression it cannot read (its messages), if anything.
pub fn filter_problem(expression: &Value) -> Option<String> {
    const ROOTS: [&str; 6] = ["And", "Or", "Not", "Dimensions", "Tags", "CostCategories"];
    let Some(map) = expression.as_object() else {
        return Some(format!("Expression {expression} is not an object"));
    };
    let roots: Vec<&String> = map.keys().filter(|k| ROOTS.contains(&k.as_str())).collect();
    if roots.len() != 1 || map.len() != 1 {
        return Some(
            "Expression has more than one roots. Only one root operator is allowed for each \
             expression: And, Or, Not, Dimensions, Tags, CostCategories"
                .to_string(),
        );
    }
    let value = &map[roots[0].as_str()];
    match roots[0].as_str() {
        "And" | "Or" => match value.as_array() {
            Some(list) if list.len() >= 2 => list.iter().find_map(filter_problem),
            _ => Some(format!(
                "{} needs a list of at least two expressions",
                roots[0]
            )),
        },
        "Not" => filter_problem(value),
        _ => match (value["Key"].as_str(), value["Values"].as_array()) {
            (Some(_), Some(_)) => None,
            _ => Some(format!("{} needs Key and Values", roots[0])),
        },
    }
}

/// Everything wrong with the request's method, path and headers.
fn check_shape(options: &CeOptions, request: &Request) -> Vec<String> {
    let mut problems = Vec::new();
    if request.method != "POST" {
        problems.push(format!("method {} (expected POST)", request.method));
    }
    if request.path() != "/" {
        problems.push(format!("path {} (expected /)", request.target));
    }
    match request.header("x-amz-target") {
        Some(X_AMZ_TARGET) => {}
        other => problems.push(format!("X-Amz-Target {other:?} (expected {X_AMZ_TARGET})")),
    }
    match request.header("content-type") {
        Some(ct) if ct.eq_ignore_ascii_case(CONTENT_TYPE) => {}
        other => problems.push(format!("Content-Type {other:?} (expected {CONTENT_TYPE})")),
    }
    let prefix = match &options.key_id {
        Some(key_id) => format!("AWS4-HMAC-SHA256 Credential={key_id}/"),
        None => "AWS4-HMAC-SHA256 Credential=".to_string(),
    };
    match request.header("authorization") {
        Some(auth) if auth.starts_with(&prefix) => {
            if !auth.contains("/ce/aws4_request") {
                problems.push(format!("Authorization scope is not for service ce: {auth}"));
            }
        }
        other => problems.push(format!(
            "Authorization {other:?} (expected it to start with {prefix})"
        )),
    }
    if request.header("x-amz-date").is_none() {
        problems.push("no X-Amz-Date header".to_string());
    }
    if let Some(token) = &options.session_token
        && request.header("x-amz-security-token") != Some(token.as_str())
    {
        problems.push("X-Amz-Security-Token missing or wrong".to_string());
    }
    problems
}

/// The default answer: one page of generated groups. Returns (body, token handed out, group count).
fn generate(
    options: &CeOptions,
    state: &mut State,
    request: &Request,
) -> Result<(Value, Option<String>, usize), String> {
    let body = request.json()?;
    let start_text = body["TimePeriod"]["Start"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let end_text = body["TimePeriod"]["End"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (Some(start), Some(end)) = (parse_date(&start_text), parse_date(&end_text)) else {
        return Err(format!(
            "TimePeriod is not two YYYY-MM-DD dates: {}",
            body["TimePeriod"]
        ));
    };
    if start >= end {
        return Err(format!("Start {start_text} is not before End {end_text}"));
    }
    if body["Granularity"] != "DAILY" {
        return Err(format!(
            "Granularity {} (expected \"DAILY\")",
            body["Granularity"]
        ));
    }
    let metrics: Vec<String> = match body["Metrics"].as_array() {
        Some(list) if !list.is_empty() && list.iter().all(Value::is_string) => list
            .iter()
            .map(|m| m.as_str().unwrap_or_default().to_string())
            .collect(),
        _ => {
            return Err(format!(
                "Metrics {} (expected a list of metric names)",
                body["Metrics"]
            ));
        }
    };
    let group_by = parse_group_by(&body["GroupBy"])?;
    let mut query = body.clone();
    if let Some(map) = query.as_object_mut() {
        map.remove("NextPageToken");
    }
    let query = query.to_string();

    let offset = match body.get("NextPageToken") {
        None | Some(Value::Null) => 0,
        Some(Value::String(token)) => match state.tokens.get(token) {
            Some((q, offset)) if *q == query => *offset,
            Some(_) => return Err(format!("NextPageToken {token} belongs to another query")),
            None => return Err(format!("NextPageToken {token:?} was never handed out")),
        },
        Some(other) => return Err(format!("NextPageToken {other} is not a string")),
    };

    let mut lines = breakdown_lines(options, &start_text, &end_text, &group_by, &metrics);
    lines.retain(|l| {
        !state
            .removed
            .iter()
            .any(|(d, k)| *d == l.date && l.keys.first() == Some(k))
    });
    for line in &mut lines {
        let key = (
            line.date.clone(),
            line.keys.first().cloned().unwrap_or_default(),
        );
        if let Some(amount) = state.revised.get(&key) {
            for m in &mut line.metrics {
                m.1 = amount.clone();
            }
        }
    }
    if state.drift > 0 {
        for line in lines.iter_mut().step_by(state.drift) {
            for m in &mut line.metrics {
                m.1 = "1.2345".into();
            }
        }
    }
    let estimated = |day: Date| {
        state
            .final_through
            .as_deref()
            .and_then(parse_date)
            .is_none_or(|f| day > f)
    };
    let page_size = options.page_size.max(1);
    let page_end = (offset + page_size).min(lines.len());
    let page = &lines[offset.min(lines.len())..page_end];

    let mut results: Vec<Value> = Vec::new();
    if lines.is_empty() {
        let mut day = start;
        while day < end {
            results.push(result_by_time(day, Vec::new(), estimated(day)));
            day = day.next_day().expect("date in range");
        }
    }
    for line in page {
        let metrics: serde_json::Map<String, Value> = line
            .metrics
            .iter()
            .map(|(name, amount, unit)| (name.clone(), json!({"Amount": amount, "Unit": unit})))
            .collect();
        let group = json!({"Keys": line.keys, "Metrics": metrics});
        let same_day = results
            .last()
            .is_some_and(|r| r["TimePeriod"]["Start"] == line.date.as_str());
        if same_day {
            results
                .last_mut()
                .and_then(|r| r["Groups"].as_array_mut())
                .expect("groups array")
                .push(group);
        } else {
            let day = parse_date(&line.date).expect("generated date");
            results.push(result_by_time(day, vec![group], estimated(day)));
        }
    }

    let mut answer = json!({
        "GroupDefinitions": body["GroupBy"],
        "ResultsByTime": results,
        "DimensionValueAttributes": [],
    });
    let next_token = if page_end < lines.len() {
        // Opaque, with characters a client must not re-encode or trim.
        let token = format!("AQICAH+{:04}/pg{}==", state.tokens.len() + 1, page_end);
        state.tokens.insert(token.clone(), (query, page_end));
        answer["NextPageToken"] = Value::String(token.clone());
        Some(token)
    } else {
        if options.empty_final_token {
            answer["NextPageToken"] = Value::String(String::new());
        }
        None
    };
    Ok((answer, next_token, page.len()))
}

fn result_by_time(day: Date, groups: Vec<Value>, estimated: bool) -> Value {
    let next = day.next_day().expect("date in range");
    json!({
        "TimePeriod": {"Start": format_date(day), "End": format_date(next)},
        "Total": {},
        "Groups": groups,
        "Estimated": estimated
    })
}

/// A 200 answer with this JSON body.
pub fn answer(body: &Value) -> Response {
    Response::with_body(200, CONTENT_TYPE, body.to_string())
}

/// One `ResultsByTime` entry for `day` with groups of (keys, amount).
pub fn day_result(day: &str, groups: &[(Vec<&str>, &str)]) -> Value {
    let end = parse_date(day)
        .and_then(|d| d.next_day())
        .map(format_date)
        .unwrap_or_else(|| "2022-06-14".to_string());
    day_result_between(day, &end, groups)
}

/// A `ResultsByTime` entry with any Start and End text (a lying answer may send anything).
pub fn day_result_between(start: &str, end: &str, groups: &[(Vec<&str>, &str)]) -> Value {
    let groups: Vec<Value> = groups
        .iter()
        .map(|(keys, amount)| {
            json!({"Keys": keys, "Metrics": {"BlendedCost": {"Amount": amount, "Unit": "USD"}}})
        })
        .collect();
    json!({"TimePeriod": {"Start": start, "End": end}, "Total": {}, "Groups": groups, "Estimated": false})
}
