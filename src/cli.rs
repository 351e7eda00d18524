//! Hand-parsed command line: the subcommand and its flags.

use std::ffi::OsString;
use std::path::PathBuf;
use time::Date;

pub const USAGE: &str = "\
source-aws-billing: yesterday's AWS cost per service, delivered daily as CloudEvents

usage:
  source-aws-billing [run]      every day at pull_hour:00 UTC pull yesterday, deliver, sleep
  source-aws-billing once [--date YYYY-MM-DD | --from YYYY-MM-DD --to YYYY-MM-DD] [--force]
                                pull one day (default: yesterday, UTC) or an inclusive range,
                                deliver, exit (--force pulls a day that was already delivered)
  source-aws-billing check      validate config and secret, make one signed Cost Explorer
                                call, ask the target (OPTIONS; DescribeEventBus for eventbridge:),
                                say what each answered
  source-aws-billing revise [--days N]
                                pull again the delivered days of the last revise_days (or N)
                                days whose numbers were estimates; deliver what changed
  source-aws-billing status [--json]
                                what state_dir says: days delivered and missing, spool, dead
                                letters, last pull, requests this month, heartbeat (no lock,
                                no request, no credentials)
  source-aws-billing status --check [--grace SECONDS]
                                liveness: exit 0 while the service keeps its own schedule, 1
                                once it is more than SECONDS (default 600) late or never ran
  source-aws-billing status --healthy
                                health: exit 0 while the last pull went well and the newest
                                delivered day is at most a day behind, else 1 and the reason
  source-aws-billing schema [--format seed|focus]
                                print the JSON Schema of the data of every event type the
                                config produces (in its format, or the one named)
  source-aws-billing --help | --version

options:
  --config PATH     config file (default: $CONNECTOR_CONFIG, else /vance/config/config.yml)
  --secret PATH     secret file (default: $CONNECTOR_SECRET, else /vance/secret/secret.yml)
  --target URL|-|eventbridge:BUS
                    where events go ($CONNECTOR_TARGET, else the config's target);
                    eventbridge:BUS (a bus name or ARN) sends them by PutEvents;
                    - prints structured JSON lines on stdout and touches no state
                    (its Cost Explorer requests are still counted, see status)

exit status: 0 delivered (or check passed), 1 runtime failure, 2 bad usage, config or secret
";

const COMMANDS: [&str; 6] = ["run", "once", "check", "revise", "status", "schema"];
const FLAGS: [&str; 14] = [
    "--help",
    "--version",
    "--config",
    "--secret",
    "--target",
    "--date",
    "--from",
    "--to",
    "--force",
    "--days",
    "--json",
    "--check",
    "--healthy",
    "--grace",
];

#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Run,
    /// `days` is an inclusive range; `None` means yesterday.
    Once {
        days: Option<(Date, Date)>,
        force: bool,
    },
    Check,
    /// `days` overrides revise_days.
    Revise {
        days: Option<u32>,
    },
    /// `schema`: the JSON Schema of the data, in the config's format or `format`.
    Schema {
        format: Option<String>,
    },
    /// `status`: print (`json`), or with `check` the liveness decision, or with `healthy`
    /// the health decision.
    Status {
        json: bool,
        check: bool,
        healthy: bool,
        grace_s: u64,
    },
    Help,
    Version,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Cli {
    pub action: Action,
    pub config: Option<PathBuf>,
    pub secret: Option<PathBuf>,
    pub target: Option<String>,
}

/// Parses the arguments after the program name; the error is one line for the user.
pub fn parse(args: &[String]) -> Result<Cli, String> {
    let mut command: Option<&str> = None;
    let (mut config, mut secret, mut target) = (None, None, None);
    let (mut date, mut from, mut to, mut force) = (None, None, None, false);
    let mut revise_days: Option<u32> = None;
    let (mut json, mut check, mut healthy, mut grace_s) = (false, false, false, None);
    let mut format: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg, None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            i += 1;
            args.get(i)
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag {
            "-h" | "--help" | "help" => return Ok(simple(Action::Help)),
            "-V" | "--version" | "version" => return Ok(simple(Action::Version)),
            "--config" => config = Some(PathBuf::from(value(flag)?)),
            "--secret" => secret = Some(PathBuf::from(value(flag)?)),
            "--target" => target = Some(value(flag)?),
            "--date" => date = Some(parse_date(flag, &value(flag)?)?),
            "--from" => from = Some(parse_date(flag, &value(flag)?)?),
            "--to" => to = Some(parse_date(flag, &value(flag)?)?),
            "--force" => force = true,
            "--days" => {
                let v = value(flag)?;
                match v.parse::<u32>() {
                    Ok(n) if n <= crate::revise::MAX_REVISE_DAYS => revise_days = Some(n),
                    _ => {
                        return Err(format!(
                            "--days: expected a number of days 0-{}, found {v:?}",
                            crate::revise::MAX_REVISE_DAYS
                        ));
                    }
                }
            }
            "--format" => match value(flag)?.as_str() {
                f @ ("seed" | "focus") => format = Some(f.to_string()),
                other => return Err(format!("--format: expected seed or focus, found {other:?}")),
            },
            "run" | "once" | "check" | "revise" | "status" | "schema" if command.is_none() => {
                command = Some(arg)
            }
            "--json" => json = true,
            "--check" => check = true,
            "--healthy" => healthy = true,
            "--grace" => grace_s = Some(parse_grace(&value(flag)?)?),
            _ if arg.starts_with('-') => {
                return Err(match crate::spelling::nearest(flag, &FLAGS) {
                    Some(f) => format!("unknown option {arg:?}; did you mean {f}? (see --help)"),
                    None => format!("unknown option {arg:?}; see --help"),
                });
            }
            _ => {
                return Err(match crate::spelling::nearest(arg, &COMMANDS) {
                    Some(c) if command.is_none() => {
                        format!("unknown command {arg:?}; did you mean {c}?")
                    }
                    _ => format!(
                        "unknown command {arg:?}; expected run, once, check, revise, status or schema"
                    ),
                });
            }
        }
        i += 1;
    }
    let command = command.unwrap_or("run");
    if command != "once" && (date.is_some() || from.is_some() || to.is_some() || force) {
        return Err(format!(
            "--date, --from, --to and --force go with the once command, not {command}"
        ));
    }
    if command != "revise" && revise_days.is_some() {
        return Err(format!(
            "--days goes with the revise command, not {command}"
        ));
    }
    if command != "status" && (json || check || healthy || grace_s.is_some()) {
        return Err(format!(
            "--json, --check, --healthy and --grace go with the status command, not {command}"
        ));
    }
    if command != "schema" && format.is_some() {
        return Err(format!(
            "--format goes with the schema command, not {command}"
        ));
    }
    if [json, check, healthy].iter().filter(|f| **f).count() > 1 {
        return Err("status: use one of --json, --check or --healthy".into());
    }
    if grace_s.is_some() && !check {
        return Err("--grace goes with status --check".into());
    }
    let action = match command {
        "run" => Action::Run,
        "revise" => Action::Revise { days: revise_days },
        "status" => Action::Status {
            json,
            check,
            healthy,
            grace_s: grace_s.unwrap_or(crate::status::DEFAULT_GRACE_S),
        },
        "check" => Action::Check,
        "schema" => Action::Schema { format },
        _ => {
            let days = match (date, from, to) {
                (None, None, None) => None,
                (Some(d), None, None) => Some((d, d)),
                (None, Some(f), Some(t)) if f <= t => Some((f, t)),
                (None, Some(f), Some(t)) => {
                    return Err(format!("--from {f} is after --to {t}"));
                }
                (None, Some(_), None) | (None, None, Some(_)) => {
                    return Err("--from and --to go together".into());
                }
                _ => return Err("use either --date or --from/--to, not both".into()),
            };
            Action::Once { days, force }
        }
    };
    Ok(Cli {
        action,
        config,
        secret,
        target,
    })
}

