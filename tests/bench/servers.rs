//! The benchmark's servers in one process: the fake Cost Explorer from tests/support and a fast counting CloudEvents receiver, driven over stdin.
//!
//! Protocol: one command per line on stdin, one JSON object per line on stdout.
//!   (at start)         {"receiver":"http://127.0.0.1:PORT/"}
//!   ce GROUPS PAGE     a new fake Cost Explorer (the previous one is dropped) -> {"ce":"http://127.0.0.1:PORT"}
//!   reset              zero the receiver's counters -> {"ok":true}
//!   drift N            every Nth group of the fake's answers gets a new amount -> {"ok":true}
//!   delay MICROS       the receiver waits this long before each answer (a slow target) -> {"ok":true}
//!   stats              counters of both servers -> {"ce_requests":..,"events":..,..}
//! Times are CLOCK_MONOTONIC nanoseconds, comparable with Python's time.monotonic_ns().
//! It exits when stdin closes.

// The benchmark needs only the fakes of the shared support.
#[allow(dead_code, unused_imports)]
#[path = "../support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{CeOptions, FakeCostExplorer};

/// What the receiver has seen since the last reset.
#[derive(Default)]
struct Counts {
    /// Requests that were well-formed binary-mode CloudEvents.
    events: u64,
    /// Requests that were not (missing ce-* header, wrong content type, body not the data object).
    bad: u64,
    first_bad: Option<String>,
    ids: HashSet<String>,
    /// TCP connections accepted.
    connections: u64,
}

struct Receiver {
    counts: Mutex<Counts>,
    delay_us: AtomicU64,
}

fn main() {
    let receiver = Arc::new(Receiver {
        counts: Mutex::new(Counts::default()),
        delay_us: AtomicU64::new(0),
    });
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
    let receiver_url = format!(
        "http://{}/",
        listener.local_addr().expect("receiver address")
    );
    let accepting = Arc::clone(&receiver);
    thread::spawn(move || accept_loop(listener, accepting));

    let stdout = io::stdout();
    let mut out = stdout.lock();
    reply(&mut out, &json!({ "receiver": receiver_url }));

    let mut ce: Option<FakeCostExplorer> = None;
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["ce", groups, page] => match (groups.parse(), page.parse()) {
                (Ok(groups_per_day), Ok(page_size)) => {
                    drop(ce.take());
                    let fake = FakeCostExplorer::start(CeOptions {
                        groups_per_day,
                        page_size,
                        // Any access key: the bench checks shape and signing scope, not keys.
                        key_id: None,
                        ..CeOptions::default()
                    });
                    let url = fake.url();
                    ce = Some(fake);
                    json!({ "ce": url })
                }
                _ => json!({ "error": format!("ce expects two counts: {line}") }),
            },
            ["reset"] => {
                *lock(&receiver.counts) = Counts::default();
                json!({ "ok": true })
            }
            ["delay", micros] => match micros.parse() {
                Ok(us) => {
                    receiver.delay_us.store(us, Ordering::SeqCst);
                    json!({ "ok": true })
                }
                Err(_) => json!({ "error": format!("delay expects microseconds: {line}") }),
            },
            ["drift", n] => match (n.parse(), &ce) {
                (Ok(n), Some(fake)) => {
                    fake.drift(n);
                    json!({ "ok": true })
                }
                _ => json!({ "error": format!("drift expects a count after ce: {line}") }),
            },
            ["stats"] => stats(&receiver, ce.as_ref()),
            _ => json!({ "error": format!("unknown command: {line}") }),
        };
        reply(&mut out, &answer);
    }
}

fn reply(out: &mut impl Write, value: &Value) {
    // The driver reads line by line; a closed stdout means it is gone.
    let _ = writeln!(out, "{value}").and_then(|()| out.flush());
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// CLOCK_MONOTONIC now, in nanoseconds.
fn monotonic_ns() -> i128 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    i128::from(now.tv_sec) * 1_000_000_000 + i128::from(now.tv_nsec)
}

