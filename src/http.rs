//! The HTTP client: one ureq Agent per destination, with timeouts, proxy and CA roots.

use crate::urls::{origin, url_host};
use crate::yaml::{ConfigError, Doc};
use std::io::Read;
use std::path::Path;
use std::time::Duration;
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, RustlsConnector};

/// A request built by the core and sent as is.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A response as status, headers (names lower-cased; those of a non-2xx answer only) and body bytes.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// At most the client's cap for this status; the rest was not read.
    pub body: Vec<u8>,
    /// The peer sent more than the cap.
    pub truncated: bool,
}

/// What one request may cost: its time from connect to the last byte, and the bytes read.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub deadline: Duration,
    /// Bytes read of a 2xx body.
    pub max_body: u64,
    /// Bytes read of any other body (it only explains the status).
    pub max_error_body: u64,
}

impl Request {
    /// Adds the SigV4 headers that sign the request as it stands (sign.rs).
    pub fn sign(
        &mut self,
        credentials: &crate::keys::Credentials,
        region: &str,
        service: &str,
        time: std::time::SystemTime,
    ) -> Result<(), String> {
        let signable = crate::sign::Signable {
            method: self.method,
            url: &self.url,
            headers: &self.headers,
            body: &self.body,
        };
        let added = crate::sign::headers(signable, credentials, region, service, time)?;
        self.headers.extend(added);
        Ok(())
    }
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A failed attempt: a readable line (never the request's secrets) and whether waiting can help.
#[derive(Debug)]
pub struct SendError {
    pub message: String,
    /// Waiting can help (a refused connection, a timeout); not for an untrusted
    /// certificate: fix the setup.
    pub transient: bool,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Sends requests to one destination over kept-alive connections.
pub struct Client {
    builtin: ureq::Agent,
    /// The ca_file roots, tried when the built-in roots do not trust a server.
    extra: Option<ureq::Agent>,
    use_extra: std::cell::Cell<bool>,
    limits: Limits,
}

const USER_AGENT: &str = concat!("source-aws-billing/", env!("CARGO_PKG_VERSION"));

impl Client {
    /// A client for requests to `url`, honouring the proxy variables for its scheme.
    pub fn new(
        url: &str,
        ca_file: Option<&Path>,
        limits: Limits,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Client, String> {
        let proxy = proxy_for(url, env)?;
        let phase = Phases::of(limits.deadline);
        let agent = |roots: RootCerts| -> ureq::Agent {
            let config = ureq::Agent::config_builder()
                .http_status_as_error(false)
                // The deadline as a budget per phase, not one global timeout: with a global
                // (or per-call) timeout ureq resolves the host in a new thread for every
                // request, which cost a third of the delivery speed.
                .timeout_connect(Some(phase.connect))
                .timeout_send_request(Some(phase.send))
                .timeout_send_body(Some(phase.send))
                .timeout_recv_response(Some(phase.response))
                .timeout_recv_body(Some(phase.body))
                .user_agent(USER_AGENT)
                .max_redirects(0)
                .proxy(proxy.clone())
                .tls_config(TlsConfig::builder().root_certs(roots).build())
                .build();
            ureq::Agent::with_parts(config, connector(), DefaultResolver::default())
        };
        let extra = match ca_file {
            Some(path) => Some(agent(RootCerts::from(read_pem_roots(path)?))),
            None => None,
        };
        Ok(Client {
            builtin: agent(RootCerts::WebPki),
            extra,
            use_extra: std::cell::Cell::new(false),
            limits,
        })
    }

    /// One attempt.
    pub fn send(&self, request: &Request) -> Result<Response, SendError> {
        let Some(extra) = &self.extra else {
            return self.send_with(&self.builtin, request);
        };
        // Trust is the built-in roots or ca_file: try the set that worked last, then the other.
        let pick = |use_extra: bool| if use_extra { extra } else { &self.builtin };
        let last = self.use_extra.get();
        match self.send_with(pick(last), request) {
            Err(e) if !e.transient => {
                let other = self.send_with(pick(!last), request);
                if other.is_ok() {
                    self.use_extra.set(!last);
                }
                other
            }
            result => result,
        }
    }

    fn send_with(&self, agent: &ureq::Agent, request: &Request) -> Result<Response, SendError> {
        let result = match request.method {
            "POST" => {
                let mut builder = agent.post(&request.url);
                for (name, value) in &request.headers {
                    builder = builder.header(name, value);
                }
                builder.send(&request.body[..])
            }
            // `check`'s look at the target: a request without side effects.
            "OPTIONS" => {
                let mut builder = agent.options(&request.url);
                for (name, value) in &request.headers {
                    builder = builder.header(name, value);
                }
                builder.call()
            }
            other => {
                return Err(SendError {
                    message: format!("unsupported method {other}"),
                    transient: false,
                });
            }
        };
        let mut response = result.map_err(|e| describe(&request.url, &e, self.extra.is_some()))?;
        let status = response.status().as_u16();
        let success = (200..300).contains(&status);
        // Only a failure's headers are read (Retry-After, Location); copying them for
        // every accepted event cost more than the rest of reading its answer.
        let headers = match success {
            true => Vec::new(),
            false => response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        };
        // Read up to the cap and one byte more, whatever Content-Length claims: past it,
        // nothing more is read (the connection is then dropped, not reused).
        let cap = if success {
            self.limits.max_body
        } else {
            self.limits.max_error_body
        };
        let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
        let body = read_capped(&mut reader, cap + 1).map_err(|e| {
            let timed_out = e.kind() == std::io::ErrorKind::TimedOut
                || e.get_ref()
                    .and_then(|inner| inner.downcast_ref::<ureq::Error>())
                    .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)));
            let what = if timed_out {
                "timed out reading the answer"
            } else {
                "reading the answer failed"
            };
            SendError {
                message: format!(
                    "{}: {what}: {}",
                    origin(&request.url),
                    crate::log::peer(&e.to_string())
                ),
                transient: true,
            }
        })?;
        let truncated = body.len() as u64 > cap;
        let mut body = body;
        body.truncate(cap as usize);
        Ok(Response {
            status,
            headers,
            body,
            truncated,
        })
    }
}

/// Up to `max` bytes of `reader`, grown by at most 64 KiB at a time (never to twice what
/// was read, as doubling would). The first read goes to the stack: most answers (the
/// target's 2xx) are empty, and then nothing is allocated.
fn read_capped(reader: &mut impl Read, max: u64) -> std::io::Result<Vec<u8>> {
    const STEP: usize = 64 * 1024;
    let mut first = [0u8; 512];
    let want = first.len().min(usize::try_from(max).unwrap_or(usize::MAX));
    let n = loop {
        match reader.read(&mut first[..want]) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            result => break result?,
        }
    };
    let mut body = first[..n].to_vec();
    if n == 0 {
        return Ok(body);
    }
    loop {
        let room = (max - body.len() as u64).min(body.len().clamp(512, STEP) as u64) as usize;
        if room == 0 {
            return Ok(body);
        }
        body.reserve_exact(room);
        let start = body.len();
        body.resize(start + room, 0);
        match reader.read(&mut body[start..]) {
            Ok(0) => {
                body.truncate(start);
                return Ok(body);
            }
            Ok(n) => body.truncate(start + n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => body.truncate(start),
            Err(e) => return Err(e),
        }
    }
}

/// ureq's own chain (a CONNECT proxy or a direct TCP connection, then TLS) with our TCP
/// connections (socket.rs). Socks proxies are refused at start (urls.rs).
fn connector() -> impl Connector {
    ().chain(ConnectProxyConnector::default())
        .chain(crate::socket::Direct)
        .chain(RustlsConnector::default())
}

/// A request's deadline split over its phases (connect incl. TLS, sending, waiting for the
/// status line and headers, reading the body); their sum is the deadline.
#[derive(Debug, PartialEq, Eq)]
struct Phases {
    connect: Duration,
    send: Duration,
    response: Duration,
    body: Duration,
}

impl Phases {
    fn of(deadline: Duration) -> Phases {
        // 1/6 + 2 x 1/12 + 1/3 + 1/3
        Phases {
            connect: deadline / 6,
            send: deadline / 12,
            response: deadline / 3,
            body: deadline / 3,
        }
    }
}

fn read_pem_roots(path: &Path) -> Result<Vec<Certificate<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| {
        format!(
            "ca_file {}: cannot read: {}",
            path.display(),
            crate::files::plain_io(&e)
        )
    })?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(format!(
            "ca_file {}: expected PEM CERTIFICATE blocks, found none",
            path.display()
        ));
    }
    Ok(certs)
}

