//! Delivering spooled events to the target: retries, Retry-After, dead letters.

use crate::config::Target;
use crate::costexplorer;
use crate::event::Event;
use crate::http::Request;
use crate::log::peer;
use crate::retry::{Outcome, delivery_outcome, next_wait, retry_after};
use crate::service::{Delivery, Runtime, describe_range};
use crate::spool::Batch;
use crate::state::State;
use crate::{debug, error, info, warn};
use std::time::Instant;
use time::OffsetDateTime;

impl Runtime {
    /// Sends every pending event of `batch`. Transient failures are retried until `deadline`
    /// (forever without one); rejections go to the dead-letter file.
    fn deliver(
        &self,
        state: &mut State,
        batch: &mut Batch,
        deadline: Option<Instant>,
    ) -> Result<Delivery, String> {
        let mut outcome = Delivery::default();
        batch.drain_pending(|json| {
            // Sent from the line as it is: no event is built for an accepted one.
            let (headers, body) = crate::event::http_parts(json, self.config.content_mode)
                .map_err(|e| format!("spool line {}: {e}", costexplorer::snippet(json.as_bytes())))?;
            match self.send_event(headers, body, deadline) {
                Sent::Delivered => {
                    if crate::log::enabled(crate::log::Level::Debug) {
                        let e = parsed(json);
                        debug!("delivered {} / {} / {} {} (id {})", peer(&e.data.date), peer(&e.data.label()), peer(&e.data.amount), peer(&e.data.unit), peer(&e.id));
                    }
                    outcome.delivered += 1;
                    Ok(true)
                }
                Sent::Rejected(status, reason) => {
                    let e = parsed(json);
                    error!(
                        "the target rejected the event for \"{}\" on {} with HTTP {status}: {reason}; kept in dead-letter.jsonl",
                        peer(&e.data.label()), peer(&e.data.date)
                    );
                    state.dead_letter(status, &reason, json)?;
                    outcome.rejected += 1;
                    Ok(true)
                }
                Sent::Stopped => Ok(false),
            }
        })?;
        batch.sync();
        outcome.left = batch.pending();
        Ok(outcome)
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
                        return Sent::Stopped;
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
                    return Sent::Stopped;
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
    /// Stopped by a signal or by the deadline: the event stays pending.
    Stopped,
}

/// A spooled event in full, for a log line about it (read only when one is written).
fn parsed(json: &str) -> Event {
    serde_json::from_str(json).unwrap_or_default()
}

fn body_reason(body: &[u8]) -> String {
    if body.is_empty() {
        "(empty body)".to_string()
    } else {
        costexplorer::snippet(body)
    }
}
