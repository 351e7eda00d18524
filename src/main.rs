//! argv → command → exit code; nothing else.

use source_aws_billing::cli::{self, Action};
use source_aws_billing::config::{self, Overrides};
use source_aws_billing::service::{self, Runtime};
use source_aws_billing::{error, log, signal, status, warn};
use std::time::Duration;

fn main() {
    std::process::exit(real_main());
}

fn real_main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = |k: &str| std::env::var(k).ok();
    log::init(env("LOG_LEVEL").as_deref());
    let cli = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    match cli.action {
        Action::Help => {
            print!("{}", cli::USAGE);
            return 0;
        }
        Action::Version => {
            println!("source-aws-billing {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        _ => {}
    }
    // Before any thread starts, so that every thread inherits the blocked signals.
    let signals = signal::install();
    let overrides = Overrides {
        config: cli.config,
        secret: cli.secret,
        target: cli.target,
    };
    // status reads state_dir only: it needs no credentials.
    let load = match cli.action {
        Action::Status { .. } => config::load_settings,
        _ => config::load,
    };
    let config = match load(&overrides, &env) {
        Ok((config, warnings)) => {
            for w in warnings {
                warn!("{w}");
            }
            config
        }
        Err(e) => {
            error!("{e}");
            return 2;
        }
    };
    if let Action::Status {
        json,
        check,
        grace_s,
    } = cli.action
    {
        return status::command(&config, json, check, Duration::from_secs(grace_s));
    }
    let runtime = match Runtime::new(config, signals, &env) {
        Ok(r) => r,
        Err(e) => {
            error!("{e}");
            return 2;
        }
    };
    match cli.action {
        Action::Once { days, force } => service::once(&runtime, days, force),
        Action::Check => service::check(&runtime),
        _ => service::run(&runtime),
    }
}