fn describe(url: &str, e: &ureq::Error, have_ca_file: bool) -> SendError {
    let text = crate::log::peer(&e.to_string());
    let place = origin(url);
    if text.contains("invalid peer certificate") && !text.contains("UnknownIssuer") {
        // Expired, or for another name: no root set can fix that.
        return SendError {
            message: format!("{place}: the server's TLS certificate is not valid ({text})"),
            transient: false,
        };
    }
    if text.contains("UnknownIssuer") {
        let hint = if have_ca_file {
            "neither the built-in roots nor ca_file trust it"
        } else {
            "if a private CA or a TLS-inspecting proxy signs it, set ca_file (or AWS_CA_BUNDLE) to that CA's PEM file"
        };
        return SendError {
            message: format!(
                "{place}: the server's TLS certificate is not trusted ({text}); {hint}"
            ),
            transient: false,
        };
    }
    let message = match e {
        ureq::Error::Timeout(_) => format!("{place}: timed out ({text})"),
        ureq::Error::HostNotFound => format!("{place}: host not found"),
        ureq::Error::ConnectionFailed => format!("{place}: connection failed"),
        ureq::Error::Io(io) => format!("{place}: {}", crate::files::plain_io(io)),
        _ => format!("{place}: {text}"),
    };
    SendError {
        message,
        transient: true,
    }
}

