//! Pulling from Cost Explorer: signed requests page by page, retried, into the spool.

use crate::answer::{Check, Shape};
use crate::bounds;
use crate::config::Target;
use crate::costexplorer::{self, Answer, CeError, ErrorKind};
use crate::event::{Event, Line};
use crate::http::Request;
use crate::keys::Credentials;
use crate::retry::{next_wait, retry_after};
use crate::schedule::rfc3339;
use crate::service::{Failure, MIB, Runtime, describe_range};
use crate::snapshot::{Plan, Round};
use crate::spool::Batch;
use crate::state::State;
use crate::{debug, info, warn};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use time::{Date, OffsetDateTime};

impl Runtime {
    /// Pulls `first..=last`, page by page (at most `max_pages`), calling `sink` for each line.
    /// Returns (pages, lines). Throttling, 5xx, network errors and answers that do not fit
    /// the request are retried here; a paging loop or too many pages end the pull. The pull
    /// is Ok only once the whole answer was checked: whoever records lines waits for it.
    pub fn pull(
        &self,
        first: Date,
        last: Date,
        max_pages: usize,
        sink: &mut dyn FnMut(Line) -> Result<(), String>,
    ) -> Result<(usize, usize), Failure> {
        self.billing_account()?;
        // A pull cut short by `max_pages` (`check`'s one page) is never recorded: only
        // whether Cost Explorer accepts the signed request counts, not what it answers.
        let mut check = (max_pages == usize::MAX).then(|| {
            Check::new(Shape {
                first,
                last,
                group_by: self.config.breakdown.group_by.len(),
                metrics: self.config.breakdown.metrics.clone(),
            })
        });
        let page_cap = bounds::page_cap(first, last);
        let mut tokens_seen = HashSet::new();
        let mut failing = Duration::ZERO;
        let (mut pages, mut lines) = (0, 0);
        let mut token: Option<String> = None;
        loop {
            let body =
                costexplorer::request_body(first, last, &self.config.breakdown, token.as_deref());
            let page = self.page(&body, check.as_mut(), &mut failing)?;
            pages += 1;
            let next = page.next_token().map(str::to_string);
            debug!(
                "page {pages}: {} result(s)",
                page.results_by_time.as_ref().map_or(0, Vec::len)
            );
            if let Some(t) = &next {
                if !tokens_seen.insert(t.clone()) {
                    return Err(bad_paging(format!(
                        "Cost Explorer sent NextPageToken {:?} a second time in one pull (page {pages}): it pages in a loop; stopped",
                        crate::log::peer(t)
                    )));
                }
                if pages >= page_cap && pages < max_pages {
                    return Err(bad_paging(format!(
                        "Cost Explorer sent more than {page_cap} pages for {} ({} a day is the bound); stopped",
                        describe_range(first, last),
                        bounds::PAGES_PER_DAY
                    )));
                }
            }
            for line in page.into_lines(&self.config.breakdown) {
                lines += 1;
                sink(line).map_err(Failure::State)?;
            }
            match next {
                Some(t) if pages < max_pages => token = Some(t),
                _ => return Ok((pages, lines)),
            }
        }
    }

