//! Delivering spooled events to an EventBridge bus: PutEvents of up to 10, failed entries sent again, rejections to the dead letters.

use crate::costexplorer::{self, ErrorKind};
use crate::event::Event;
use crate::eventbridge::{self, Bus, Put};
use crate::http::Request;
use crate::log::peer;
use crate::retry::{next_wait, retry_after};
use crate::service::pull::hidden;
use crate::service::{Delivery, Failure, Runtime};
use crate::spool::Batch;
use crate::state::State;
use crate::{debug, error, warn};
use std::time::{Duration, Instant, SystemTime};
use time::OffsetDateTime;

/// How one signed request to EventBridge went.
enum Call {
    /// A 2xx answer's body.
    Answer(Vec<u8>),
    /// Throttling, 5xx, the network: worth another try (with a Retry-After hint).
    Transient(String, Option<Duration>),
    /// Keys, permissions, a missing bus, a bad endpoint: the events stay in the spool.
    Setup(String),
    Stopped,
}

impl Runtime {
    /// `deliver` for an EventBridge target: the pending events of `batch`, up to 10 a
    /// request. An event is acknowledged once EventBridge gave it an id or refused it for
    /// good (then it is in the dead letters); throttled entries are sent again with backoff
    /// until `deadline` (forever without one).
    pub(super) fn put_spooled(
        &self,
        state: &mut State,
        batch: &mut Batch,
        bus: &Bus,
        deadline: Option<Instant>,
    ) -> Result<Delivery, String> {
        let mut outcome = Delivery::default();
        batch.drain_groups(eventbridge::MAX_ENTRIES, |lines| {
            self.put_group(state, bus, lines, deadline, &mut outcome)
        })?;
        batch.sync();
        outcome.left = batch.pending();
        Ok(outcome)
    }

