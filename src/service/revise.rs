//! `revise`: pull again, by hand, the delivered days whose numbers were estimates, and deliver what changed.

use crate::event::Event;
use crate::schedule::{format_date, rfc3339};
use crate::service::{Failure, Pull, Runtime, describe_range, pull_and_deliver, yesterday};
use crate::snapshot::{Plan, Round, revisable};
use crate::{error, info};
use std::io::Write;
use std::time::{Duration, Instant};
use time::{Date, OffsetDateTime};

/// The delivered days with estimated numbers within `days` (default revise_days) days
/// before yesterday are pulled in one range request; changed, new and vanished lines go out
/// as revisions. Exits like `once`: 0 all delivered, 1 a runtime failure.
pub fn revise(rt: &Runtime, days: Option<u32>) -> i32 {
    let n = days.unwrap_or(rt.config.revise.revise_days);
    let dir = rt.config.state_dir.clone();
    if rt.target.is_none() {
        return preview(rt, &dir, n);
    }
    let deadline = Some(Instant::now() + Duration::from_secs(rt.config.send_timeout_s));
    let (mut state, total) = match crate::service::lock_and_drain(rt, deadline) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let Some(state_dir) = state.dir().map(|d| d.to_path_buf()) else {
        info!("no state_dir, so nothing delivered before is known; nothing to revise");
        return 0;
    };
    let days: Vec<Date> = revisable(&state_dir, yesterday(), n)
        .into_iter()
        .filter(|d| state.is_delivered(*d))
        .collect();
    let Some((first, last)) = span(&days) else {
        info!("no delivered day of the last {n} day(s) has estimated numbers; nothing to revise");
        return 0;
    };
    let pull = Pull {
        days: (first, last),
        force: false,
        revise: Some((last - first).whole_days() as u32),
    };
    pull_and_deliver(rt, &mut state, pull, deadline, total)
}

fn span(days: &[Date]) -> Option<(Date, Date)> {
    Some((*days.first()?, *days.last()?))
}

/// `--target -`: the revisions a `revise` would send, printed; nothing is recorded.
fn preview(rt: &Runtime, dir: &std::path::Path, n: u32) -> i32 {
    let days: Vec<Date> = revisable(dir, yesterday(), n).into_iter().collect();
    let Some((first, last)) = span(&days) else {
        info!(
            "no day of the last {n} day(s) has estimated numbers in {}; nothing to revise",
            dir.display()
        );
        return 0;
    };
    // A preview repairs nothing: a damaged day file is named, and read as far as it goes.
    let damaged = crate::snapshot::check_days(dir, false, &mut |file, problem| {
        crate::warn!("{}: {problem}", file.display())
    });
    for d in damaged.iter().flatten() {
        crate::warn!(
            "{}: {}; the preview reads what it can of it (a revise that records repairs it and sends {} again)",
            d.file.display(),
            d.problem,
            format_date(d.day)
        );
    }
    let window = Some((last - first).whole_days() as u32);
    let keep = rt.config.revise.revise_days;
    // Every day with a snapshot was delivered: a snapshot is kept only once its batch is.
    let plan = Plan {
        revise_days: keep,
        window,
        days: (first, last),
        delivered: &|_| true,
        again: &|_| false,
        sent: &|_| None,
        record: false,
    };
    let mut round = match Round::start(Some(dir), &plan) {
        Ok(r) => r.with_summary(rt.config.revise.summary),
        Err(e) => {
            error!("{e}");
            return 1;
        }
    };
    let time = rfc3339(OffsetDateTime::now_utc());
    let mut out = std::io::stdout().lock();
    let mut count = 0usize;
    let mut print = |e: Event| -> Result<(), String> {
        count += 1;
        writeln!(out, "{}", rt.outgoing_line(e)).map_err(|e| format!("stdout: {e}"))
    };
    let result = rt
        .pull(first, last, usize::MAX, &mut |line| {
            let event = Event::new(line, time.clone());
            match round.judge(event, true)? {
                Some(e) => print(e),
                None => Ok(()),
            }
        })
        .and_then(|_| round.vanished(&time, &mut print).map_err(Failure::State));
    match result {
        Ok(()) => {
            info!(
                "revised {} ({}): {count} revision(s) printed to stdout, nothing recorded",
                describe_range(first, last),
                days.iter()
                    .map(|d| format_date(*d))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            0
        }
        Err(Failure::Stopped) => 0,
        Err(e) => {
            error!("{e}");
            1
        }
    }
}