    /// One page: signed attempts, retried while they fail in a way that waiting can help
    /// and the pull's failing budget lasts; the answer is checked against the request.
    /// Each attempt is signed with the credentials of the moment (cached while good).
    fn page(
        &self,
        body: &str,
        mut check: Option<&mut Check>,
        failing: &mut Duration,
    ) -> Result<Answer, Failure> {
        let mut attempt = 0;
        loop {
            // Once a stop was asked for, no new request is paid for (nor counted): the
            // pull ends here and its days stay due.
            if self.signals.stopping() {
                return Err(Failure::Stopped);
            }
            crate::spend::before_request(
                &self.config.state_dir,
                !matches!(self.config.target, Target::Stdout),
                self.config.state_dir_named,
                self.config.max_monthly_requests,
            )?;
            crate::heartbeat::working();
            // Fetched for every attempt, not once a pull: cached ones are only sure to
            // last 5 more minutes, and a long catch-up with retries takes longer.
            let credentials = self.signing_credentials()?;
            // A stop while the credentials were fetched: counted, never sent (a count too
            // many is the safe side of the cap).
            if self.signals.stopping() {
                return Err(Failure::Stopped);
            }
            let started = Instant::now();
            let (result, hint) = self.attempt(&credentials, body);
            let result = result.and_then(|answer| {
                let Some(check) = check.as_deref_mut() else {
                    return Ok(answer);
                };
                check
                    .page(&answer, answer.next_token().is_none())
                    .map_err(|e| CeError {
                        kind: ErrorKind::Transient,
                        message: format!(
                            "Cost Explorer sent an answer that does not fit the request: {e}"
                        ),
                    })?;
                Ok(answer)
            });
            let e = match result {
                Ok(answer) => return Ok(answer),
                Err(e) => e,
            };
            *failing += started.elapsed();
            let wait = next_wait(
                attempt,
                self.max_backoff().min(Duration::from_secs(60)),
                hint,
            );
            if e.kind != ErrorKind::Transient || attempt + 1 >= bounds::ATTEMPTS_PER_PAGE {
                return Err(Failure::CostExplorer(e));
            }
            if !bounds::may_retry(*failing, wait) {
                return Err(Failure::CostExplorer(CeError {
                    message: format!(
                        "{}; giving up: this pull spent {}s failing (the bound is {}s)",
                        e.message,
                        failing.as_secs(),
                        bounds::PULL_FAILING_BUDGET.as_secs()
                    ),
                    ..e
                }));
            }
            warn!("{}; retrying in {:.1}s", e.message, wait.as_secs_f32());
            crate::heartbeat::beat("retrying Cost Explorer", OffsetDateTime::now_utc() + wait);
            if self.signals.sleep_for(wait) {
                return Err(Failure::Stopped);
            }
            *failing += wait;
            attempt += 1;
        }
    }

    /// One signed request: its answer parsed (not yet checked), or what went wrong, with
    /// the Retry-After hint. An error text never carries the keys it was signed with.
    fn attempt(
        &self,
        credentials: &Credentials,
        body: &str,
    ) -> (Result<Answer, CeError>, Option<Duration>) {
        let mut request = Request {
            method: "POST",
            url: format!("{}/", self.config.endpoint),
            headers: vec![
                ("content-type".into(), costexplorer::CONTENT_TYPE.into()),
                ("x-amz-target".into(), costexplorer::TARGET.into()),
            ],
            body: body.as_bytes().to_vec(),
        };
        let now = std::time::SystemTime::now();
        if let Err(m) = request.sign(credentials, &self.config.region, "ce", now) {
            let e = CeError {
                kind: ErrorKind::Permanent,
                message: m,
            };
            return (Err(e), None);
        }
        let transient = |message: String| CeError {
            kind: ErrorKind::Transient,
            message,
        };
        let (result, hint) = match self.ce.send(&request) {
            Ok(r) if (200..300).contains(&r.status) && r.truncated => (
                Err(transient(format!(
                    "Cost Explorer sent an answer page larger than {} MiB; not read further",
                    bounds::PAGE_BYTES / MIB
                ))),
                None,
            ),
            Ok(r) if (200..300).contains(&r.status) => (
                costexplorer::parse_answer(&r.body).map_err(|_| {
                    // The message quotes the body: secrets hidden before it is cut.
                    let e = costexplorer::parse_answer(&hidden(credentials, &r.body)).err();
                    let e = e.unwrap_or_else(|| "not a GetCostAndUsage result".into());
                    transient(format!("Cost Explorer sent an answer that is {e}"))
                }),
                None,
            ),
            Ok(r) => {
                let hint = r
                    .header("retry-after")
                    .and_then(|v| retry_after(v, OffsetDateTime::now_utc()));
                let body = hidden(credentials, &r.body);
                (Err(costexplorer::parse_error(r.status, &body)), hint)
            }
            Err(e) if !e.transient => (
                Err(CeError {
                    kind: ErrorKind::Permanent,
                    message: format!("Cost Explorer: {e}"),
                }),
                None,
            ),
            Err(e) => (
                Err(transient(format!("Cost Explorer unreachable: {e}"))),
                None,
            ),
        };
        let result = result.map_err(|mut e| {
            e.message = credentials.hide_in(&e.message);
            e
        });
        (result, hint)
    }

