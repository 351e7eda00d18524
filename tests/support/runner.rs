//! Runs the built binary in a scratch directory with a scrubbed environment and a deadline, capturing its output.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{SECRET_ACCESS_KEY, SESSION_TOKEN, wait_until};

/// The binary under test.
pub fn binary() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_source-aws-billing") {
        Some(path) => PathBuf::from(path),
        None => [
            env!("CARGO_MANIFEST_DIR"),
            "target",
            "debug",
            "source-aws-billing",
        ]
        .iter()
        .collect(),
    }
}

/// A fresh directory under the system temp dir, removed on drop (kept if KEEP_TEST_DIRS is set).
/// (Set SHOW_RUNS to print every run's command, status and output.)
pub struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    pub fn new(tag: &str) -> Sandbox {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let root = std::env::temp_dir().join(format!(
            "sab-{tag}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&root).expect("create sandbox dir");
        let sandbox = Sandbox { root };
        std::fs::create_dir_all(sandbox.state_dir()).expect("create state dir");
        sandbox
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// The state_dir every config written here uses (created empty).
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    pub fn write(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.path(relative);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// config.yml for this endpoint and target, with state_dir here and a 1 s backoff cap.
    pub fn write_config(&self, endpoint: &str, target: &str, extra: &str) -> PathBuf {
        self.write(
            "config.yml",
            &config_yaml(endpoint, target, &self.state_dir(), extra),
        )
    }

    /// secret.yml with the standard fake credentials.
    pub fn write_secret(&self) -> PathBuf {
        self.write("secret.yml", &secret_yaml())
    }

    /// The binary with `--config` and `--secret` pointing at files written here.
    pub fn cmd(&self, endpoint: &str, target: &str, extra: &str) -> Cmd {
        let config = self.write_config(endpoint, target, extra);
        let secret = self.write_secret();
        Cmd::new().config(&config).secret(&secret)
    }

    /// Every regular file under state_dir, with its contents, sorted by path.
    pub fn state_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        collect_files(&self.state_dir(), &mut files);
        files.sort();
        files
    }

    /// The state files without the records every run leaves of itself (the request ledger,
    /// the last pull): what a preview must not change.
    pub fn delivery_state(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let record = |p: &Path| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("ce-requests.") || name == "last-pull.json"
        };
        let mut files = self.state_files();
        files.retain(|(p, _)| !record(p));
        files
    }
}

fn collect_files(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// The standard test config (backoff capped at 1 s unless `extra` sets it); `extra` is appended as more YAML lines.
pub fn config_yaml(endpoint: &str, target: &str, state_dir: &Path, extra: &str) -> String {
    let backoff = if extra.contains("retry_max_backoff_s") {
        ""
    } else {
        "retry_max_backoff_s: 1\n"
    };
    format!(
        "target: \"{target}\"\nendpoint: \"{endpoint}\"\nregion: us-east-1\nstate_dir: \"{}\"\n{backoff}{extra}",
        state_dir.display()
    )
}

pub fn secret_yaml() -> String {
    format!(
        "access_key_id: \"{}\"\nsecret_access_key: \"{SECRET_ACCESS_KEY}\"\n",
        super::ACCESS_KEY_ID
    )
}

/// Environment variables that must not leak from the host into a run.
fn scrubbed(name: &str) -> bool {
    name.starts_with("AWS_")
        || name.starts_with("CONNECTOR_")
        || name == "LOG_LEVEL"
        || name.eq_ignore_ascii_case("http_proxy")
        || name.eq_ignore_ascii_case("https_proxy")
        || name.eq_ignore_ascii_case("all_proxy")
        || name.eq_ignore_ascii_case("no_proxy")
}

/// A command line for the binary (optionally behind a wrapper such as `unshare`).
pub struct Cmd {
    wrapper: Vec<OsString>,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    fsize_limit: Option<u64>,
}

impl Default for Cmd {
    fn default() -> Cmd {
        Cmd::new()
    }
}

impl Cmd {
    pub fn new() -> Cmd {
        Cmd {
            wrapper: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            fsize_limit: None,
        }
    }

    /// Run the binary as the last argument of this wrapper command.
    pub fn wrapped_in(mut self, wrapper: &[&str]) -> Cmd {
        self.wrapper = wrapper.iter().map(OsString::from).collect();
        self
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Cmd {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn config(self, path: &Path) -> Cmd {
        self.arg("--config").arg(path)
    }

    pub fn secret(self, path: &Path) -> Cmd {
        self.arg("--secret").arg(path)
    }

    pub fn env(mut self, name: &str, value: &str) -> Cmd {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// RLIMIT_FSIZE for the child, with SIGXFSZ ignored so writes fail with EFBIG.
    pub fn file_size_limit(mut self, bytes: u64) -> Cmd {
        self.fsize_limit = Some(bytes);
        self
    }

    fn describe(&self) -> String {
        let mut words: Vec<String> = self
            .wrapper
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        words.push(binary().display().to_string());
        words.extend(self.args.iter().map(|a| a.to_string_lossy().into_owned()));
        words.join(" ")
    }

    pub fn spawn(self) -> Running {
        let description = self.describe();
        let mut command = match self.wrapper.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(binary());
                command
            }
            None => Command::new(binary()),
        };
        command.args(&self.args);
        for (name, _) in std::env::vars_os() {
            if scrubbed(&name.to_string_lossy()) {
                command.env_remove(&name);
            }
        }
        // No test reaches a real metadata service or the tester's ~/.aws (a test may override).
        command.env("AWS_EC2_METADATA_DISABLED", "true");
        command.env("AWS_CONFIG_FILE", "/nonexistent/aws/config");
        command.env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws/credentials",
        );
        for (name, value) in &self.env {
            command.env(name, value);
        }
        if let Some(limit) = self.fsize_limit {
            // SAFETY: only async-signal-safe calls (signal, setrlimit) between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    let rlimit = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {description}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            pump(
                child.stdout.take().expect("stdout pipe"),
                Arc::clone(&stdout),
            ),
            pump(
                child.stderr.take().expect("stderr pipe"),
                Arc::clone(&stderr),
            ),
        ];
        Running {
            child,
            stdout,
            stderr,
            readers,
            started: Instant::now(),
            description,
            status: None,
        }
    }

    /// Spawn and wait for exit; panics (killing it) if it runs past `within`.
    pub fn run(self, within: Duration) -> Finished {
        self.spawn().wait(within)
    }
}

fn pump(mut pipe: impl Read + Send + 'static, sink: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        loop {
            match pipe.read(&mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(n) => sink
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buffer[..n]),
            }
        }
    })
}

