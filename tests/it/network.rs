//! Networks that are not the open internet: HTTP(S)_PROXY / NO_PROXY route both Cost Explorer and the target through a loopback proxy, and a private CA is trusted only through ca_file or AWS_CA_BUNDLE.

use std::collections::BTreeSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::support;
use crate::support::sorted_lines;
use crate::support::tls::{Pki, TlsFront};
use crate::support::{Cmd, FakeCostExplorer, FakeReceiver, Finished, Sandbox};

const DAY: &str = "2022-06-13";
const DAY_END: &str = "2022-06-14";
const WITHIN: Duration = Duration::from_secs(60);
const GROUPS: usize = 4;

// ---------------------------------------------------------------------------------------------
// A loopback forward proxy: CONNECT tunnels and absolute-form http:// requests, recorded.

/// One proxied connection: how it was asked for and every byte the client sent on through it.
#[derive(Clone)]
struct Seen {
    /// `CONNECT` or the forwarded method.
    method: String,
    /// `host:port` the proxy connected to.
    authority: String,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl Seen {
    fn port(&self) -> Option<u16> {
        self.authority.rsplit_once(':')?.1.parse().ok()
    }

    fn sent_text(&self) -> String {
        String::from_utf8_lossy(&self.sent.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

struct Proxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (accept_seen, accept_stop) = (Arc::clone(&seen), Arc::clone(&stop));
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let seen = Arc::clone(&accept_seen);
                thread::spawn(move || {
                    let _ = proxy_connection(stream, &seen);
                });
            }
        });
        Proxy {
            addr,
            seen,
            stop,
            accept: Some(accept),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Everything the client sent through the proxy towards this port.
    fn sent_to(&self, port: u16) -> String {
        self.seen()
            .iter()
            .filter(|s| s.port() == Some(port))
            .map(Seen::sent_text)
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// The request line and header lines of one request (without the blank line).
fn read_head(reader: &mut impl BufRead) -> io::Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            return Ok(lines);
        }
        lines.push(line);
    }
}

/// Only loopback destinations: the tests talk to nothing else.
fn loopback(authority: &str) -> bool {
    authority.starts_with("127.0.0.1:") || authority.starts_with("localhost:")
}

fn proxy_connection(client: TcpStream, seen: &Mutex<Vec<Seen>>) -> io::Result<()> {
    let mut to_client = client.try_clone()?;
    let mut reader = BufReader::new(client);
    let head = read_head(&mut reader)?;
    let mut words = head[0].split(' ');
    let (method, target) = (
        words.next().unwrap_or("").to_string(),
        words.next().unwrap_or("").to_string(),
    );
    let sent = Arc::new(Mutex::new(Vec::new()));
    if method == "CONNECT" {
        if !loopback(&target) {
            return to_client.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
        }
        let upstream = match TcpStream::connect(&target) {
            Ok(s) => s,
            Err(_) => {
                return to_client
                    .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
            }
        };
        seen.lock().unwrap_or_else(|p| p.into_inner()).push(Seen {
            method,
            authority: target,
            sent: Arc::clone(&sent),
        });
        to_client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        let mut from_upstream = upstream.try_clone()?;
        let back = thread::spawn(move || {
            let _ = io::copy(&mut from_upstream, &mut to_client);
            let _ = to_client.shutdown(Shutdown::Write);
        });
        let mut to_upstream = upstream;
        let mut buffer = [0u8; 16 * 1024];
        loop {
            // The BufReader may already hold bytes sent right after the CONNECT head.
            let n = match reader.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            sent.lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(&buffer[..n]);
            if to_upstream.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = to_upstream.shutdown(Shutdown::Write);
        let _ = back.join();
        return Ok(());
    }
    // Absolute form: METHOD http://host:port/path HTTP/1.1, one request per connection.
    let Some(rest) = target.strip_prefix("http://") else {
        return to_client.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    };
    if !loopback(&authority) {
        return to_client.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    }
    let mut length = 0;
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    for line in &head[1..] {
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if name == "content-length" {
            length = line
                .split(':')
                .nth(1)
                .unwrap_or("")
                .trim()
                .parse()
                .unwrap_or(0);
        }
        if name != "connection" && name != "proxy-connection" && name != "proxy-authorization" {
            request.push_str(line);
            request.push_str("\r\n");
        }
    }
    request.push_str("Connection: close\r\n\r\n");
    let mut bytes = request.into_bytes();
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    bytes.extend_from_slice(&body);
    sent.lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend_from_slice(&bytes);
    seen.lock().unwrap_or_else(|p| p.into_inner()).push(Seen {
        method,
        authority: authority.clone(),
        sent,
    });
    let mut upstream = TcpStream::connect(&authority)?;
    upstream.write_all(&bytes)?;
    io::copy(&mut upstream, &mut to_client)?;
    to_client.shutdown(Shutdown::Write)
}

// ---------------------------------------------------------------------------------------------

fn port_of(url: &str) -> u16 {
    url.trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

fn addr_of(url: &str) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port_of(url)))
}

