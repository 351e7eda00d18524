//! A fake Amazon EventBridge: checks and records signed PutEvents and DescribeEventBus calls, answers the whole request or each entry from a script and a rule.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

use super::http::{Request, Response, Server};

pub const PUT_EVENTS: &str = "AWSEvents.PutEvents";
pub const DESCRIBE_EVENT_BUS: &str = "AWSEvents.DescribeEventBus";
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// EventBridge's bound on the entries of one request, counted as its User Guide does.
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// How the fake answers one entry: `None` takes it, `Some((code, message))` fails it.
/// Given the CloudEvent in its Detail and how often that event's id was sent before.
pub type EntryRule = Arc<dyn Fn(&Value, usize) -> Option<(String, String)> + Send + Sync>;

struct State {
    requests: Vec<Request>,
    /// Whole-request answers, used (in order) before any entry is looked at.
    script: VecDeque<Response>,
    /// Once the script is used up, every request gets this (a bus that always refuses).
    always: Option<Response>,
    rule: Option<EntryRule>,
    /// Entries of each PutEvents request that reached the entry stage, as sent.
    puts: Vec<Vec<Value>>,
    /// The Detail of every entry taken, parsed.
    accepted: Vec<Value>,
    /// How often each CloudEvent id was sent.
    sent: HashMap<String, usize>,
    violations: Vec<String>,
}

struct Shared {
    key_id: String,
    /// The region every request must be signed for.
    region: String,
    /// The buses DescribeEventBus knows, by name and by ARN.
    buses: Vec<String>,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct FakeEventBridge {
    shared: Arc<Shared>,
    server: Server,
}

impl FakeEventBridge {
    /// Expects requests signed with the test key for `events` in `region`; knows the buses
    /// `default` and `billing` of account 123456789012 in that region.
    pub fn start(region: &str) -> FakeEventBridge {
        let buses = ["default", "billing"]
            .iter()
            .flat_map(|b| {
                [
                    b.to_string(),
                    format!("arn:aws:events:{region}:123456789012:event-bus/{b}"),
                ]
            })
            .collect();
        let shared = Arc::new(Shared {
            key_id: super::ACCESS_KEY_ID.to_string(),
            region: region.to_string(),
            buses,
            state: Mutex::new(State {
                requests: Vec::new(),
                script: VecDeque::new(),
                always: None,
                rule: None,
                puts: Vec::new(),
                accepted: Vec::new(),
                sent: HashMap::new(),
                violations: Vec::new(),
            }),
        });
        let handler = Arc::clone(&shared);
        let server = Server::bind_loopback(Arc::new(move |r: &Request| handle(&handler, r)))
            .expect("bind fake EventBridge");
        FakeEventBridge { shared, server }
    }

    /// `http://127.0.0.1:PORT`, for AWS_ENDPOINT_URL_EVENTBRIDGE.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Answer the next requests with these, whole, before looking at their entries.
    pub fn script(&self, responses: impl IntoIterator<Item = Response>) {
        self.shared.state().script.extend(responses);
    }

    /// Once the script is used up, answer every request with this.
    pub fn always(&self, response: Option<Response>) {
        self.shared.state().always = response;
    }

    /// Decide each entry: see `EntryRule`.
    pub fn set_rule(
        &self,
        rule: impl Fn(&Value, usize) -> Option<(String, String)> + Send + Sync + 'static,
    ) {
        self.shared.state().rule = Some(Arc::new(rule));
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.state().requests.clone()
    }

    /// The requests with this X-Amz-Target.
    pub fn requests_for(&self, target: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.header("x-amz-target") == Some(target))
            .collect()
    }

    /// The entries of each PutEvents request answered entry by entry, as sent.
    pub fn puts(&self) -> Vec<Vec<Value>> {
        self.shared.state().puts.clone()
    }

    /// The CloudEvent of every entry taken, in order.
    pub fn accepted(&self) -> Vec<Value> {
        self.shared.state().accepted.clone()
    }

    /// Panic (with the details) if any request was not what EventBridge takes.
    pub fn assert_no_violations(&self) {
        let violations = self.shared.state().violations.clone();
        assert!(
            violations.is_empty(),
            "fake EventBridge saw malformed requests:\n{}",
            violations.join("\n")
        );
    }
}

/// A JSON 1.1 error answer: `{"__type": code, "message": message}`.
pub fn error(status: u16, code: &str, message: &str) -> Response {
    let body = json!({"__type": code, "message": message}).to_string();
    Response::with_body(status, CONTENT_TYPE, body)
}

/// PutEvents's throttling of a whole request.
pub fn throttled() -> Response {
    error(400, "ThrottlingException", "Rate exceeded")
}

