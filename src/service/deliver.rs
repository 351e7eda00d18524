//! Delivering spooled events to the target: retries, Retry-After, dead letters.

use crate::config::Target;
use crate::costexplorer;
use crate::event::Event;
use crate::http::Request;
use crate::log::peer;
use crate::refusals::{Judged, PROBE, Refusals, what_to_check};
use crate::retry::{Outcome, delivery_outcome, next_wait, retry_after};
use crate::service::{Delivery, Runtime, describe_range};
use crate::spool::{Batch, Step};
use crate::state::State;
use crate::{debug, error, info, warn};
use std::time::Instant;
use time::OffsetDateTime;

impl Runtime {
    /// Sends every pending event of `batch`. Transient failures are retried until `deadline`
    /// (forever without one); rejections go to the dead-letter file, unless they are the
    /// setup's (refusals.rs): then nothing of the batch is dead-lettered or acknowledged.
    fn deliver(
        &self,
        state: &mut State,
        batch: &mut Batch,
        deadline: Option<Instant>,
    ) -> Result<Delivery, String> {
        if let Target::EventBridge(bus) = &self.config.target {
            return self.put_spooled(state, batch, bus, deadline);
        }
        let mut outcome = Delivery::default();
        let mut refusals = Refusals::default();
        // Refusals not yet judged: (index, status, reason, event); and the held ones judged
        // the events' later, acknowledged once the walk lets go of the batch.
        let mut held: Vec<(usize, u16, String, String)> = Vec::new();
        let mut judged: Vec<usize> = Vec::new();
        let mut setup: Option<(u16, String)> = None;
        let mut stopped = false;
        let mut dead_letter = |(status, reason, json): (u16, String, &str)| -> Result<(), String> {
            let e = parsed(json);
            error!(
                "the target rejected the event for \"{}\" on {} with HTTP {status}: {reason}; kept in dead-letter.jsonl",
                peer(&e.data.label()),
                peer(&e.data.date)
            );
            state.dead_letter(status, &reason, json)?;
            outcome.rejected += 1;
            Ok(())
        };
        let walked = batch.walk_pending(|i, json| {
            // Sent from the line as it is: no event is built for an accepted one.
            let (headers, body) = crate::event::http_parts(json, self.config.content_mode)
                .map_err(|e| {
                    format!("spool line {}: {e}", costexplorer::snippet(json.as_bytes()))
                })?;
            match self.send_event(headers, body, deadline) {
                Sent::Delivered => {
                    refusals.accepted();
                    for (i, status, reason, json) in held.drain(..) {
                        dead_letter((status, reason, &json))?;
                        judged.push(i);
                    }
                    if crate::log::enabled(crate::log::Level::Debug) {
                        let e = parsed(json);
                        debug!(
                            "delivered {} / {} / {} {} (id {})",
                            peer(&e.data.date),
                            peer(&e.data.label()),
                            peer(&e.data.amount),
                            peer(&e.data.unit),
                            peer(&e.id)
                        );
                    }
                    outcome.delivered += 1;
                    Ok(Step::Ack)
                }
                Sent::Rejected(status, reason) => match refusals.refused(status) {
                    Judged::Hold => {
                        held.push((i, status, reason, json.to_string()));
                        Ok(Step::Hold)
                    }
                    Judged::Setup => {
                        held.push((i, status, reason.clone(), String::new()));
                        setup = Some((status, reason));
                        Ok(Step::Stop)
                    }
                    Judged::Event => {
                        for (i, status, reason, json) in held.drain(..) {
                            dead_letter((status, reason, &json))?;
                            judged.push(i);
                        }
                        dead_letter((status, reason, json))?;
                        Ok(Step::Ack)
                    }
                },
                Sent::Setup => {
                    outcome.setup = true;
                    stopped = true;
                    Ok(Step::Stop)
                }
                Sent::Stopped => {
                    stopped = true;
                    Ok(Step::Stop)
                }
            }
        });
        let acknowledged = judged.iter().try_for_each(|i| batch.acknowledge(*i));
        walked.and(acknowledged)?;
        batch.sync();
        outcome.left = batch.pending();
        if setup.is_none() && !stopped && refusals.holding() {
            // The whole batch, fewer than PROBE events, was refused alike.
            debug_assert!(held.len() < PROBE);
            setup = refusals.at_end().zip(held.first().map(|h| h.2.clone()));
        }
        if let Some((status, reason)) = setup {
            error!("{}", self.setup_failure(batch, status, &reason, held.len()));
            outcome.setup = true;
        }
        Ok(outcome)
    }

    /// The one line for a batch the target refused as a whole.
    fn setup_failure(&self, batch: &Batch, status: u16, reason: &str, tried: usize) -> String {
        let target = match &self.config.target {
            Target::Http(url) => crate::urls::redact(url),
            other => super::target_name(other),
        };
        let left = batch.pending();
        let reason = match reason {
            EMPTY_BODY => String::new(),
            r => format!(" ({r})"),
        };
        format!(
            "the target answered HTTP {status}{reason} to each of the {tried} event(s) of {} it was sent, and accepted none: a setup problem, not the events'; {}; the {left} event(s) stay in the spool and go out with the same ids once the target takes them",
            describe_range(batch.first, batch.last),
            what_to_check(status, &target)
        )
    }

