//! The commands `run`, `once` and `check` (pull, spool, deliver, sleep), and `schema`.

use crate::config::{Config, Target};
use crate::costexplorer::{CeError, ErrorKind};
use crate::event::Event;
use crate::focus::Format;
use crate::http::Client;
use crate::keys::Credentials;
use crate::schedule::{due_days, format_date, rfc3339};
use crate::signal::{Signals, Wake};
use crate::state::State;
use crate::{debug, error, info, warn};
use std::io::Write;
use std::time::{Duration, Instant};
use time::{Date, OffsetDateTime};

mod deliver;
mod eventbridge;
mod pull;
pub mod revise;
mod wake;

pub(crate) const MIB: u64 = 1024 * 1024;

pub struct Runtime {
    config: Config,
    signals: Signals,
    ce: Client,
    target: Option<Client>,
    credentials: crate::credentials::Provider,
    /// FOCUS's BillingAccountId, once known (`billing_account`).
    account: std::cell::OnceCell<String>,
}

impl From<crate::credentials::CredError> for Failure {
    fn from(e: crate::credentials::CredError) -> Self {
        let kind = if e.transient {
            ErrorKind::Transient
        } else {
            ErrorKind::Credentials
        };
        Failure::CostExplorer(CeError {
            kind,
            message: e.message,
        })
    }
}

/// How a pull failed.
#[derive(Debug)]
pub enum Failure {
    CostExplorer(CeError),
    /// Writing state failed (disk full, permissions).
    State(String),
    /// Events wait in the spool for a target that cannot take them now.
    Undelivered(usize),
    /// A stop was requested.
    Stopped,
    /// max_monthly_requests reached: no request was made.
    SpendCap(crate::spend::CapReached),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::CostExplorer(e) => f.write_str(&e.message),
            Failure::State(e) => f.write_str(e),
            Failure::Undelivered(n) => write!(
                f,
                "{n} event(s) wait in the spool for the target; no new days are pulled until they are delivered"
            ),
            Failure::Stopped => f.write_str("stopped"),
            Failure::SpendCap(c) => c.fmt(f),
        }
    }
}

impl From<crate::spend::Refused> for Failure {
    fn from(r: crate::spend::Refused) -> Self {
        match r {
            crate::spend::Refused::Cap(c) => Failure::SpendCap(c),
            crate::spend::Refused::Io(e) => Failure::State(e),
        }
    }
}

/// What delivering a batch came to.
#[derive(Debug, Default, Clone, Copy)]
pub struct Delivery {
    pub delivered: usize,
    pub rejected: usize,
    /// Events still pending when it stopped or gave up.
    pub left: usize,
    /// It stopped at a setup problem of the target (refusals.rs, a redirect, an untrusted
    /// certificate), which a line has said already.
    pub setup: bool,
}

impl std::ops::AddAssign for Delivery {
    fn add_assign(&mut self, d: Delivery) {
        self.delivered += d.delivered;
        self.rejected += d.rejected;
        self.left += d.left;
        self.setup |= d.setup;
    }
}