    /// Pulls into the spool. Lines of days already delivered are left out unless `force`;
    /// with `revise` (days), estimated days that far back are pulled again (snapshot.rs).
    pub(crate) fn pull_to_spool(
        &self,
        state: &mut State,
        first: Date,
        last: Date,
        force: bool,
        revise: Option<u32>,
    ) -> Result<Batch, Failure> {
        let limit = self.config.max_spool_mb * MIB;
        let already = state.spool().bytes();
        if already >= limit {
            return Err(Failure::State(format!(
                "the spool holds {} MiB, at max_spool_mb {}: not pulling new days until the target accepts the spooled events",
                already / MIB,
                self.config.max_spool_mb
            )));
        }
        let delivered = |d| !force && state.is_delivered(d);
        let plan = Plan {
            revise_days: self.config.revise.revise_days,
            window: revise,
            days: (first, last),
            delivered: &delivered,
            again: &|d| state.again_days().contains(&d),
            sent: &|d| state.sent_mark(d),
            record: true,
        };
        let mut round = Round::start(state.dir(), &plan)
            .map_err(Failure::State)?
            .with_summary(self.config.revise.summary);
        let first = round.first;
        let mut writer = state.spool().writer(first, last).map_err(Failure::State)?;
        if let Some(path) = writer.snapshot_path() {
            round.record_to(path).map_err(Failure::State)?;
        }
        let time = rfc3339(OffsetDateTime::now_utc());
        let mut left_out = 0;
        let result = self.pull(first, last, usize::MAX, &mut |line: Line| {
            let done = crate::schedule::parse_date(&line.date).is_some_and(delivered);
            let event = Event::new(line, time.clone());
            // Serialized once for both the spool line and the revise snapshot.
            let data = event.raw_data();
            let Some(mut event) = round.judge_with(event, &data, done)? else {
                left_out += 1;
                return Ok(());
            };
            let wire = self.outgoing(&mut event, &data);
            writer.push_with(&event, wire.as_deref().unwrap_or(&data))?;
            if already + writer.bytes > limit {
                return Err(format!(
                    "this pull would take the spool past max_spool_mb {}; not spooling it (raise max_spool_mb or pull fewer days)",
                    self.config.max_spool_mb
                ));
            }
            Ok(())
        });
        let result = result.and_then(|r| {
            round
                .vanished(&time, &mut |mut e| {
                    let data = e.raw_data();
                    let wire = self.outgoing(&mut e, &data);
                    writer.push_with(&e, wire.as_deref().unwrap_or(&data))
                })
                .map_err(Failure::State)?;
            writer.sent = round.take_sent();
            writer.snapshot = round.into_writer().map_err(Failure::State)?;
            Ok(r)
        });
        // Recorded after the commit: a batch that could not be spooled is no good pull.
        let result = match result {
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
        };
        if !matches!(result, Err(Failure::Stopped)) {
            let error = result.as_ref().err().map(Failure::to_string);
            crate::heartbeat::record_pull(state.dir(), first, last, error);
        }
        result
    }
}

/// A peer's body with the signing secrets hidden, before any message quotes and cuts it
/// (hidden after the cut, a secret straddling it would show in part).
pub(super) fn hidden<'a>(credentials: &Credentials, body: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
    let text = String::from_utf8_lossy(body);
    match credentials.hide_in(&text) {
        h if h == text => std::borrow::Cow::Borrowed(body),
        h => std::borrow::Cow::Owned(h.into_bytes()),
    }
}

/// Cost Explorer paged in a way no real answer does: not retried (it would cost again).
fn bad_paging(message: String) -> Failure {
    Failure::CostExplorer(CeError {
        kind: ErrorKind::Permanent,
        message,
    })
}