/// The arguments as text: one that is not UTF-8 is refused, not cut or guessed at.
pub fn text_args(args: impl IntoIterator<Item = OsString>) -> Result<Vec<String>, String> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            a.into_string()
                .map_err(|a| format!("argument {} ({a:?}): expected UTF-8 text", i + 1))
        })
        .collect()
}

/// The variables this program reads must be UTF-8: one that is not is refused rather than
/// taken as unset (a state_dir or proxy silently ignored). The value is not shown: it may be
/// a secret.
pub fn check_env_text(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<(), String> {
    for (name, value) in vars {
        let Some(name) = name.to_str() else { continue };
        let ours = name.starts_with("CONNECTOR_")
            || name.starts_with("AWS_")
            || name == "LOG_LEVEL"
            || crate::urls::PROXY_VARS.contains(&name)
            || name.eq_ignore_ascii_case("no_proxy");
        if ours && value.to_str().is_none() {
            return Err(format!("environment variable {name}: expected UTF-8 text"));
        }
    }
    Ok(())
}

fn simple(action: Action) -> Cli {
    Cli {
        action,
        config: None,
        secret: None,
        target: None,
    }
}

/// Cost Explorer holds nothing older than this; older dates are refused before any call.
const FIRST_DAY: Date = time::macros::date!(2000 - 01 - 01);

fn parse_grace(value: &str) -> Result<u64, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|s| *s <= 86400 * 366)
        .ok_or_else(|| format!("--grace: expected seconds 0-31622400, found {value:?}"))
}