/// The proxy for `url` from HTTPS_PROXY / HTTP_PROXY / ALL_PROXY (either case), unless NO_PROXY matches.
pub fn proxy_for(
    url: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ureq::Proxy>, String> {
    let get = |name: &str| {
        env(&name.to_ascii_lowercase())
            .or_else(|| env(name))
            .filter(|v| !v.trim().is_empty())
    };
    let scheme_var = if url.starts_with("https://") {
        "HTTPS_PROXY"
    } else {
        "HTTP_PROXY"
    };
    let Some((var, value)) = [scheme_var, "ALL_PROXY"]
        .iter()
        .find_map(|v| get(v).map(|x| (*v, x)))
    else {
        return Ok(None);
    };
    if let Some(list) = get("NO_PROXY")
        && no_proxy_matches(&list, url_host(url))
    {
        return Ok(None);
    }
    crate::urls::parse_proxy(var, &value).map(Some)
}

/// NO_PROXY: `*`, exact hosts, and domain suffixes (`example.com` and `.example.com` both match `a.example.com`).
pub fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = entry.trim_start_matches("*.").trim_start_matches('.');
            let entry = match entry.rsplit_once(':') {
                Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => {
                    h
                }
                _ => entry,
            };
            let entry = entry
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase();
            host == entry || host.ends_with(&format!(".{entry}"))
        })
}

/// The config key this module reads: `ca_file`.
pub const KEYS: [&str; 1] = ["ca_file"];

