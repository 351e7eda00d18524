//! A fake CloudEvents HTTP receiver: records deliveries, answers from a script, can start late, decodes events in both modes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::{Request, Response, Server};
use super::wait_until;

/// How the receiver answers one request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn ok() -> Reply {
        Reply::status(204)
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.to_string();
        self
    }
}

/// One request the receiver saw, and how it was answered.
#[derive(Clone, Debug)]
pub struct Received {
    pub request: Request,
    /// `None` while the answer is still being delayed.
    pub status: Option<u16>,
    pub answered_at: Option<Instant>,
}

impl Received {
    pub fn accepted(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    pub fn event(&self) -> Result<Event, String> {
        decode(&self.request)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Binary,
    Structured,
}

/// A delivered event, decoded from either content mode.
#[derive(Clone, Debug)]
#[allow(dead_code)] // every attribute is decoded (a missing one is an error); tests read a few
pub struct Event {
    pub mode: Mode,
    pub id: String,
    pub specversion: String,
    pub source: String,
    pub ty: String,
    pub time: String,
    pub datacontenttype: Option<String>,
    pub data: Value,
    pub date: String,
    pub service: String,
    pub amount: String,
    pub unit: String,
}

impl Event {
    /// The billing line this event carries.
    pub fn line(&self) -> super::Line {
        super::Line {
            date: self.date.clone(),
            service: self.service.clone(),
            amount: self.amount.clone(),
            unit: self.unit.clone(),
        }
    }

    /// (date, service): what makes an event unique.
    pub fn key(&self) -> (String, String) {
        (self.date.clone(), self.service.clone())
    }
}

/// Asserts that each (date, service) was sent with one id only, across every request.
pub fn assert_one_id_per_key(events: &[Event]) {
    let mut ids: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for event in events {
        ids.entry(event.key()).or_default().insert(event.id.clone());
    }
    for (key, ids) in ids {
        assert_eq!(ids.len(), 1, "{key:?} was sent with different ids: {ids:?}");
    }
}

/// Decode a CloudEvent from an HTTP request in binary or structured mode.
pub fn decode(request: &Request) -> Result<Event, String> {
    let content_type = request
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = request.json()?;
    if content_type.starts_with("application/cloudevents+json") {
        let field = |name: &str| -> Result<String, String> {
            body[name]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("structured event has no string {name:?}: {body}"))
        };
        let data = body["data"].clone();
        let (date, service, amount, unit) = data_fields(&data)?;
        Ok(Event {
            mode: Mode::Structured,
            id: field("id")?,
            specversion: field("specversion")?,
            source: field("source")?,
            ty: field("type")?,
            time: field("time")?,
            datacontenttype: body["datacontenttype"].as_str().map(str::to_string),
            data,
            date,
            service,
            amount,
            unit,
        })
    } else {
        let header = |name: &str| -> Result<String, String> {
            request
                .header(name)
                .map(str::to_string)
                .ok_or_else(|| format!("binary event has no {name} header"))
        };
        let (date, service, amount, unit) = data_fields(&body)?;
        Ok(Event {
            mode: Mode::Binary,
            id: header("ce-id")?,
            specversion: header("ce-specversion")?,
            source: header("ce-source")?,
            ty: header("ce-type")?,
            time: header("ce-time")?,
            datacontenttype: request.header("content-type").map(str::to_string),
            data: body,
            date,
            service,
            amount,
            unit,
        })
    }
}

fn data_fields(data: &Value) -> Result<(String, String, String, String), String> {
    let field = |name: &str| -> Result<String, String> {
        data[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("event data has no string {name:?}: {data}"))
    };
    Ok((
        field("date")?,
        field("service")?,
        field("amount")?,
        field("unit")?,
    ))
}

type Rule = Box<dyn Fn(&Request) -> Option<Reply> + Send + Sync>;

struct State {
    received: Vec<Received>,
    script: VecDeque<Reply>,
    default: Reply,
    delay: Duration,
    rule: Option<Arc<Rule>>,
}

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct FakeReceiver {
    shared: Arc<Shared>,
    port: u16,
    server: Mutex<Option<Server>>,
    reserved: Mutex<Option<ReservedPort>>,
}

impl FakeReceiver {
    /// Listen on a free loopback port now; answers 204 unless scripted.
    pub fn start() -> FakeReceiver {
        let receiver = FakeReceiver::start_later();
        receiver.go_live();
        receiver
    }

    /// Reserve a loopback port but refuse connections on it until `go_live`.
    pub fn start_later() -> FakeReceiver {
        let reserved = ReservedPort::new().expect("reserve a loopback port");
        FakeReceiver::new(reserved.port, Some(reserved))
    }