fn handle(shared: &Shared, request: &Request) -> Response {
    let mut state = shared.state();
    state.requests.push(request.clone());
    let number = state.requests.len();
    let problems = check_request(shared, request);
    if !problems.is_empty() {
        let message = format!("request #{number}: {}", problems.join("; "));
        state.violations.push(message.clone());
        return error(
            400,
            "ValidationException",
            &format!("fake EventBridge: {message}"),
        );
    }
    if let Some(response) = state.script.pop_front().or_else(|| state.always.clone()) {
        return response;
    }
    let body = request.json().unwrap_or(Value::Null);
    if request.header("x-amz-target") == Some(DESCRIBE_EVENT_BUS) {
        let name = body["Name"].as_str().unwrap_or("default");
        if !shared.buses.iter().any(|b| b == name) {
            let message = format!("Event bus {name} does not exist.");
            return error(400, "ResourceNotFoundException", &message);
        }
        let short = name.rsplit('/').next().unwrap_or(name);
        let arn = format!(
            "arn:aws:events:{}:123456789012:event-bus/{short}",
            shared.region
        );
        let answer = json!({"Name": short, "Arn": arn}).to_string();
        return Response::with_body(200, CONTENT_TYPE, answer);
    }
    let entries = body["Entries"].as_array().cloned().unwrap_or_default();
    if let Some(problem) = check_entries(&entries) {
        let message = format!("request #{number}: {problem}");
        state.violations.push(message.clone());
        return error(
            400,
            "ValidationException",
            &format!("fake EventBridge: {message}"),
        );
    }
    state.puts.push(entries.clone());
    let rule = state.rule.clone();
    let mut results = Vec::new();
    for entry in &entries {
        let detail: Value = entry["Detail"]
            .as_str()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or(Value::Null);
        let id = detail["id"].as_str().unwrap_or_default().to_string();
        let before = *state.sent.get(&id).unwrap_or(&0);
        *state.sent.entry(id.clone()).or_default() += 1;
        match rule.as_ref().and_then(|r| r(&detail, before)) {
            None => {
                let event_id = format!("eb-{}-{}", id, before + 1);
                results.push(json!({"EventId": event_id}));
                state.accepted.push(detail);
            }
            Some((code, message)) => {
                results.push(json!({"ErrorCode": code, "ErrorMessage": message}));
            }
        }
    }
    let failed = results
        .iter()
        .filter(|r| r.get("ErrorCode").is_some())
        .count();
    let answer = json!({"FailedEntryCount": failed, "Entries": results}).to_string();
    Response::with_body(200, CONTENT_TYPE, answer)
}

/// What every EventBridge request must be: a signed JSON 1.1 POST for `events`.
fn check_request(shared: &Shared, request: &Request) -> Vec<String> {
    let mut problems = Vec::new();
    if request.method != "POST" || request.path() != "/" {
        problems.push(format!(
            "{} {} (expected POST /)",
            request.method, request.target
        ));
    }
    match request.header("x-amz-target") {
        Some(PUT_EVENTS | DESCRIBE_EVENT_BUS) => {}
        other => problems.push(format!("X-Amz-Target {other:?}")),
    }
    match request.header("content-type") {
        Some(ct) if ct.eq_ignore_ascii_case(CONTENT_TYPE) => {}
        other => problems.push(format!("Content-Type {other:?} (expected {CONTENT_TYPE})")),
    }
    let prefix = format!("AWS4-HMAC-SHA256 Credential={}/", shared.key_id);
    let scope = format!("/{}/events/aws4_request", shared.region);
    match request.header("authorization") {
        Some(auth) if auth.starts_with(&prefix) && auth.contains(&scope) => {}
        other => problems.push(format!(
            "Authorization {other:?} (expected {prefix}…{scope})"
        )),
    }
    if request.header("x-amz-date").is_none() {
        problems.push("no X-Amz-Date header".into());
    }
    if request.json().is_err() {
        problems.push(format!("a body that is not JSON: {}", request.body_text()));
    }
    problems
}

/// What PutEvents validates of its entries: 1 to 10, within 256 KiB, each with a Source, a
/// DetailType, a JSON object as Detail, an EventBusName and a Time in epoch seconds.
fn check_entries(entries: &[Value]) -> Option<String> {
    if entries.is_empty() || entries.len() > 10 {
        return Some(format!("{} entries (expected 1 to 10)", entries.len()));
    }
    let mut bytes = 0;
    for (i, e) in entries.iter().enumerate() {
        let text = |k: &str| e[k].as_str().filter(|s| !s.is_empty());
        let (Some(source), Some(kind), Some(detail), Some(_)) = (
            text("Source"),
            text("DetailType"),
            text("Detail"),
            text("EventBusName"),
        ) else {
            return Some(format!(
                "entry {i} lacks Source, DetailType, Detail or EventBusName: {e}"
            ));
        };
        if !serde_json::from_str::<Value>(detail).is_ok_and(|d| d.is_object()) {
            return Some(format!("entry {i}: Detail is not a JSON object"));
        }
        if !e["Time"].is_u64() {
            return Some(format!(
                "entry {i}: Time {} (expected epoch seconds)",
                e["Time"]
            ));
        }
        bytes += 14 + source.len() + kind.len() + detail.len();
    }
    (bytes > MAX_REQUEST_BYTES)
        .then(|| format!("entries of {bytes} bytes (at most {MAX_REQUEST_BYTES})"))
}
