//! Plain GET/PUT to the link-local or loopback credential endpoints (container, IMDS): no proxy, short timeouts.

use std::io::Read;
use std::time::Duration;

/// How long a local call may take: to connect, and from start to the end of the answer
/// (a peer dripping its answer byte by byte is given up at `total`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub connect: Duration,
    pub total: Duration,
}

/// A GET or PUT to a link-local or loopback credentials endpoint: no proxy, bounded time.
pub(crate) fn local_call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    budget: Budget,
) -> Result<(u16, Vec<u8>), ureq::Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(budget.connect))
        .timeout_per_read(Some(budget.connect))
        .timeout_per_write(Some(budget.connect))
        // Rare calls: one overall deadline (its resolver thread costs nothing here).
        .timeout_global(Some(budget.total))
        .max_redirects(0)
        .proxy(None)
        .user_agent(concat!("source-aws-billing/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut response = if method == "PUT" {
        let mut b = agent.put(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.send(&[][..])?
    } else {
        let mut b = agent.get(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.call()?
    };
    let status = response.status().as_u16();
    let mut body = Vec::new();
    response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .reader()
        .take(64 * 1024)
        .read_to_end(&mut body)?;
    Ok((status, body))
}

/// A failed local call as a short phrase ("no answer within 1 s", "connection refused").
pub(crate) fn unreachable(e: &ureq::Error, budget: Budget) -> String {
    let secs = |d: Duration| format!("{} s", d.as_secs_f32());
    match e {
        ureq::Error::Timeout(ureq::Timeout::Connect) => {
            format!("no answer within {}", secs(budget.connect))
        }
        ureq::Error::Timeout(_) => format!("no complete answer within {}", secs(budget.total)),
        ureq::Error::Io(io) => crate::files::plain_io(io).to_ascii_lowercase(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::HostNotFound => "host not found".into(),
        other => other.to_string(),
    }
}
