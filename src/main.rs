//! argv → command → exit code; nothing else.

use source_aws_billing::cli::{self, Action};
use source_aws_billing::config::{self, Overrides};
use source_aws_billing::credentials;
use source_aws_billing::service::{self, Runtime};
use source_aws_billing::{error, log, signal, status, warn};
use std::io::Write;
use std::time::Duration;

fn main() {
    // First of all: a stop signal from now on is a clean stop, never the default action.
    signal::block();
    std::process::exit(real_main());
}

fn real_main() -> i32 {
    let args = match cli::text_args(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => return usage_error(&e),
    };
    if let Err(e) = cli::check_env_text(std::env::vars_os()) {
        return usage_error(&e);
    }
    let env = |k: &str| std::env::var(k).ok();
    log::init(env("LOG_LEVEL").as_deref());
    let cli = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    match cli.action {
        Action::Help => return print_stdout(cli::USAGE),
        Action::Version => {
            return print_stdout(&format!(
                "source-aws-billing {}\n",
                env!("CARGO_PKG_VERSION")
            ));
        }
        _ => {}
    }
    // Before any thread starts, so that every thread inherits the blocked signals.
    let signals = signal::install(service::mark_stopped);
    let overrides = Overrides {
        config: cli.config,
        secret: cli.secret,
        target: cli.target,
        // status and schema send nothing: a missing target is no error there.
        without_target: matches!(cli.action, Action::Status { .. } | Action::Schema { .. }),
    };
    // Warnings go out as they are found: an error after them must not hide them.
    let mut warn = |w: String| warn!("{w}");
    let loaded = config::load_reporting(&overrides, &env, &mut warn).and_then(|c| {
        // status reads state_dir only and schema only the config: no credentials.
        if !matches!(cli.action, Action::Status { .. } | Action::Schema { .. }) {
            // Once: the chain reads the secret file again at every use (credentials::warn_once).
            credentials::check_static_keys(&c.secret, &mut credentials::warn_once)?;
        }
        Ok(c)
    });
    let config = match loaded {
        Ok(config) => config,
        Err(e) => {
            error!("{e}");
            return 2;
        }
    };
    if let Action::Status {
        json,
        check,
        healthy,
        grace_s,
    } = cli.action
    {
        let grace = Duration::from_secs(grace_s);
        return status::command(&config, json, check, healthy, grace);
    }
    if let Action::Schema { format } = &cli.action {
        return print_stdout(&service::schema(&config, format.as_deref()));
    }
    let runtime = match Runtime::new(config, signals, &env) {
        Ok(r) => r,
        Err(e) => {
            error!("{e}");
            return 2;
        }
    };
    if matches!(cli.action, Action::Run) {
        runtime.heartbeat_while_starting();
    }
    // Credentials are looked for once up front: none at all is bad input, as a missing key was.
    if let Err(e) = runtime.first_credentials() {
        error!("{e}");
        return 2;
    }
    match cli.action {
        Action::Once { days, force } => service::once(&runtime, days, force),
        Action::Check => service::check(&runtime),
        Action::Revise { days } => service::revise::revise(&runtime, days),
        _ => service::run(&runtime),
    }
}

/// Bad usage: one line on stderr (if stderr can take it), exit 2.
fn usage_error(message: &str) -> i32 {
    let _ = writeln!(std::io::stderr(), "error: {message}");
    2
}

/// Writes `text` on stdout: a reader that went away is a quiet stop, any other failure
/// (a full disk) is exit 1 with a line on stderr.
fn print_stdout(text: &str) -> i32 {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            error!("stdout: {}", source_aws_billing::files::plain_io(&e));
            1
        }
    }
}