    fn new(port: u16, reserved: Option<ReservedPort>) -> FakeReceiver {
        FakeReceiver {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    received: Vec::new(),
                    script: VecDeque::new(),
                    default: Reply::ok(),
                    delay: Duration::ZERO,
                    rule: None,
                }),
            }),
            port,
            server: Mutex::new(None),
            reserved: Mutex::new(reserved),
        }
    }

    /// Start accepting connections on the reserved port.
    pub fn go_live(&self) {
        let reserved = self
            .reserved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("receiver is already live");
        let listener = reserved.listen().expect("listen on reserved port");
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let shared = Arc::clone(&self.shared);
        let server = Server::serve(
            listener,
            Arc::new(move |request: &Request| handle(&shared, request)),
        );
        *self.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(server);
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// `http://127.0.0.1:PORT` + path (path starts with `/`).
    pub fn url_with(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Answer the next requests with these, in order, then fall back to the default.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.state().script.extend(replies);
    }

    /// What to answer once the script is used up (204 unless changed).
    pub fn set_default(&self, reply: Reply) {
        self.shared.state().default = reply;
    }

    /// Delay every answer by this much.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.state().delay = delay;
    }

    /// A rule consulted before the script: `Some(reply)` answers the request.
    pub fn set_rule(&self, rule: impl Fn(&Request) -> Option<Reply> + Send + Sync + 'static) {
        self.shared.state().rule = Some(Arc::new(Box::new(rule)));
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.state().received.clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.state().received.len()
    }

    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(Received::accepted)
            .collect()
    }

    pub fn accepted_count(&self) -> usize {
        self.shared
            .state()
            .received
            .iter()
            .filter(|r| r.accepted())
            .count()
    }

    /// Every accepted request decoded; panics on one that is not a valid event.
    pub fn accepted_events(&self) -> Vec<Event> {
        self.accepted()
            .iter()
            .map(|r| {
                r.event()
                    .unwrap_or_else(|e| panic!("accepted request is not an event: {e}"))
            })
            .collect()
    }

    /// Every request decoded (accepted or not, including in-flight ones).
    pub fn all_events(&self) -> Vec<Event> {
        self.received()
            .iter()
            .map(|r| {
                r.event()
                    .unwrap_or_else(|e| panic!("request is not an event: {e}"))
            })
            .collect()
    }

    /// Wait until at least `n` requests were accepted.
    pub fn wait_for_accepted(&self, n: usize, within: Duration) -> bool {
        wait_until(within, || self.accepted_count() >= n)
    }

    /// Wait until at least `n` requests arrived (answered or not).
    pub fn wait_for_requests(&self, n: usize, within: Duration) -> bool {
        wait_until(within, || self.request_count() >= n)
    }
}

fn handle(shared: &Shared, request: &Request) -> Response {
    let (index, reply, delay) = {
        let mut state = shared.state();
        state.received.push(Received {
            request: request.clone(),
            status: None,
            answered_at: None,
        });
        let index = state.received.len() - 1;
        let ruled = state.rule.clone().and_then(|rule| rule(request));
        let reply = ruled
            .or_else(|| state.script.pop_front())
            .unwrap_or_else(|| state.default.clone());
        (index, reply.clone(), state.delay)
    };
    if !delay.is_zero() {
        // The receiver is slow on purpose: this is the behaviour under test, not synchronisation.
        thread::sleep(delay);
    }
    {
        let mut state = shared.state();
        state.received[index].status = Some(reply.status);
        state.received[index].answered_at = Some(Instant::now());
    }
    let mut response = Response::new(reply.status).body(reply.body.clone().into_bytes());
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    response
}

/// A loopback port that is bound but not listening, so connections are refused.
struct ReservedPort {
    fd: OwnedFd,
    port: u16,
}

impl ReservedPort {
    fn new() -> io::Result<ReservedPort> {
        // SAFETY: plain socket calls on a fresh descriptor we own; the sockaddr is fully initialised.
        unsafe {
            let raw = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(raw);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_port = 0;
            addr.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            if libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), len) != 0 {
                return Err(io::Error::last_os_error());
            }
            let mut bound: libc::sockaddr_in = std::mem::zeroed();
            let mut bound_len = len;
            if libc::getsockname(fd.as_raw_fd(), (&raw mut bound).cast(), &mut bound_len) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(ReservedPort {
                fd,
                port: u16::from_be(bound.sin_port),
            })
        }
    }

    fn listen(self) -> io::Result<TcpListener> {
        // SAFETY: listen on a bound socket we own.
        if unsafe { libc::listen(self.fd.as_raw_fd(), 128) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(TcpListener::from(self.fd))
    }
}