impl Runtime {
    pub fn new(
        config: Config,
        signals: Signals,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Runtime, String> {
        let ca = config.ca_file.as_deref();
        let ce = Client::new(&config.endpoint, ca, crate::bounds::CE_LIMITS, env)?;
        let target = match &config.target {
            Target::Http(url) => Some(Client::new(url, ca, crate::bounds::TARGET_LIMITS, env)?),
            Target::EventBridge(bus) => Some(Client::new(
                &bus.endpoint,
                ca,
                crate::bounds::TARGET_LIMITS,
                env,
            )?),
            Target::Stdout => None,
        };
        Ok(Runtime {
            // Before `config` moves in.
            credentials: crate::credentials::Provider::new(
                config.secret.clone(),
                config.role.clone(),
                &config.region,
                ca,
                env,
            )?,
            config,
            signals,
            ce,
            target,
            account: std::cell::OnceCell::new(),
        })
    }

    pub(crate) fn max_backoff(&self) -> Duration {
        Duration::from_secs(self.config.retry_max_backoff_s)
    }

    /// The credentials to sign a pull with, from the cache or the chain.
    pub(crate) fn signing_credentials(&self) -> Result<Credentials, Failure> {
        let sleep = |d| self.signals.sleep_for(d);
        match self.credentials.get(&sleep) {
            Ok(got) => Ok(got.credentials),
            // Asked to stop while waiting to retry STS.
            Err(_) if self.signals.stopping() => Err(Failure::Stopped),
            Err(e) => Err(e.into()),
        }
    }

    /// `run`, before its first credentials: a "starting" heartbeat (STS retries can take
    /// minutes), so a service restarted after a clean stop is not taken for stopped meanwhile.
    pub fn heartbeat_while_starting(&self) {
        if self.target.is_some() {
            crate::heartbeat::serve(Some(&self.config.state_dir));
            let next = OffsetDateTime::now_utc() + crate::heartbeat::WORK_BOUND;
            crate::heartbeat::beat("starting: looking for credentials", next);
        }
    }

    /// An event as it goes out: its data in the configured format (`None`: the seed's
    /// data, `seed`, as it is), then sealed from that data (subject, partition key,
    /// dataschema, id).
    pub(crate) fn outgoing(
        &self,
        event: &mut Event,
        seed: &serde_json::value::RawValue,
    ) -> Option<Box<serde_json::value::RawValue>> {
        let wire = match self.config.focus.format {
            Format::Focus => crate::focus::data(event, self.account.get().map(String::as_str)),
            Format::Seed => None,
        };
        let group_by = &self.config.breakdown.group_by;
        let dataschema = self.config.dataschema.as_deref();
        event.seal(wire.as_deref().unwrap_or(seed), group_by, dataschema);
        wire
    }

    /// With `format: focus`, before a pull: the BillingAccountId, from `billing_account_id`
    /// or else the account of the credentials (STS GetCallerIdentity, once a process).
    pub(crate) fn billing_account(&self) -> Result<(), Failure> {
        if self.config.focus.format != Format::Focus || self.account.get().is_some() {
            return Ok(());
        }
        let account = match &self.config.focus.billing_account_id {
            Some(id) => id.clone(),
            None => match self.credentials.account(&|d| self.signals.sleep_for(d)) {
                Ok(id) => id,
                Err(_) if self.signals.stopping() => return Err(Failure::Stopped),
                Err(mut e) => {
                    e.message = format!(
                        "{} (format: focus asks STS for the billing account; set billing_account_id to name it instead)",
                        e.message
                    );
                    return Err(e.into());
                }
            },
        };
        let _ = self.account.set(account);
        Ok(())
    }

    /// `outgoing` as the structured JSON line, for `--target -`.
    pub(crate) fn outgoing_line(&self, mut event: Event) -> String {
        let seed = event.raw_data();
        let wire = self.outgoing(&mut event, &seed);
        event.to_json_with(wire.as_deref().unwrap_or(&seed))
    }

    /// The first look at start (see Provider::first_fetch).
    pub fn first_credentials(&self) -> Result<(), String> {
        self.credentials.first_fetch(&|d| self.signals.sleep_for(d))
    }
}

/// The process exits on a signal without returning through `run` (the grace after a stop
/// ran out, or a second signal): the service's heartbeat says it stopped.
pub fn mark_stopped() {
    crate::heartbeat::stopped();
}

pub(crate) fn describe_range(first: Date, last: Date) -> String {
    if first == last {
        format_date(first)
    } else {
        format!("{} to {}", format_date(first), format_date(last))
    }
}

pub(crate) fn yesterday() -> Date {
    OffsetDateTime::now_utc().date() - time::Duration::days(1)
}

/// `once`: pull a day or range (default yesterday) and deliver it; exit status.
pub fn once(rt: &Runtime, days: Option<(Date, Date)>, force: bool) -> i32 {
    let (first, last) = days.unwrap_or_else(|| (yesterday(), yesterday()));
    let today = OffsetDateTime::now_utc().date();
    if last > today {
        error!("{}: that day has not begun (UTC)", format_date(last));
        return 2;
    }
    if rt.target.is_none() {
        return preview(rt, first, last);
    }
    if last >= today {
        // Recording a day that is not over would make the service skip its complete data.
        error!(
            "{}: that day is not over yet (UTC), so it cannot be delivered; the latest complete day is {} (preview it with --target -)",
            format_date(last),
            format_date(yesterday())
        );
        return 2;
    }
    let deadline = Some(Instant::now() + Duration::from_secs(rt.config.send_timeout_s));
    let (mut state, total) = match lock_and_drain(rt, deadline) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let undelivered: Vec<Date> = day_list(first, last)
        .into_iter()
        .filter(|d| force || !state.is_delivered(*d))
        .collect();
    let (Some(from), Some(to)) = (undelivered.first().copied(), undelivered.last().copied()) else {
        if total.delivered + total.rejected == 0 {
            info!(
                "{} already delivered; nothing to do (use --force to pull and send it again)",
                describe_range(first, last)
            );
        }
        // Spooled events rejected above still make the run fail.
        return finish_once(rt, total);
    };
    let pull = Pull {
        days: (from, to),
        force,
        revise: None,
    };
    pull_and_deliver(rt, &mut state, pull, deadline, total)
}

/// What `once` and `revise` pull after the spool is drained (see `Runtime::pull_to_spool`).
pub(crate) struct Pull {
    pub days: (Date, Date),
    pub force: bool,
    pub revise: Option<u32>,
}

/// The end of `once` and `revise`: pulls into the spool, delivers that batch, and gives the
/// exit status for everything delivered in the run (`total` so far).
pub(crate) fn pull_and_deliver(
    rt: &Runtime,
    state: &mut State,
    pull: Pull,
    deadline: Option<Instant>,
    mut total: Delivery,
) -> i32 {
    let (first, last) = pull.days;
    let batch = match rt.pull_to_spool(state, first, last, pull.force, pull.revise) {
        Ok(b) => b,
        Err(Failure::Stopped) => return 0,
        Err(e) => {
            error!("{e}");
            return 1;
        }
    };
    match rt.deliver_batch(state, batch, deadline) {
        Ok(d) => {
            total += d;
            finish_once(rt, total)
        }
        Err(e) => {
            error!("{e}");
            1
        }
    }
}

/// What `once` and `revise` do first: open and lock state_dir and deliver what the spool
/// holds. `Err(exit status)` when that already decides the run.
pub(crate) fn lock_and_drain(
    rt: &Runtime,
    deadline: Option<Instant>,
) -> Result<(State, Delivery), i32> {
    let mut state = State::open(&rt.config.state_dir, rt.config.state_dir_named).map_err(|e| {
        error!("{e}");
        2
    })?;
    if let Err(e) = state.acquire(false) {
        error!("{e}");
        return Err(1);
    }
    let mut total = rt.deliver_spool(&mut state, deadline).map_err(|e| {
        error!("{e}");
        1
    })?;
    if total.left > 0 || rt.signals.stopping() {
        return Err(finish_once(rt, total));
    }
    match pull_again(rt, &mut state, deadline) {
        Ok(None) => Ok((state, total)),
        Ok(Some(d)) => {
            total += d;
            if total.left > 0 || rt.signals.stopping() {
                return Err(finish_once(rt, total));
            }
            Ok((state, total))
        }
        Err(Failure::Stopped) => Err(0),
        Err(e) => {
            error!("{e}");
            Err(1)
        }
    }
}

/// Days whose record of what was sent was damaged (state.rs) are pulled again before
/// anything else, in one range request: every line goes out as a revision above any sent
/// before. None when there is none.
pub(crate) fn pull_again(
    rt: &Runtime,
    state: &mut State,
    deadline: Option<Instant>,
) -> Result<Option<Delivery>, Failure> {
    let days = state.again_days();
    let (Some(first), Some(last)) = (days.first().copied(), days.last().copied()) else {
        return Ok(None);
    };
    info!(
        "pulling {} again: the record of what was sent for {} was damaged; every line goes out as a revision above any sent before",
        describe_range(first, last),
        days.iter()
            .map(|d| format_date(*d))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let batch = rt.pull_to_spool(state, first, last, false, None)?;
    let delivery = rt
        .deliver_batch(state, batch, deadline)
        .map_err(Failure::State)?;
    Ok(Some(delivery))
}

pub(crate) fn finish_once(rt: &Runtime, total: Delivery) -> i32 {
    if rt.signals.stopping() {
        return 0;
    }
    if total.left > 0 {
        // A setup problem's line already said what stays in the spool and why.
        if !total.setup {
            error!(
                "{} event(s) not delivered; they stay in the spool and go out on the next run",
                total.left
            );
        }
        return 1;
    }
    if total.rejected > 0 {
        error!(
            "{} event(s) rejected by the target; see dead-letter.jsonl in state_dir",
            total.rejected
        );
        return 1;
    }
    0
}

fn day_list(first: Date, last: Date) -> Vec<Date> {
    let mut days = Vec::new();
    let mut d = first;
    while d <= last {
        days.push(d);
        d += time::Duration::days(1);
    }
    days
}

/// `--target -`: print structured events on stdout; no state is read or written.
fn preview(rt: &Runtime, first: Date, last: Date) -> i32 {
    match print_events(rt, first, last) {
        Ok((pages, groups)) => {
            info!(
                "pulled {}: {groups} groups in {pages} page(s), printed to stdout",
                describe_range(first, last)
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

/// Pulls and prints structured events on stdout. A reader that went away (`| head`) stops it quietly.
fn print_events(rt: &Runtime, first: Date, last: Date) -> Result<(usize, usize), Failure> {
    let time = rfc3339(OffsetDateTime::now_utc());
    let mut out = std::io::stdout().lock();
    let mut closed = false;
    let result = rt.pull(first, last, usize::MAX, &mut |line| {
        let line = rt.outgoing_line(Event::new(line, time.clone()));
        writeln!(out, "{line}").map_err(|e| {
            closed = e.kind() == std::io::ErrorKind::BrokenPipe;
            format!("stdout: {e}")
        })
    });
    let _ = out.flush();
    match result {
        Err(Failure::State(_)) if closed => {
            info!("stdout was closed; stopping");
            Err(Failure::Stopped)
        }
        other => other,
    }
}

/// `schema`: the JSON Schema of the data of the events `config` makes, in its format or
/// in `format` (`seed` or `focus`), pretty-printed with a final newline.
pub fn schema(config: &Config, format: Option<&str>) -> String {
    let format = match format {
        Some("focus") => Format::Focus,
        Some(_) => Format::Seed,
        None => config.focus.format,
    };
    let mut breakdown = config.breakdown.clone();
    match (config.focus.format, format) {
        (Format::Seed, Format::Focus) => {
            breakdown.metrics = crate::focus::METRICS.map(String::from).to_vec();
        }
        // A focus config has no `metric` key: as seed it would ask for the default.
        (Format::Focus, Format::Seed) => {
            breakdown.metrics = crate::breakdown::Breakdown::default().metrics;
        }
        _ => {}
    }
    let summary = config.revise.summary;
    let id = config.dataschema.as_deref();
    let doc = crate::schema::document(&breakdown, summary, format, id);
    let text = serde_json::to_string_pretty(&doc).expect("a JSON value always serializes");
    text + "\n"
}

/// `check`: config, secret and state_dir are usable, Cost Explorer accepts a signed call,
/// and the target answers (OPTIONS). Both are tried, so one run names every problem.
pub fn check(rt: &Runtime) -> i32 {
    if rt.target.is_some()
        && let Err(e) = crate::state::usable(&rt.config.state_dir)
        && rt.config.state_dir_named
    {
        error!("{e}");
        return 2;
    }
    let day = yesterday();
    // One page (one paid request) proves keys, signature and permission.
    let pulled = match rt.pull(day, day, 1, &mut |_| Ok(())) {
        Ok((_, n)) => Ok(format!(
            "Cost Explorer at {} accepted the signed request ({n} groups on the first page for {}); credentials: {}",
            crate::urls::redact(&rt.config.endpoint),
            format_date(day),
            rt.credentials.source(),
        )),
        Err(Failure::Stopped) => return 0,
        Err(e) => Err(e.to_string()),
    };
    let target = rt.check_target();
    match (pulled, target) {
        (Ok(pulled), Ok(target)) => {
            info!("check passed: {pulled}; {target}");
            0
        }
        (pulled, target) => {
            for e in [pulled.err(), target.err()].into_iter().flatten() {
                error!("check failed: {e}");
            }
            1
        }
    }
}

impl Runtime {
    /// One OPTIONS request to the target, not retried: what it answered, or why it could
    /// not be reached (Err). OPTIONS, not HEAD: it is the CloudEvents webhook spec's own
    /// handshake and safe by definition (RFC 9110), and a receiver that does not know it
    /// still answers it (405, 404), which proves the target is there.
    fn check_target(&self) -> Result<String, String> {
        if let Target::EventBridge(bus) = &self.config.target {
            let arn = self.describe_bus(bus)?;
            let name = target_name(&self.config.target);
            return Ok(format!("target {name} (DescribeEventBus: {arn})"));
        }
        let (Some(client), Target::Http(url)) = (&self.target, &self.config.target) else {
            return Ok("target stdout".into());
        };
        let shown = crate::urls::redact(url);
        let request = crate::http::Request {
            method: "OPTIONS",
            url: url.clone(),
            headers: vec![("webhook-request-origin".into(), "source-aws-billing".into())],
            body: Vec::new(),
        };
        let r = client
            .send(&request)
            .map_err(|e| format!("the target {shown} cannot be reached: {e}"))?;
        match r.status {
            300..=399 => Err(format!(
                "the target {shown} answered OPTIONS with HTTP {} redirecting to {}: set target to the final URL (events are not sent to a redirect)",
                r.status,
                r.header("location")
                    .map(|l| crate::log::peer(&crate::urls::redact(l)))
                    .unwrap_or_else(|| "nowhere".into())
            )),
            status if crate::refusals::setup_status(status) => {
                warn!(
                    "the target answered OPTIONS with HTTP {status}: if it refuses the events alike, they stay in the spool; {}",
                    crate::refusals::what_to_check(status, &shown)
                );
                Ok(format!(
                    "target {shown} answered OPTIONS with HTTP {status}"
                ))
            }
            status => Ok(format!(
                "target {shown} answered OPTIONS with HTTP {status}"
            )),
        }
    }
}

/// `run`: deliver the spool, pull what is due, sleep until the next pull_hour; until stopped.
pub fn run(rt: &Runtime) -> i32 {
    let mut state = match rt.target {
        None => State::memory(),
        Some(_) => match State::open(&rt.config.state_dir, rt.config.state_dir_named) {
            Ok(s) => s,
            Err(e) => {
                error!("{e}");
                return 2;
            }
        },
    };
    info!(
        "running: pulling {} every day at {:02}:00 UTC from {} to {}",
        rt.config.metric,
        rt.config.pull_hour,
        crate::urls::redact(&rt.config.endpoint),
        target_name(&rt.config.target)
    );
    crate::heartbeat::serve(state.dir());
    let mut failures = 0u32;
    loop {
        crate::heartbeat::round(rt.config.send_timeout_s);
        // The lock is held while working and released while asleep, so `once` can run then;
        // taking it again re-reads what such a run delivered.
        let step = state
            .acquire(true)
            .map_err(Failure::State)
            .and_then(|_| service_step(rt, &mut state));
        state.release();
        let now = OffsetDateTime::now_utc();
        let schedule = wake::Schedule::of(&rt.config);
        let delivered = state.delivered_days();
        let random = crate::retry::random();
        let Some(wake) = wake::after_round(&step, now, schedule, delivered, failures, random)
        else {
            break;
        };
        if let Some(e) = &wake.error {
            error!("{e}");
        }
        failures = wake.failures;
        let wake_at = wake.at;
        if rt.signals.stopping() {
            break;
        }
        debug!("sleeping until {}", rfc3339(wake_at));
        crate::heartbeat::beat("sleeping until the next pull or retry", wake_at);
        match rt.signals.sleep_until(wake_at) {
            Wake::Stop => break,
            Wake::ClockChanged => info!("the system clock changed; working out what is due again"),
            Wake::Due => {}
        }
    }
    crate::heartbeat::stopped();
    info!("stopped");
    0
}

/// One round of the service: empty the spool, then pull and deliver the due days.
fn service_step(rt: &Runtime, state: &mut State) -> Result<(), Failure> {
    if rt.target.is_some() {
        let spooled = rt.deliver_spool(state, None).map_err(Failure::State)?;
        if rt.signals.stopping() {
            return Err(Failure::Stopped);
        }
        if spooled.left > 0 {
            return Err(Failure::Undelivered(spooled.left));
        }
        if let Some(again) = pull_again(rt, state, None)? {
            if rt.signals.stopping() {
                return Err(Failure::Stopped);
            }
            if again.left > 0 {
                return Err(Failure::Undelivered(again.left));
            }
        }
    }
    let due = due_days(
        OffsetDateTime::now_utc(),
        rt.config.pull_hour,
        state.delivered_days(),
        rt.config.max_catchup_days,
    );
    if let Some((a, b)) = not_reached(rt, state, &due) {
        warn!(
            "{} are older than max_catchup_days {} and are not pulled; to fill the gap run: source-aws-billing once --from {} --to {}",
            describe_range(a, b),
            rt.config.max_catchup_days,
            format_date(a),
            format_date(b)
        );
    }
    let Some((first, last)) = due.pull else {
        return Ok(());
    };
    if rt.target.is_none() {
        print_events(rt, first, last)?;
        state.mark_delivered(first, last).map_err(Failure::State)?;
        return Ok(());
    }
    let revise = Some(rt.config.revise.revise_days);
    let batch = rt.pull_to_spool(state, first, last, false, revise)?;
    let delivery = rt
        .deliver_batch(state, batch, None)
        .map_err(Failure::State)?;
    if rt.signals.stopping() {
        return Err(Failure::Stopped);
    }
    if delivery.left > 0 {
        return Err(Failure::Undelivered(delivery.left));
    }
    Ok(())
}

/// The undelivered days older than max_catchup_days that this round's pull leaves out: the
/// daily range request starts at the oldest day it revises (revise_days may reach further
/// back than max_catchup_days), and undelivered days inside it are delivered too.
fn not_reached(rt: &Runtime, state: &State, due: &crate::schedule::Due) -> Option<(Date, Date)> {
    let (a, b) = due.skipped?;
    let days = rt.config.revise.revise_days;
    let revised_from = match (due.pull, state.dir()) {
        (Some((_, last)), Some(dir)) if rt.target.is_some() && days > 0 => {
            crate::snapshot::revisable(dir, last, days)
                .into_iter()
                .find(|d| state.is_delivered(*d))
        }
        _ => None,
    };
    let b = revised_from
        .and_then(Date::previous_day)
        .map_or(b, |r| b.min(r));
    (a <= b).then_some((a, b))
}

/// The target for a log line, without credentials.
fn target_name(target: &Target) -> String {
    match target {
        Target::Http(url) => crate::urls::redact(url),
        Target::Stdout => "stdout".into(),
        Target::EventBridge(bus) => bus.to_string(),
    }
}
