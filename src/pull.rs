//! Pulling from Cost Explorer: signed requests page by page, retried, into the spool.

use crate::config::load_credentials;
use crate::costexplorer::{self, CeError, ErrorKind};
use crate::event::{Event, Line};
use crate::http::Request;
use crate::retry::{next_wait, retry_after};
use crate::schedule::rfc3339;
use crate::service::{Failure, MIB, Runtime, describe_range};
use crate::state::{Batch, State};
use crate::{debug, info, warn};
use std::time::Duration;
use time::{Date, OffsetDateTime};

/// Attempts per Cost Explorer page before the pull is given up (for now).
const PULL_ATTEMPTS: u32 = 6;

impl Runtime {
    /// Pulls `first..=last`, page by page (at most `max_pages`), calling `sink` for each line.
    /// Returns (pages, lines). Throttling, 5xx and network errors are retried here.
    pub fn pull(
        &self,
        first: Date,
        last: Date,
        max_pages: usize,
        sink: &mut dyn FnMut(Line) -> Result<(), String>,
    ) -> Result<(usize, usize), Failure> {
        let (credentials, warnings) = load_credentials(&self.config.secret).map_err(|e| {
            Failure::CostExplorer(CeError {
                kind: ErrorKind::Credentials,
                message: e.0,
            })
        })?;
        for w in warnings {
            warn!("{w}");
        }
        let (mut pages, mut lines) = (0, 0);
        let mut token: Option<String> = None;
        loop {
            let body =
                costexplorer::request_body(first, last, &self.config.metric, token.as_deref());
            let mut attempt = 0;
            let page = loop {
                let mut request = Request {
                    method: "POST",
                    url: format!("{}/", self.config.endpoint),
                    headers: vec![
                        ("content-type".into(), costexplorer::CONTENT_TYPE.into()),
                        ("x-amz-target".into(), costexplorer::TARGET.into()),
                    ],
                    body: body.clone().into_bytes(),
                };
                let now = std::time::SystemTime::now();
                crate::sign::sign(&mut request, &credentials, &self.config.region, "ce", now)
                    .map_err(|m| {
                        Failure::CostExplorer(CeError {
                            kind: ErrorKind::Permanent,
                            message: m,
                        })
                    })?;
                crate::spend::before_request(&self.config)?;
                crate::status::working();
                let (result, hint) = match self.ce.send(&request) {
                    Ok(r) if (200..300).contains(&r.status) => {
                        (costexplorer::parse_page(&r.body, &self.config.metric), None)
                    }
                    Ok(r) => {
                        let hint = r
                            .header("retry-after")
                            .and_then(|v| retry_after(v, OffsetDateTime::now_utc()));
                        (Err(costexplorer::parse_error(r.status, &r.body)), hint)
                    }
                    Err(e) if e.permanent => (
                        Err(CeError {
                            kind: ErrorKind::Permanent,
                            message: format!("Cost Explorer: {e}"),
                        }),
                        None,
                    ),
                    Err(e) => (
                        Err(CeError {
                            kind: ErrorKind::Transient,
                            message: format!("Cost Explorer unreachable: {e}"),
                        }),
                        None,
                    ),
                };
                // Belt and braces: an error text never carries the keys it was signed with.
                let result = result.map_err(|mut e| {
                    let secrets = [
                        Some(&credentials.secret_access_key),
                        credentials.session_token.as_ref(),
                    ];
                    for secret in secrets.into_iter().flatten() {
                        e.message = e.message.replace(secret.as_str(), "***");
                    }
                    e
                });
                match result {
                    Ok(page) => break page,
                    Err(e) if e.kind == ErrorKind::Transient && attempt + 1 < PULL_ATTEMPTS => {
                        let wait = next_wait(
                            attempt,
                            self.max_backoff().min(Duration::from_secs(60)),
                            hint,
                        );
                        warn!("{}; retrying in {:.1}s", e.message, wait.as_secs_f32());
                        crate::status::beat(
                            "retrying Cost Explorer",
                            OffsetDateTime::now_utc() + wait,
                        );
                        if self.signals.sleep_for(wait) {
                            return Err(Failure::Stopped);
                        }
                        attempt += 1;
                    }
                    Err(e) => return Err(Failure::CostExplorer(e)),
                }
            };
            pages += 1;
            debug!("page {pages}: {} groups", page.lines.len());
            for line in page.lines {
                lines += 1;
                sink(line).map_err(Failure::State)?;
            }
            match page.next_token {
                Some(t) if pages < max_pages => token = Some(t),
                _ => return Ok((pages, lines)),
            }
        }
    }

    /// Pulls into the spool. Lines of days already delivered are left out unless `force`.
    pub(crate) fn pull_to_spool(
        &self,
        state: &mut State,
        first: Date,
        last: Date,
        force: bool,
    ) -> Result<Batch, Failure> {
        let limit = self.config.max_spool_mb * MIB;
        let already = state.spool_bytes();
        if already >= limit {
            return Err(Failure::State(format!(
                "the spool holds {} MiB, at max_spool_mb {}: not pulling new days until the target accepts the spooled events",
                already / MIB,
                self.config.max_spool_mb
            )));
        }
        let mut writer = state.spool_writer(first, last).map_err(Failure::State)?;
        let time = rfc3339(OffsetDateTime::now_utc());
        let mut left_out = 0;
        let result = self.pull(first, last, usize::MAX, &mut |line: Line| {
            if !force && crate::schedule::parse_date(&line.date).is_some_and(|d| state.is_delivered(d)) {
                left_out += 1;
                return Ok(());
            }
            writer.push(&Event::new(line, crate::event::new_id(), time.clone()))?;
            if already + writer.bytes > limit {
                return Err(format!(
                    "this pull would take the spool past max_spool_mb {}; not spooling it (raise max_spool_mb or pull fewer days)",
                    self.config.max_spool_mb
                ));
            }
            Ok(())
        });
        crate::status::record_pull(state.dir(), first, last, &result);
        match result {
            Ok((pages, groups)) => {
                let note = if left_out > 0 {
                    format!(" ({left_out} of days already delivered left out)")
                } else {
                    String::new()
                };
                info!(
                    "pulled {}: {groups} groups in {pages} page(s){note}",
                    describe_range(first, last)
                );
                state.commit(writer).map_err(Failure::State)
            }
            Err(e) => {
                writer.abandon();
                Err(e)
            }
        }
    }
}