/// Every generated line for DAY arrived, once each.
fn assert_all_delivered(ce: &FakeCostExplorer, receiver: &FakeReceiver, run: &Finished) {
    let mut want = ce.expected_lines(DAY, DAY_END);
    want.sort();
    assert_eq!(want.len(), GROUPS);
    assert_eq!(sorted_lines(receiver), want, "{}", run.describe());
    assert_eq!(receiver.request_count(), GROUPS, "{}", run.describe());
}

/// `once --date DAY` with these environment variables added.
fn once(
    sandbox: &Sandbox,
    endpoint: &str,
    target: &str,
    extra: &str,
    env: &[(&str, &str)],
) -> Finished {
    let mut cmd: Cmd = sandbox
        .cmd(endpoint, target, extra)
        .args(["once", "--date", DAY]);
    for (name, value) in env {
        cmd = cmd.env(name, value);
    }
    cmd.run(WITHIN)
}

/// The ids of the events that went through the proxy towards the receiver (binary mode: `ce-id:` headers).
fn proxied_event_ids(sent: &str) -> BTreeSet<String> {
    sent.lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("ce-id")
                .then(|| value.trim().to_string())
        })
        .collect()
}

fn assert_went_through(
    proxy: &Proxy,
    ce: &FakeCostExplorer,
    receiver: &FakeReceiver,
    run: &Finished,
) {
    let to_ce = proxy.sent_to(port_of(&ce.url())).to_ascii_lowercase();
    assert!(
        to_ce.contains("x-amz-target: awsinsightsindexservice.getcostandusage")
            && to_ce.contains("authorization: aws4-hmac-sha256"),
        "the proxy did not carry the signed Cost Explorer call: {:?}\n{}",
        to_ce,
        run.describe()
    );
    let received: BTreeSet<String> = receiver.all_events().into_iter().map(|e| e.id).collect();
    assert_eq!(received.len(), GROUPS);
    assert_eq!(
        proxied_event_ids(&proxy.sent_to(receiver.port())),
        received,
        "every event the receiver got came through the proxy\n{}",
        run.describe()
    );
}

#[test]
fn http_proxy_carries_the_cost_explorer_call_and_every_event() {
    let (ce, receiver, proxy) = (
        FakeCostExplorer::with_groups(GROUPS, 100),
        FakeReceiver::start(),
        Proxy::start(),
    );
    let sandbox = Sandbox::new("proxy-upper");
    // A NO_PROXY that does not match 127.0.0.1 changes nothing.
    let run = once(
        &sandbox,
        &ce.url(),
        &receiver.url(),
        "",
        &[
            ("HTTP_PROXY", &proxy.url()),
            ("NO_PROXY", "example.com,.internal,localhost"),
        ],
    );
    run.assert_code(0);
    ce.assert_no_violations();
    assert_all_delivered(&ce, &receiver, &run);
    assert_went_through(&proxy, &ce, &receiver, &run);
}

#[test]
fn lower_case_http_proxy_is_honoured_too() {
    let (ce, receiver, proxy) = (
        FakeCostExplorer::with_groups(GROUPS, 100),
        FakeReceiver::start(),
        Proxy::start(),
    );
    let sandbox = Sandbox::new("proxy-lower");
    let run = once(
        &sandbox,
        &ce.url(),
        &receiver.url(),
        "",
        &[("http_proxy", &proxy.url())],
    );
    run.assert_code(0);
    assert_all_delivered(&ce, &receiver, &run);
    assert_went_through(&proxy, &ce, &receiver, &run);
}

