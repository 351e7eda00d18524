//! TLS for the fakes: a private CA and a 127.0.0.1/localhost server certificate made with the openssl CLI, and a rustls front that terminates TLS and relays the plaintext to a plain fake.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};

/// A CA and a server certificate it signed, as PEM files in one directory.
pub struct Pki {
    /// The CA certificate: what `ca_file` / `AWS_CA_BUNDLE` point at.
    pub ca_pem: PathBuf,
    /// The server certificate (SAN IP:127.0.0.1, DNS:localhost), signed by the CA.
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .env_remove("OPENSSL_CONF")
        .output()
        .unwrap_or_else(|e| panic!("run openssl (needed to make test certificates): {e}"));
    assert!(
        out.status.success(),
        "openssl {}: {}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// Make a fresh CA (P-256, 2 days) and a server certificate for 127.0.0.1 and localhost in `dir`.
    pub fn generate(dir: &Path, ca_name: &str) -> Pki {
        std::fs::create_dir_all(dir).expect("create pki dir");
        let write = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text).expect("write openssl input");
        };
        write(
            "ca.cnf",
            &format!(
                "[req]\ndistinguished_name = dn\nx509_extensions = v3_ca\nprompt = no\n\
                 [dn]\nCN = {ca_name}\n\
                 [v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
                 subjectKeyIdentifier = hash\n"
            ),
        );
        write(
            "server.cnf",
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = localhost\n",
        );
        write(
            "server.ext",
            "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
             extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n",
        );
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509", "-config", "ca.cnf", "-days", "2"];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
        openssl(dir, &ca);
        let mut csr = vec!["req", "-new", "-config", "server.cnf"];
        csr.extend(ec);
        csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
        openssl(dir, &csr);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "4660",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        );
        Pki {
            ca_pem: dir.join("ca.pem"),
            cert_pem: dir.join("server.pem"),
            key_pem: dir.join("server.key"),
        }
    }

    fn server_config(&self) -> Arc<ServerConfig> {
        self.server_config_with(rustls::DEFAULT_VERSIONS)
    }

    fn server_config_with(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ServerConfig> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert_pem)
            .expect("open server.pem")
            .collect::<Result<_, _>>()
            .expect("parse server.pem");
        let key = PrivateKeyDer::from_pem_file(&self.key_pem).expect("parse server.key");
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .expect("protocol versions")
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .expect("server certificate and key");
        Arc::new(config)
    }
}

#[derive(Default)]
struct Shared {
    handshakes: AtomicUsize,
    errors: Mutex<Vec<String>>,
}

/// Listens on 127.0.0.1 with TLS and relays each connection's plaintext to `backend`.
pub struct TlsFront {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl TlsFront {
    pub fn start(pki: &Pki, backend: SocketAddr) -> TlsFront {
        TlsFront::serve(pki.server_config(), backend)
    }

    /// A front that speaks TLS 1.2 only.
    #[allow(dead_code)] // tests/scratch.rs
    pub fn start_tls12(pki: &Pki, backend: SocketAddr) -> TlsFront {
        TlsFront::serve(pki.server_config_with(&[&rustls::version::TLS12]), backend)
    }

    fn serve(config: Arc<ServerConfig>, backend: SocketAddr) -> TlsFront {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind TLS front");
        let addr = listener.local_addr().expect("TLS front address");
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (accept_shared, accept_stop) = (Arc::clone(&shared), Arc::clone(&stop));
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (config, shared) = (Arc::clone(&config), Arc::clone(&accept_shared));
                thread::spawn(move || {
                    if let Err(e) = relay(stream, config, backend, &shared) {
                        shared
                            .errors
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(e);
                    }
                });
            }
        });
        TlsFront {
            addr,
            shared,
            stop,
            accept: Some(accept),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// TLS handshakes completed.
    pub fn handshakes(&self) -> usize {
        self.shared.handshakes.load(Ordering::SeqCst)
    }

    /// Connections that ended in a TLS error or were dropped by the client mid-handshake.
    pub fn errors(&self) -> Vec<String> {
        self.shared
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

type Tls = Arc<Mutex<(ServerConnection, TcpStream)>>;

/// Send whatever TLS records rustls has queued.
fn flush_tls(conn: &mut ServerConnection, socket: &mut TcpStream) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(socket)?;
    }
    socket.flush()
}

/// One client connection: TLS in from the client, plaintext to and from the backend.
fn relay(
    client: TcpStream,
    config: Arc<ServerConfig>,
    backend: SocketAddr,
    shared: &Shared,
) -> Result<(), String> {
    let conn = ServerConnection::new(config).map_err(|e| e.to_string())?;
    let mut incoming = client.try_clone().map_err(|e| e.to_string())?;
    let tls: Tls = Arc::new(Mutex::new((conn, client)));
    let mut upstream: Option<(TcpStream, JoinHandle<()>)> = None;
    let mut buffer = vec![0u8; 16 * 1024];
    let mut was_handshaking = true;
    loop {
        let n = match incoming.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut plaintext = Vec::new();
        let mut peer_closed = false;
        {
            let mut guard = tls.lock().unwrap_or_else(|p| p.into_inner());
            let (conn, socket) = &mut *guard;
            let mut records = &buffer[..n];
            while !records.is_empty() {
                conn.read_tls(&mut records).map_err(|e| e.to_string())?;
                if let Err(e) = conn.process_new_packets() {
                    let _ = flush_tls(conn, socket);
                    return Err(format!("TLS: {e}"));
                }
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    match conn.reader().read(&mut chunk) {
                        Ok(0) => {
                            peer_closed = true;
                            break;
                        }
                        Ok(k) => plaintext.extend_from_slice(&chunk[..k]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e.to_string()),
                    }
                }
            }
            if was_handshaking && !conn.is_handshaking() {
                was_handshaking = false;
                shared.handshakes.fetch_add(1, Ordering::SeqCst);
            }
            flush_tls(conn, socket).map_err(|e| e.to_string())?;
        }
        if !plaintext.is_empty() {
            if upstream.is_none() {
                let stream = TcpStream::connect(backend).map_err(|e| e.to_string())?;
                let reader = stream.try_clone().map_err(|e| e.to_string())?;
                let back = thread::spawn({
                    let tls = Arc::clone(&tls);
                    move || answer(reader, &tls)
                });
                upstream = Some((stream, back));
            }
            if let Some((stream, _)) = upstream.as_mut() {
                stream.write_all(&plaintext).map_err(|e| e.to_string())?;
            }
        }
        if peer_closed {
            break;
        }
    }
    if let Some((stream, back)) = upstream {
        let _ = stream.shutdown(Shutdown::Write);
        let _ = back.join();
    }
    if was_handshaking {
        // What a client that refuses the certificate does (rustls queues an alert, ureq drops it).
        return Err("the client closed the connection during the TLS handshake".to_string());
    }
    Ok(())
}

/// Backend answers back to the client, encrypted; close_notify when the backend closes.
fn answer(mut backend: TcpStream, tls: &Tls) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = backend.read(&mut buffer).unwrap_or(0);
        let mut guard = tls.lock().unwrap_or_else(|p| p.into_inner());
        let (conn, socket) = &mut *guard;
        if n == 0 {
            conn.send_close_notify();
            let _ = flush_tls(conn, socket);
            let _ = socket.shutdown(Shutdown::Write);
            return;
        }
        if conn.writer().write_all(&buffer[..n]).is_err() || flush_tls(conn, socket).is_err() {
            return;
        }
    }
}