/// A spawned binary; killed on drop if still running.
pub struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    started: Instant,
    description: String,
    status: Option<ExitStatus>,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Output so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Log output so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Wait until stderr contains `needle` (case-insensitive).
    pub fn wait_for_stderr(&self, needle: &str, within: Duration) -> bool {
        let needle = needle.to_ascii_lowercase();
        wait_until(within, || {
            self.stderr().to_ascii_lowercase().contains(&needle)
        })
    }

    pub fn signal(&self, signal: i32) {
        signal_pid(self.pid(), signal);
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
    }

    /// Has it exited? (Non-blocking.)
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Wait for exit up to `within`; `None` if still running.
    pub fn wait_for_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait for exit; if it is still running after `within`, kill it and panic with its output.
    pub fn wait(mut self, within: Duration) -> Finished {
        if self.wait_for_exit(within).is_none() {
            self.kill9();
            let _ = self.wait_for_exit(Duration::from_secs(5));
            let finished = self.finish();
            panic!(
                "still running after {within:?}, killed it\n{}",
                finished.describe()
            );
        }
        self.finish()
    }

    /// Collect the output of a process that has exited (kills it first if not).
    pub fn finish(mut self) -> Finished {
        if self.exited().is_none() {
            self.kill9();
        }
        let status = self.child.wait().expect("wait for child");
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let finished = Finished {
            status,
            code: status.code(),
            signal: status.signal(),
            stdout: self.stdout(),
            stderr: self.stderr(),
            elapsed: self.started.elapsed(),
            description: self.description.clone(),
        };
        if std::env::var_os("SHOW_RUNS").is_some() {
            eprintln!("{}", finished.describe());
        }
        finished.assert_no_secrets();
        finished.assert_no_panic();
        finished
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.status.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// SIGTERM, then expect exit 0 within 2 s.
pub fn stop(mut running: Running) -> Finished {
    running.signal(libc::SIGTERM);
    let status = running.wait_for_exit(Duration::from_secs(2));
    let finished = running.finish();
    assert!(
        status.is_some(),
        "did not exit within 2 s of SIGTERM\n{}",
        finished.describe()
    );
    finished.assert_code(0);
    finished
}

pub fn signal_pid(pid: u32, signal: i32) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) with a pid we spawned (or its child) and a valid signal number.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}

/// Child processes of `pid`, from /proc.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return children;
    };
    for entry in entries.flatten() {
        let Some(candidate) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{candidate}/stat")) else {
            continue;
        };
        // Fields after the last ')' are: state ppid ...
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if parent == Some(pid) {
            children.push(candidate);
        }
    }
    children
}

/// A finished run. Creating one asserts the secrets never appeared and nothing panicked.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub description: String,
}

impl Finished {
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nstatus: {:?} after {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n---",
            self.description, self.status, self.elapsed, self.stdout, self.stderr
        )
    }

    /// Panic with the whole run unless it exited with `code`.
    pub fn assert_code(&self, code: i32) -> &Finished {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit code {code}\n{}",
            self.describe()
        );
        self
    }

    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    /// stderr lines that contain every one of `needles` (case-insensitive).
    pub fn stderr_lines_with(&self, needles: &[&str]) -> Vec<&str> {
        self.stderr_lines()
            .into_iter()
            .filter(|line| {
                let lower = line.to_ascii_lowercase();
                needles
                    .iter()
                    .all(|n| lower.contains(&n.to_ascii_lowercase()))
            })
            .collect()
    }

    fn assert_no_secrets(&self) {
        for secret in [SECRET_ACCESS_KEY, SESSION_TOKEN, "DoNotPrint"] {
            assert!(
                !self.stdout.contains(secret) && !self.stderr.contains(secret),
                "a secret ({secret:?}) appeared in the output\n{}",
                self.describe()
            );
        }
    }

    fn assert_no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked at") && self.signal != Some(libc::SIGABRT),
            "the binary panicked\n{}",
            self.describe()
        );
    }
}