fn parse_date(flag: &str, value: &str) -> Result<Date, String> {
    match crate::schedule::parse_date(value) {
        Some(d) if d >= FIRST_DAY => Ok(d),
        Some(_) => Err(format!(
            "{flag}: expected a date from 2000-01-01 on (Cost Explorer has nothing older), found {value:?}"
        )),
        None => Err(format!(
            "{flag}: expected a date YYYY-MM-DD, found {value:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn p(args: &[&str]) -> Result<Cli, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn no_arguments_is_run() {
        assert_eq!(p(&[]).unwrap().action, Action::Run);
    }

    #[test]
    fn once_with_date_range_and_flags() {
        let cli = p(&[
            "once",
            "--from",
            "2022-06-01",
            "--to=2022-06-03",
            "--target",
            "-",
        ])
        .unwrap();
        assert_eq!(
            cli.action,
            Action::Once {
                days: Some((date!(2022 - 06 - 01), date!(2022 - 06 - 03))),
                force: false
            }
        );
        assert_eq!(cli.target.as_deref(), Some("-"));
        let cli = p(&[
            "--config",
            "c.yml",
            "once",
            "--date",
            "2022-06-13",
            "--force",
        ])
        .unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("c.yml")));
        assert!(matches!(cli.action, Action::Once { force: true, .. }));
    }

    #[test]
    fn arguments_and_our_variables_must_be_text() {
        use std::os::unix::ffi::OsStringExt;
        let bad = || OsString::from_vec(vec![b'a', 0xff]);
        let e = text_args([OsString::from("once"), bad()]).unwrap_err();
        assert!(e.starts_with("argument 2 (") && e.contains("UTF-8"), "{e}");
        assert_eq!(
            text_args([OsString::from("run")]),
            Ok(vec!["run".to_string()])
        );
        for name in [
            "CONNECTOR_STATE_DIR",
            "AWS_SECRET_ACCESS_KEY",
            "https_proxy",
            "LOG_LEVEL",
        ] {
            let e = check_env_text([(OsString::from(name), bad())]).unwrap_err();
            assert_eq!(
                e,
                format!("environment variable {name}: expected UTF-8 text")
            );
        }
        assert_eq!(check_env_text([(OsString::from("HOME"), bad())]), Ok(()));
    }

    #[test]
    fn revise_takes_days() {
        assert_eq!(
            p(&["revise"]).unwrap().action,
            Action::Revise { days: None }
        );
        assert_eq!(
            p(&["revise", "--days=5", "--target", "-"]).unwrap().action,
            Action::Revise { days: Some(5) }
        );
    }

    #[test]
    fn schema_takes_a_format() {
        assert_eq!(
            p(&["schema"]).unwrap().action,
            Action::Schema { format: None }
        );
        assert_eq!(
            p(&["schema", "--format=focus"]).unwrap().action,
            Action::Schema {
                format: Some("focus".into())
            }
        );
        assert!(
            p(&["schema", "--format", "csv"])
                .unwrap_err()
                .contains("seed or focus")
        );
        assert!(
            p(&["once", "--format", "seed"])
                .unwrap_err()
                .contains("goes with the schema command")
        );
    }

    #[test]
    fn status_with_its_flags() {
        assert_eq!(
            p(&["status"]).unwrap().action,
            Action::Status {
                json: false,
                check: false,
                healthy: false,
                grace_s: 600
            }
        );
        assert_eq!(
            p(&["status", "--check", "--grace=30"]).unwrap().action,
            Action::Status {
                json: false,
                check: true,
                healthy: false,
                grace_s: 30
            }
        );
        assert!(matches!(
            p(&["--config", "c.yml", "status", "--json"])
                .unwrap()
                .action,
            Action::Status { json: true, .. }
        ));
    }

    #[test]
    fn bad_usage_is_one_line() {
        for (args, want) in [
            (&["once", "--date", "2022-13-01"][..], "expected a date"),
            (
                &["once", "--from", "2022-06-03", "--to", "2022-06-01"],
                "is after",
            ),
            (&["once", "--from", "2022-06-03"], "go together"),
            (&["run", "--date", "2022-06-03"], "go with the once command"),
            (&["--bogus"], "unknown option"),
            (&["pull"], "unknown command"),
            (&["--config"], "needs a value"),
            (
                &["once", "--date", "-9999-01-01"],
                "expected a date YYYY-MM-DD",
            ),
            (
                &["once", "--date", "+2022-01-01"],
                "expected a date YYYY-MM-DD",
            ),
            (
                &["once", "--date", "20222-01-01"],
                "expected a date YYYY-MM-DD",
            ),
            (&["once", "--date", "0000-01-01"], "from 2000-01-01 on"),
            (
                &["once", "--from", "1999-12-31", "--to", "2022-01-01"],
                "from 2000-01-01 on",
            ),
            (&["revise", "--days", "63"], "0-62"),
            (&["once", "--days", "3"], "goes with the revise command"),
            (&["status", "--grace", "soon"], "--grace: expected seconds"),
            (&["status", "--grace", "5"], "goes with status --check"),
            (
                &["status", "--json", "--check"],
                "one of --json, --check or --healthy",
            ),
            (
                &["status", "--check", "--healthy"],
                "one of --json, --check or --healthy",
            ),
            (&["once", "--healthy"], "go with the status command"),
            (&["once", "--check"], "go with the status command"),
            (&["oncee"], "unknown command \"oncee\"; did you mean once?"),
            (&["stauts", "--json"], "did you mean status?"),
            (
                &["once", "--targt", "-"],
                "\"--targt\"; did you mean --target? (see --help)",
            ),
            (&["once", "--dat=2022-01-01"], "did you mean --date?"),
        ] {
            let err = p(args).unwrap_err();
            assert!(err.contains(want), "{args:?}: {err}");
            assert!(!err.contains('\n'));
        }
    }
}