    /// Which of `lines` are done: sent in requests within EventBridge's limits, each
    /// retried with only its entries that failed in a way that waiting can help.
    fn put_group(
        &self,
        state: &mut State,
        bus: &Bus,
        lines: &[String],
        deadline: Option<Instant>,
        outcome: &mut Delivery,
    ) -> Result<Vec<bool>, String> {
        let mut done = vec![false; lines.len()];
        let mut entries = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            match eventbridge::entry(line, &bus.name) {
                Ok(entry) => entries.push((i, entry)),
                Err(reason) => {
                    // Never sent: no HTTP status.
                    reject(state, line, 0, &reason)?;
                    outcome.rejected += 1;
                    done[i] = true;
                }
            }
        }
        let sizes: Vec<usize> = entries.iter().map(|(_, e)| e.size).collect();
        for request in eventbridge::requests(&sizes) {
            let mut waiting: Vec<usize> = request.collect();
            let mut attempt = 0;
            while !waiting.is_empty() {
                let body = eventbridge::body(waiting.iter().map(|&k| &entries[k].1));
                let (problem, hint) = match self.call(bus, eventbridge::PUT_EVENTS, body) {
                    Call::Answer(answer) => match eventbridge::outcomes(&answer, waiting.len()) {
                        Ok(puts) => {
                            let mut again = Vec::new();
                            let mut first = None;
                            for (&k, put) in waiting.iter().zip(puts) {
                                let i = entries[k].0;
                                match put {
                                    Put::Accepted(id) => {
                                        log_delivered(&lines[i], &id);
                                        outcome.delivered += 1;
                                        done[i] = true;
                                    }
                                    Put::Rejected(reason) => {
                                        reject(state, &lines[i], 200, &reason)?;
                                        outcome.rejected += 1;
                                        done[i] = true;
                                    }
                                    Put::Transient(reason) => {
                                        again.push(k);
                                        first.get_or_insert(reason);
                                    }
                                }
                            }
                            let problem = format!(
                                "EventBridge did not take {} of {} entries ({})",
                                again.len(),
                                waiting.len(),
                                first.unwrap_or_default()
                            );
                            waiting = again;
                            if waiting.is_empty() {
                                break;
                            }
                            (problem, None)
                        }
                        Err(e) => (format!("EventBridge sent an answer that is {e}"), None),
                    },
                    Call::Transient(problem, hint) => (problem, hint),
                    Call::Setup(problem) => {
                        error!("{problem} (the rest stays in the spool)");
                        outcome.setup = true;
                        return Ok(done);
                    }
                    Call::Stopped => return Ok(done),
                };
                if !self.wait_to_retry(&problem, attempt, hint, deadline) {
                    return Ok(done);
                }
                attempt += 1;
            }
        }
        Ok(done)
    }

    /// After a failure that waiting can help: false when the deadline comes first or a
    /// stop is asked for.
    fn wait_to_retry(
        &self,
        problem: &str,
        attempt: u32,
        hint: Option<Duration>,
        deadline: Option<Instant>,
    ) -> bool {
        let wait = next_wait(attempt, self.max_backoff(), hint);
        if deadline.is_some_and(|d| Instant::now() + wait >= d) {
            error!(
                "{problem}; giving up after send_timeout_s {}s (the rest stays in the spool)",
                self.config.send_timeout_s
            );
            return false;
        }
        warn!("{problem}; retrying in {:.1}s", wait.as_secs_f32());
        crate::heartbeat::beat("retrying EventBridge", OffsetDateTime::now_utc() + wait);
        !self.signals.sleep_for(wait)
    }

    /// One request, signed for `events` in the bus's region with the credentials of the
    /// moment. An error text never carries the keys it was signed with.
    fn call(&self, bus: &Bus, action: &str, body: String) -> Call {
        if self.signals.stopping() {
            return Call::Stopped;
        }
        crate::heartbeat::working();
        let credentials = match self.signing_credentials() {
            Ok(c) => c,
            Err(Failure::Stopped) => return Call::Stopped,
            Err(Failure::CostExplorer(e)) if e.kind == ErrorKind::Transient => {
                return Call::Transient(e.message, None);
            }
            Err(e) => return Call::Setup(e.to_string()),
        };
        let mut request = Request {
            method: "POST",
            url: format!("{}/", bus.endpoint),
            headers: vec![
                ("content-type".into(), eventbridge::CONTENT_TYPE.into()),
                ("x-amz-target".into(), action.into()),
            ],
            body: body.into_bytes(),
        };
        let now = SystemTime::now();
        if let Err(m) = request.sign(&credentials, &bus.region, eventbridge::SERVICE, now) {
            return Call::Setup(m);
        }
        let client = self
            .target
            .as_ref()
            .expect("an EventBridge target has a client");
        match client.send(&request) {
            Ok(r) if (200..300).contains(&r.status) && r.truncated => Call::Transient(
                "EventBridge sent an answer larger than 64 KiB; not read further".into(),
                None,
            ),
            Ok(r) if (200..300).contains(&r.status) => Call::Answer(r.body),
            Ok(r) => {
                let hint = r
                    .header("retry-after")
                    .and_then(|v| retry_after(v, OffsetDateTime::now_utc()));
                let e =
                    costexplorer::refusal("EventBridge", r.status, &hidden(&credentials, &r.body));
                let message = credentials.hide_in(&e.message);
                match e.kind {
                    ErrorKind::Transient => Call::Transient(message, hint),
                    _ => Call::Setup(message),
                }
            }
            Err(e) if !e.transient => Call::Setup(format!("EventBridge cannot be used: {e}")),
            Err(e) => Call::Transient(format!("EventBridge is unreachable: {e}"), None),
        }
    }

    /// `check` for an EventBridge target: DescribeEventBus (no side effects, unlike any
    /// PutEvents: one of no entries is invalid) proves the bus, the endpoint, the keys and
    /// the signature. Returns the bus's ARN.
    pub(super) fn describe_bus(&self, bus: &Bus) -> Result<String, String> {
        let body = eventbridge::describe_body(&bus.name);
        match self.call(bus, eventbridge::DESCRIBE_EVENT_BUS, body) {
            Call::Answer(answer) => eventbridge::described(&answer),
            Call::Transient(problem, _) | Call::Setup(problem) => Err(problem),
            Call::Stopped => Err("stopped".into()),
        }
    }
}

/// An event EventBridge will never take: logged and kept in dead-letter.jsonl.
fn reject(state: &mut State, line: &str, status: u16, reason: &str) -> Result<(), String> {
    let e = parsed(line);
    error!(
        "EventBridge rejected the event for \"{}\" on {}: {reason}; kept in dead-letter.jsonl",
        peer(&e.data.label()),
        peer(&e.data.date)
    );
    state.dead_letter(status, &format!("EventBridge: {reason}"), line)
}

fn log_delivered(line: &str, event_id: &str) {
    if crate::log::enabled(crate::log::Level::Debug) {
        let e = parsed(line);
        debug!(
            "delivered {} / {} / {} {} (id {}, EventBridge id {})",
            peer(&e.data.date),
            peer(&e.data.label()),
            peer(&e.data.amount),
            peer(&e.data.unit),
            peer(&e.id),
            peer(event_id)
        );
    }
}

/// A spooled event in full, for a log line about it (read only when one is written).
fn parsed(json: &str) -> Event {
    serde_json::from_str(json).unwrap_or_default()
}