/// An Instant as CLOCK_MONOTONIC nanoseconds (std's Instant is CLOCK_MONOTONIC on Linux).
fn instant_ns(at: Instant) -> i128 {
    let (now_ns, now) = (monotonic_ns(), Instant::now());
    now_ns - now.saturating_duration_since(at).as_nanos() as i128
}

fn stats(receiver: &Receiver, ce: Option<&FakeCostExplorer>) -> Value {
    let counts = lock(&receiver.counts);
    let mut answer = json!({
        "events": counts.events,
        "bad_events": counts.bad,
        "first_bad": counts.first_bad,
        "distinct_ids": counts.ids.len(),
        "receiver_connections": counts.connections,
    });
    if let Some(ce) = ce {
        let requests = ce.requests();
        let served = ce.served();
        answer["ce_requests"] = json!(requests.len());
        answer["ce_groups_served"] = json!(served.iter().map(|s| s.groups).sum::<usize>());
        answer["ce_statuses"] = json!(served.iter().map(|s| s.status).collect::<Vec<_>>());
        answer["ce_violations"] = json!(ce.violations());
        answer["ce_connections"] = json!(
            requests
                .iter()
                .map(|r| r.connection)
                .collect::<HashSet<_>>()
                .len()
        );
        answer["ce_first_mono_ns"] = json!(
            requests
                .first()
                .map(|r| instant_ns(r.received_at).to_string())
        );
    }
    answer
}

fn accept_loop(listener: TcpListener, receiver: Arc<Receiver>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        lock(&receiver.counts).connections += 1;
        let receiver = Arc::clone(&receiver);
        thread::spawn(move || {
            // A client going away mid-request is normal at the end of a run.
            let _ = serve(stream, &receiver);
        });
    }
}

/// Keep-alive: read requests until the client closes; answer each with 204.
fn serve(stream: TcpStream, receiver: &Receiver) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line.trim().is_empty() {
            continue;
        }
        let request_line = line.trim_end().to_string();
        let mut headers: Vec<(String, String)> = Vec::with_capacity(12);
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end_matches(['\r', '\n']);
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            support::http::read_chunked(&mut reader)?
        } else {
            let length = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            body
        };
        let verdict = check_event(&request_line, &header, &body);
        {
            let mut counts = lock(&receiver.counts);
            match verdict {
                Ok(id) => {
                    counts.events += 1;
                    counts.ids.insert(id);
                }
                Err(why) => {
                    counts.bad += 1;
                    counts.first_bad.get_or_insert(why);
                }
            }
        }
        let delay = receiver.delay_us.load(Ordering::SeqCst);
        if delay > 0 {
            // A deliberately slow target, not synchronisation.
            thread::sleep(Duration::from_micros(delay));
        }
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let answer: &[u8] = if close {
            b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
        } else {
            b"HTTP/1.1 204 No Content\r\n\r\n"
        };
        writer.write_all(answer)?;
        if close {
            return Ok(());
        }
    }
}

/// The event's ce-id if the request is a binary-mode CloudEvent of this connector.
fn check_event<'a>(
    request_line: &str,
    header: &dyn Fn(&str) -> Option<&'a str>,
    body: &[u8],
) -> Result<String, String> {
    if !request_line.starts_with("POST ") {
        return Err(format!("not a POST: {request_line}"));
    }
    for (name, want) in [
        ("ce-specversion", Some("1.0")),
        ("ce-source", Some("cloud.aws.billing")),
        ("ce-type", Some("aws.service.daily")),
        ("ce-time", None),
    ] {
        match (header(name), want) {
            (Some(_), None) => {}
            (Some(v), Some(w)) if v == w => {}
            (other, _) => return Err(format!("{name}: {other:?}")),
        }
    }
    if !header("content-type").is_some_and(|v| v.starts_with("application/json")) {
        return Err(format!("content-type: {:?}", header("content-type")));
    }
    let data: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    for field in ["date", "service", "amount", "unit"] {
        if !data[field].is_string() {
            return Err(format!("data.{field} is not a string: {data}"));
        }
    }
    header("ce-id")
        .map(str::to_string)
        .ok_or_else(|| "no ce-id".to_string())
}