    /// One event, retried on 408/429/5xx and network errors with backoff and Retry-After.
    fn send_event(
        &self,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        deadline: Option<Instant>,
    ) -> Sent {
        let (client, url) = match (&self.target, &self.config.target) {
            (Some(c), Target::Http(u)) => (c, u),
            _ => unreachable!("deliver needs an HTTP target"),
        };
        let request = Request {
            method: "POST",
            url: url.clone(),
            headers,
            body,
        };
        let mut attempt = 0;
        loop {
            if self.signals.stopping() {
                return Sent::Stopped;
            }
            crate::heartbeat::working();
            let (problem, hint) = match client.send(&request) {
                Ok(r) => match delivery_outcome(r.status) {
                    Outcome::Delivered => return Sent::Delivered,
                    Outcome::Rejected => return Sent::Rejected(r.status, body_reason(&r.body)),
                    Outcome::Redirect => {
                        error!(
                            "the target answered HTTP {} redirecting to {}: set target to the final URL (the events stay in the spool)",
                            r.status,
                            r.header("location")
                                .map(|l| peer(&crate::urls::redact(l)))
                                .unwrap_or_else(|| "nowhere".into())
                        );
                        return Sent::Setup;
                    }
                    Outcome::Transient => (
                        format!(
                            "the target answered HTTP {}: {}",
                            r.status,
                            body_reason(&r.body)
                        ),
                        r.header("retry-after")
                            .and_then(|v| retry_after(v, OffsetDateTime::now_utc())),
                    ),
                },
                Err(e) if !e.transient => {
                    error!("the target cannot be used: {e} (the rest stays in the spool)");
                    return Sent::Setup;
                }
                Err(e) => (format!("the target is unreachable: {e}"), None),
            };
            let wait = next_wait(attempt, self.max_backoff(), hint);
            if deadline.is_some_and(|d| Instant::now() + wait >= d) {
                error!(
                    "{problem}; giving up after send_timeout_s {}s (the rest stays in the spool)",
                    self.config.send_timeout_s
                );
                return Sent::Stopped;
            }
            warn!("{problem}; retrying in {:.1}s", wait.as_secs_f32());
            crate::heartbeat::beat("retrying the target", OffsetDateTime::now_utc() + wait);
            if self.signals.sleep_for(wait) {
                return Sent::Stopped;
            }
            attempt += 1;
        }
    }

    /// Delivers one batch and, when nothing is left, records its days. Logs the summary.
    pub(crate) fn deliver_batch(
        &self,
        state: &mut State,
        mut batch: Batch,
        deadline: Option<Instant>,
    ) -> Result<Delivery, String> {
        let range = describe_range(batch.first, batch.last);
        let pending = batch.pending();
        let outcome = match self.deliver(state, &mut batch, deadline) {
            Ok(o) => o,
            Err(e) => {
                state.spool_mut().keep(batch);
                return Err(e);
            }
        };
        if outcome.left == 0 {
            state.finish(batch)?;
        } else {
            state.spool_mut().keep(batch);
            if outcome.rejected > 0 {
                state.save_dead_letters()?;
            }
        }
        info!(
            "{range}: {} events, delivered {}, rejected {}{}",
            pending,
            outcome.delivered,
            outcome.rejected,
            if outcome.left > 0 {
                format!(", {} still in the spool", outcome.left)
            } else {
                String::new()
            }
        );
        Ok(outcome)
    }

    /// Delivers everything in the spool; returns the totals.
    pub(crate) fn deliver_spool(
        &self,
        state: &mut State,
        deadline: Option<Instant>,
    ) -> Result<Delivery, String> {
        let mut total = Delivery::default();
        let mut batches = state.spool_mut().batches().into_iter();
        while let Some(batch) = batches.next() {
            if self.signals.stopping() {
                total.left += batch.pending();
                state.spool_mut().keep(batch);
                continue;
            }
            match self.deliver_batch(state, batch, deadline) {
                // The next batch would be refused alike: it waits with the rest.
                Ok(d) if d.setup => {
                    total += d;
                    batches.for_each(|rest| {
                        total.left += rest.pending();
                        state.spool_mut().keep(rest);
                    });
                    break;
                }
                Ok(d) => total += d,
                Err(e) => {
                    batches.for_each(|rest| state.spool_mut().keep(rest));
                    return Err(e);
                }
            }
        }
        Ok(total)
    }
}

enum Sent {
    Delivered,
    Rejected(u16, String),
    /// The target cannot take any event as set up (a redirect, an untrusted certificate);
    /// said in a line already: the event stays pending.
    Setup,
    /// Stopped by a signal or by the deadline: the event stays pending.
    Stopped,
}

/// A spooled event in full, for a log line about it (read only when one is written).
fn parsed(json: &str) -> Event {
    serde_json::from_str(json).unwrap_or_default()
}

const EMPTY_BODY: &str = "(empty body)";

fn body_reason(body: &[u8]) -> String {
    if body.is_empty() {
        EMPTY_BODY.to_string()
    } else {
        costexplorer::snippet(body)
    }
}