/// The config's `ca_file`, else AWS_CA_BUNDLE; it must be a file.
pub fn ca_file_setting(
    file: &Doc,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<std::path::PathBuf>, ConfigError> {
    let ca_file = match file.string("ca_file")? {
        Some(f) => Some((
            std::path::PathBuf::from(f),
            format!("{}: ca_file", file.name),
        )),
        None => env("AWS_CA_BUNDLE")
            .filter(|f| !f.is_empty())
            .map(|f| (std::path::PathBuf::from(f), "AWS_CA_BUNDLE".to_string())),
    };
    match ca_file {
        Some((path, from)) if !path.is_file() => Err(ConfigError(format!(
            "{from}: {}: no such file; expected a PEM file of CA certificates",
            path.display()
        ))),
        other => Ok(other.map(|(p, _)| p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn proxy_is_chosen_by_scheme_and_no_proxy() {
        let e = env(&[
            ("HTTPS_PROXY", "http://sproxy:3128"),
            ("http_proxy", "http://proxy:8080"),
            ("NO_PROXY", "localhost,.internal,10.0.0.1"),
        ]);
        let host = |url| proxy_for(url, &e).unwrap().map(|p| p.host().to_string());
        assert_eq!(
            host("https://ce.us-east-1.amazonaws.com").as_deref(),
            Some("sproxy")
        );
        assert_eq!(host("http://broker:8080/x").as_deref(), Some("proxy"));
        assert_eq!(host("http://localhost:8080"), None);
        assert_eq!(host("http://gw.internal/"), None);
        assert_eq!(host("http://10.0.0.1:80"), None);
        assert_eq!(
            proxy_for("http://x", &env(&[]))
                .unwrap()
                .map(|p| p.host().to_string()),
            None
        );
        assert_eq!(
            proxy_for("http://x", &env(&[("ALL_PROXY", "http://all:1")]))
                .unwrap()
                .unwrap()
                .host(),
            "all"
        );
    }

    #[test]
    fn no_proxy_forms() {
        assert!(no_proxy_matches("*", "anything"));
        assert!(no_proxy_matches("example.com", "a.example.com"));
        assert!(no_proxy_matches(" .example.com ", "example.com"));
        assert!(no_proxy_matches("127.0.0.1:8080", "127.0.0.1"));
        assert!(no_proxy_matches("[::1]", "::1"));
        assert!(!no_proxy_matches("example.com", "badexample.com"));
        assert!(!no_proxy_matches("", "example.com"));
    }

    #[test]
    fn reading_stops_at_the_cap_whatever_comes() {
        let mut endless = std::io::repeat(b'x');
        let body = read_capped(&mut endless, 200_001).unwrap();
        assert_eq!(body.len(), 200_001);
        assert!(body.capacity() < 200_001 + 64 * 1024, "{}", body.capacity());
        let body = read_capped(&mut &b"short"[..], 1000).unwrap();
        assert_eq!(body, b"short");
    }

    /// A peer that answers every request with `head` and then one byte of `drip` every
    /// 100 ms, for up to a minute.
    fn dripping_peer(head: &'static str, drip: &'static [u8]) -> String {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                        line.clear();
                    }
                    let mut stream = stream;
                    let _ = stream.write_all(head.as_bytes());
                    for byte in drip.iter().cycle().take(600) {
                        std::thread::sleep(Duration::from_millis(100)); // the drip's pace
                        if stream.write_all(&[*byte]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        url
    }

    #[test]
    fn a_dripping_peer_is_cut_off_at_the_deadline() {
        let limits = Limits {
            deadline: Duration::from_millis(1200),
            max_body: 1024 * 1024,
            max_error_body: 1024,
        };
        for (head, drip) in [
            // Headers one byte at a time, never the blank line that ends them.
            ("HTTP/1.1 200 OK\r\n", &b"X-Drip: 1\r\n"[..]),
            // The body one byte at a time, a claimed megabyte.
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n",
                &b"{"[..],
            ),
        ] {
            let url = dripping_peer(head, drip);
            let client = Client::new(&url, None, limits, &|_| None).unwrap();
            let request = Request {
                method: "POST",
                url,
                headers: vec![],
                body: b"{}".to_vec(),
            };
            let e = client.send(&request).unwrap_err();
            assert!(
                e.message.contains("timed out") && e.transient,
                "{head:?}: {e}"
            );
        }
    }

    #[test]
    fn the_phases_add_up_to_the_deadline() {
        for secs in [30, 60] {
            let d = Duration::from_secs(secs);
            let p = Phases::of(d);
            assert_eq!(p.connect + p.send * 2 + p.response + p.body, d);
        }
    }
}