#[test]
fn no_proxy_bypasses_the_proxy_and_https_proxy_is_not_used_for_http() {
    for (tag, env) in [
        ("no-proxy", [("HTTP_PROXY", "P"), ("NO_PROXY", "127.0.0.1")]),
        (
            "no-proxy-lower",
            [("http_proxy", "P"), ("no_proxy", "example.com, 127.0.0.1")],
        ),
        ("https-only", [("HTTPS_PROXY", "P"), ("NO_PROXY", "")]),
    ] {
        let (ce, receiver, proxy) = (
            FakeCostExplorer::with_groups(GROUPS, 100),
            FakeReceiver::start(),
            Proxy::start(),
        );
        let url = proxy.url();
        let env: Vec<(&str, &str)> = env
            .iter()
            .map(|(k, v)| (*k, if *v == "P" { url.as_str() } else { *v }))
            .collect();
        let sandbox = Sandbox::new(tag);
        let run = once(&sandbox, &ce.url(), &receiver.url(), "", &env);
        run.assert_code(0);
        assert_all_delivered(&ce, &receiver, &run);
        assert_eq!(
            proxy.seen().len(),
            0,
            "{tag}: {env:?} must not go through the proxy\n{}",
            run.describe()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A private CA.

/// Cost Explorer and the receiver behind TLS with a certificate from a CA made here.
struct TlsWorld {
    sandbox: Sandbox,
    pki: Pki,
    ce: FakeCostExplorer,
    receiver: FakeReceiver,
    ce_tls: TlsFront,
    receiver_tls: TlsFront,
}

impl TlsWorld {
    fn new(tag: &str) -> TlsWorld {
        let sandbox = Sandbox::new(tag);
        let pki = Pki::generate(&sandbox.path("pki"), "source-aws-billing test CA");
        let ce = FakeCostExplorer::with_groups(GROUPS, 100);
        let receiver = FakeReceiver::start();
        let ce_tls = TlsFront::start(&pki, addr_of(&ce.url()));
        let receiver_tls = TlsFront::start(&pki, addr_of(&receiver.url()));
        TlsWorld {
            sandbox,
            pki,
            ce,
            receiver,
            ce_tls,
            receiver_tls,
        }
    }

    fn once(&self, extra: &str, env: &[(&str, &str)]) -> Finished {
        once(
            &self.sandbox,
            &self.ce_tls.url(),
            &format!("{}/", self.receiver_tls.url()),
            extra,
            env,
        )
    }

    fn ca_file(&self) -> String {
        format!("ca_file: \"{}\"\n", self.pki.ca_pem.display())
    }
}

/// The run failed because the certificate was not trusted, and said so in one line naming ca_file.
fn assert_untrusted(world: &TlsWorld, run: &Finished, hint: &str) {
    run.assert_code(1);
    let lines = run.stderr_lines_with(&["error", "not trusted", "ca_file"]);
    assert!(
        !lines.is_empty(),
        "expected an error saying the certificate is not trusted and naming ca_file\n{}",
        run.describe()
    );
    assert!(
        lines.iter().any(|l| l.contains(hint)),
        "expected {hint:?}\n{}",
        run.describe()
    );
    assert!(
        lines.iter().any(|l| l.contains(&world.ce_tls.url())),
        "names the endpoint\n{}",
        run.describe()
    );
    assert_eq!(
        world.ce.request_count(),
        0,
        "nothing was sent over an untrusted connection"
    );
    assert_eq!(world.receiver.request_count(), 0);
    assert_eq!(world.ce_tls.handshakes(), 0);
    assert!(
        run.stderr_lines_with(&["retrying"]).is_empty(),
        "waiting cannot make a certificate trusted: no retries\n{}",
        run.describe()
    );
    let rejected = || !world.ce_tls.errors().is_empty();
    assert!(
        support::wait_until(Duration::from_secs(10), rejected),
        "the client rejected the server's certificate during the handshake"
    );
}

#[test]
fn ca_file_trusts_a_private_ca_for_cost_explorer_and_the_target() {
    let world = TlsWorld::new("tls-ca-file");
    let run = world.once(&world.ca_file(), &[]);
    run.assert_code(0);
    world.ce.assert_no_violations();
    assert_all_delivered(&world.ce, &world.receiver, &run);
    assert!(world.ce_tls.handshakes() >= 1 && world.receiver_tls.handshakes() >= 1);
}

#[test]
fn aws_ca_bundle_is_the_env_form_of_ca_file() {
    let world = TlsWorld::new("tls-bundle");
    let bundle = world.pki.ca_pem.display().to_string();
    let run = world.once("", &[("AWS_CA_BUNDLE", &bundle)]);
    run.assert_code(0);
    assert_all_delivered(&world.ce, &world.receiver, &run);
}

#[test]
fn without_ca_file_a_private_ca_is_not_trusted_and_the_error_names_ca_file() {
    let world = TlsWorld::new("tls-untrusted");
    let run = world.once("", &[]);
    assert_untrusted(&world, &run, "set ca_file (or AWS_CA_BUNDLE)");
}

#[test]
fn a_ca_file_of_another_ca_does_not_make_the_server_trusted() {
    let world = TlsWorld::new("tls-wrong-ca");
    let other = Pki::generate(&world.sandbox.path("other"), "some other CA");
    let run = world.once(&format!("ca_file: \"{}\"\n", other.ca_pem.display()), &[]);
    assert_untrusted(
        &world,
        &run,
        "neither the built-in roots nor ca_file trust it",
    );
}

#[test]
fn verification_cannot_be_switched_off_by_config() {
    let world = TlsWorld::new("tls-insecure");
    let keys = [
        "insecure",
        "tls_verify",
        "verify_ssl",
        "skip_tls_verify",
        "insecure_skip_verify",
    ];
    let extra: String = keys
        .iter()
        .map(|k| {
            format!(
                "{k}: {}\n",
                if k.contains("verify") && !k.contains("skip") {
                    "false"
                } else {
                    "true"
                }
            )
        })
        .collect();
    let run = world.once(&extra, &[]);
    for key in keys {
        assert!(
            !run.stderr_lines_with(&["warn", &format!("\"{key}\"")])
                .is_empty(),
            "{key} is warned as an unknown key\n{}",
            run.describe()
        );
    }
    assert_untrusted(&world, &run, "set ca_file");
}

#[test]
fn https_proxy_tunnels_to_a_tls_endpoint_without_seeing_inside() {
    let world = TlsWorld::new("tls-proxy");
    let proxy = Proxy::start();
    let run = world.once(&world.ca_file(), &[("HTTPS_PROXY", &proxy.url())]);
    run.assert_code(0);
    assert_all_delivered(&world.ce, &world.receiver, &run);
    let tunnels: Vec<Seen> = proxy.seen();
    for port in [world.ce_tls.port(), world.receiver_tls.port()] {
        assert!(
            tunnels
                .iter()
                .any(|s| s.method == "CONNECT" && s.port() == Some(port)),
            "a CONNECT tunnel to {port}\n{}",
            run.describe()
        );
        let sent = proxy.sent_to(port);
        assert!(!sent.is_empty());
        assert!(
            !sent.to_ascii_lowercase().contains("x-amz-target") && !sent.contains("ce-id"),
            "the tunnel carries TLS, not plaintext"
        );
    }
}

#[test]
fn the_test_proxy_also_forwards_absolute_form_requests() {
    // ureq 3 tunnels http:// through CONNECT too; this keeps the proxy's other form honest
    // should the client ever send `POST http://host/path` instead.
    let (receiver, proxy) = (FakeReceiver::start(), Proxy::start());
    let mut stream = TcpStream::connect(proxy.addr).expect("connect to the proxy");
    let port = receiver.port();
    write!(
        stream,
        "POST http://127.0.0.1:{port}/x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Proxy-Connection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    assert!(answer.starts_with("HTTP/1.1 2"), "{answer}");
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].request.target, "/x");
    assert_eq!(received[0].request.body, b"{}");
    assert!(received[0].request.header("proxy-connection").is_none());
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].port()),
        ("POST", Some(port))
    );
}
