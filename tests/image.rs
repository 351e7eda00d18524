//! The real image, built and run here: `make image` gives the multi-arch OCI archive; podman runs the amd64 image with the seed's mounts and a volume, the archive holds only the binaries and /vance/data with the right config, and the arm64 binary taken out of the arm64 image delivers every event under qemu over HTTP and TLS.
//!
//! Needs root and buildah, skopeo, umoci, podman, runc, qemu-aarch64-static and openssl
//! (`.ci/run` installs them). Where they are missing the tests say so and pass, except
//! under `CI=true`, where a missing tool is a failure: CI must really run them.
//!
//! Podman as root on this kind of machine (a VM or container without systemd, without
//! CAP_SYS_RESOURCE, with hybrid cgroups) needs, on top of the private storage below:
//! - `--runtime runc`: crun refuses this host's hybrid cgroup v1/v2 layout, even with
//!   `--cgroups=disabled` ("cgroups in hybrid mode not supported"); runc works;
//! - `--cgroup-manager cgroupfs`: there is no systemd to ask for a scope (podman falls back
//!   to cgroupfs by itself here; saying so keeps the test off that guess);
//! - `--ulimit nofile=1024:1024 --ulimit nproc=1024:1024`: podman's defaults (nofile
//!   1048576, nproc the host's) are above what runc may set without CAP_SYS_RESOURCE
//!   ("error setting rlimit type 7: operation not permitted"; type 6 is nproc, which failed
//!   even at the shell's own hard limit), while 1024 is allowed and plenty;
//! - `--network host`: the fakes listen on the host's 127.0.0.1, and no network backend
//!   (netavark, CNI) is needed;
//! - `--http-proxy=false`: podman otherwise copies the host's proxy variables into the
//!   container, which would send loopback requests to a proxy.

// Shared with tests/it and the examples; this test uses a few of its helpers.
#[allow(dead_code, unused_imports)]
mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use support::process::{Output, le, run, tree};
use support::sorted_lines;
use support::tls::{Pki, TlsFront};
use support::{ACCESS_KEY_ID, FakeCostExplorer, FakeReceiver, SECRET_ACCESS_KEY, Sandbox};

const DAY: &str = "2022-06-13";
const DAY_END: &str = "2022-06-14";
/// The image's user and group (Dockerfile.scratch USER).
const ID: u32 = 65532;
const ARCHIVE: &str = "target/image/source-aws-billing.oci.tar";
const TOOLS: [&str; 7] = [
    "buildah",
    "skopeo",
    "umoci",
    "podman",
    "runc",
    "qemu-aarch64-static",
    "openssl",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|dir| Path::new(dir).join(tool).is_file())
}

/// Why these tests cannot run here (not root, tools missing), or None when they can.
fn cannot_run() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (podman and buildah as root; run `make test` as root)".into());
    }
    let missing: Vec<&str> = TOOLS.iter().copied().filter(|t| !on_path(t)).collect();
    if missing.is_empty() {
        None
    } else {
        Some(format!(
            "missing {} (.ci/run installs them)",
            missing.join(", ")
        ))
    }
}

/// True when the test may not run here: skipped with a note, or a failure under CI=true.
fn skip() -> bool {
    let Some(why) = cannot_run() else {
        return false;
    };
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("CI=true and the image tests cannot run: {why}");
    }
    eprintln!("skipped: {why}");
    true
}

fn command(program: &str, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command.args(args).current_dir(root());
    command
}

/// `make image` (incremental), once per test process: the OCI archive.
fn archive() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = run(command("make", &["image"]), Duration::from_secs(2400));
            if !out.status.success() {
                return Err(out.describe("make image failed"));
            }
            let path = root().join(ARCHIVE);
            if path.is_file() {
                Ok(path)
            } else {
                Err(format!("make image did not write {}", path.display()))
            }
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn oci_archive() -> String {
    format!("oci-archive:{}", archive().display())
}

/// One architecture's image from the archive, unpacked once per test process into
/// target/image/unpacked/ARCH/rootfs (umoci raw unpack keeps owners and modes).
fn unpacked(arch: &'static str) -> PathBuf {
    static AMD64: OnceLock<PathBuf> = OnceLock::new();
    static ARM64: OnceLock<PathBuf> = OnceLock::new();
    let cell = if arch == "amd64" { &AMD64 } else { &ARM64 };
    cell.get_or_init(|| {
        let dir = root().join("target/image/unpacked").join(arch);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create unpack dir");
        let layout = format!("oci:{}:{arch}", dir.join("layout").display());
        run(
            command(
                "skopeo",
                &[
                    "copy",
                    "--quiet",
                    "--override-os",
                    "linux",
                    "--override-arch",
                    arch,
                    &oci_archive(),
                    &layout,
                ],
            ),
            Duration::from_secs(120),
        )
        .ok("skopeo copy one arch out of the archive");
        let rootfs = dir.join("rootfs");
        let image = format!("{}:{arch}", dir.join("layout").display());
        run(
            command(
                "umoci",
                &[
                    "raw",
                    "unpack",
                    "--image",
                    &image,
                    &rootfs.to_string_lossy(),
                ],
            ),
            Duration::from_secs(120),
        )
        .ok("umoci raw unpack");
        rootfs
    })
    .clone()
}

fn json(text: &str, what: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: {e}\n{text}"))
}

/// Every event of the day arrived at the receiver, each sent once.
fn assert_every_event(ce: &FakeCostExplorer, receiver: &FakeReceiver, groups: usize) {
    ce.assert_no_violations();
    let mut want = ce.expected_lines(DAY, DAY_END);
    want.sort();
    assert_eq!(want.len(), groups);
    assert_eq!(
        sorted_lines(receiver),
        want,
        "every event arrives, as pulled"
    );
    assert_eq!(receiver.request_count(), groups, "each event sent once");
}

fn config_yaml(endpoint: &str, target: &str, extra: &str) -> String {
    format!("target: \"{target}\"\nendpoint: \"{endpoint}\"\nretry_max_backoff_s: 1\n{extra}")
}

fn secret_yaml() -> String {
    format!("access_key_id: \"{ACCESS_KEY_ID}\"\nsecret_access_key: \"{SECRET_ACCESS_KEY}\"\n")
}

// ---------------------------------------------------------------------------------------------
// What the archive holds.

#[test]
fn the_archive_is_one_index_of_amd64_and_arm64_holding_only_the_binary_and_vance_data() {
    if skip() {
        return;
    }
    let index = json(
        &run(
            command("skopeo", &["inspect", "--raw", &oci_archive()]),
            Duration::from_secs(60),
        )
        .ok("skopeo inspect --raw"),
        "the archive's index",
    );
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{index}"
    );
    let mut platforms: Vec<String> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap_or("?"),
                m["platform"]["architecture"].as_str().unwrap_or("?")
            )
        })
        .collect();
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{index}");

    for (arch, triple) in [
        ("amd64", "x86_64-unknown-linux-musl"),
        ("arm64", "aarch64-unknown-linux-musl"),
    ] {
        let config = json(
            &run(
                command(
                    "skopeo",
                    &[
                        "inspect",
                        "--config",
                        "--override-os",
                        "linux",
                        "--override-arch",
                        arch,
                        &oci_archive(),
                    ],
                ),
                Duration::from_secs(60),
            )
            .ok("skopeo inspect --config"),
            "image config",
        );
        assert_eq!(config["architecture"], arch, "{config}");
        assert_eq!(config["os"], "linux", "{config}");
        let c = &config["config"];
        assert_eq!(c["User"], "65532:65532", "{config}");
        assert_eq!(
            c["Entrypoint"],
            serde_json::json!(["/source-aws-billing"]),
            "{config}"
        );
        assert_eq!(c["Cmd"], serde_json::json!(["run"]), "{config}");
        assert_eq!(
            c["Volumes"],
            serde_json::json!({"/vance/data": {}}),
            "{config}"
        );
        for var in c["Env"].as_array().into_iter().flatten() {
            let var = var.as_str().unwrap_or_default();
            assert!(
                var.starts_with("PATH="),
                "only PATH in the image's environment, found {var}"
            );
        }

        let rootfs = unpacked(arch);
        assert_eq!(
            tree(&rootfs),
            ["source-aws-billing", "vance", "vance/data"],
            "{arch}: nothing but the binary and /vance/data"
        );
        let binary = std::fs::metadata(rootfs.join("source-aws-billing")).expect("stat binary");
        assert_eq!(
            (binary.uid(), binary.gid(), binary.mode() & 0o7777),
            (0, 0, 0o755)
        );
        assert_eq!(
            std::fs::read(rootfs.join("source-aws-billing")).expect("read binary"),
            std::fs::read(
                root()
                    .join("target")
                    .join(triple)
                    .join("release/source-aws-billing")
            )
            .expect("read the built binary"),
            "{arch}: the image holds the binary `make` built for {triple}"
        );
        let vance = std::fs::metadata(rootfs.join("vance")).expect("stat vance");
        assert_eq!(
            (vance.uid(), vance.gid()),
            (0, 0),
            "{arch}: /vance is root's"
        );
        let data = std::fs::metadata(rootfs.join("vance/data")).expect("stat data");
        assert!(data.is_dir());
        assert_eq!(
            (data.uid(), data.gid()),
            (ID, ID),
            "{arch}: /vance/data belongs to the image's user"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The amd64 image in a real container.

/// podman as root with its storage in a sandbox directory (nothing lands in /var/lib/containers).
struct Podman {
    base: Vec<String>,
}

impl Podman {
    fn new(dir: &Path) -> Podman {
        let at = |name: &str| dir.join(name).display().to_string();
        let base = vec![
            "--root".to_string(),
            at("storage"),
            "--runroot".to_string(),
            at("run"),
            "--tmpdir".to_string(),
            at("tmp"),
            "--storage-driver".to_string(),
            "vfs".to_string(),
            "--events-backend".to_string(),
            "file".to_string(),
            "--cgroup-manager".to_string(),
            "cgroupfs".to_string(),
        ];
        Podman { base }
    }

    fn run(&self, args: &[&str], within: Duration) -> Output {
        let mut podman = command("podman", &[]);
        podman.args(&self.base).args(args);
        // The host's proxy variables must not reach the container (see --http-proxy=false).
        for name in ["http_proxy", "https_proxy", "all_proxy", "no_proxy"] {
            podman
                .env_remove(name)
                .env_remove(name.to_ascii_uppercase());
        }
        run(podman, within)
    }
}

/// A `--ulimit` of 1024 (plenty for one process with a few sockets), or this process's own
/// hard limit when lower (see the module comment).
fn ulimit(name: &str, resource: libc::__rlimit_resource_t) -> String {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    assert_eq!(unsafe { libc::getrlimit(resource, &mut limit) }, 0);
    let value = limit.rlim_max.min(1024);
    format!("{name}={value}:{value}")
}

#[test]
fn the_amd64_image_runs_in_podman_with_the_seed_mounts_and_keeps_its_state_in_a_volume() {
    if skip() {
        return;
    }
    let archive = archive();
    let sandbox = Sandbox::new("image-podman");
    let podman = Podman::new(&sandbox.path("podman"));
    let loaded = podman
        .run(
            &["load", "--quiet", "-i", &archive.to_string_lossy()],
            Duration::from_secs(300),
        )
        .ok("podman load");
    let image = loaded
        .lines()
        .find_map(|l| l.strip_prefix("Loaded image: "))
        .unwrap_or_else(|| panic!("no 'Loaded image:' in {loaded:?}"))
        .split(',')
        .next()
        .expect("a name")
        .trim()
        .to_string();
    let arch = podman
        .run(
            &["image", "inspect", "--format", "{{.Architecture}}", &image],
            Duration::from_secs(60),
        )
        .ok("podman image inspect");
    assert_eq!(arch.trim(), "amd64", "podman load picks the host's image");

    let ce = FakeCostExplorer::with_groups(7, 3);
    let receiver = FakeReceiver::start();
    // The seed's layout: a directory with config.yml on /vance/config, one with secret.yml
    // on /vance/secret, both readable by uid 65532; no state_dir: the image's /vance/data.
    let config_dir = sandbox.path("config");
    let secret_dir = sandbox.path("secret");
    std::fs::create_dir_all(&config_dir).expect("mkdir config");
    std::fs::create_dir_all(&secret_dir).expect("mkdir secret");
    sandbox.write(
        "config/config.yml",
        &config_yaml(&ce.url(), &receiver.url(), ""),
    );
    sandbox.write("secret/secret.yml", &secret_yaml());
    podman
        .run(&["volume", "create", "sab-data"], Duration::from_secs(60))
        .ok("podman volume create");

    let nofile = ulimit("nofile", libc::RLIMIT_NOFILE);
    let nproc = ulimit("nproc", libc::RLIMIT_NPROC);
    let config_mount = format!("{}:/vance/config:ro", config_dir.display());
    let secret_mount = format!("{}:/vance/secret:ro", secret_dir.display());
    let once = || {
        podman.run(
            &[
                "run",
                "--rm",
                "--pull=never",
                "--runtime",
                "runc",
                "--network",
                "host",
                "--http-proxy=false",
                "--ulimit",
                &nofile,
                "--ulimit",
                &nproc,
                "-v",
                &config_mount,
                "-v",
                &secret_mount,
                "-v",
                "sab-data:/vance/data",
                &image,
                "once",
                "--date",
                DAY,
            ],
            Duration::from_secs(180),
        )
    };

    let first = once();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        first.describe("podman run IMAGE once")
    );
    assert_every_event(&ce, &receiver, 7);

    // The state is in the volume, written by the image's user (an image whose /vance/data
    // is not 65532's leaves a fresh volume unwritable: the run warns and keeps it in memory).
    let mountpoint = podman
        .run(
            &[
                "volume",
                "inspect",
                "--format",
                "{{.Mountpoint}}",
                "sab-data",
            ],
            Duration::from_secs(60),
        )
        .ok("podman volume inspect");
    let delivered = Path::new(mountpoint.trim()).join("delivered.json");
    let text = std::fs::read_to_string(&delivered)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", delivered.display(), first.describe("once")));
    assert!(text.contains(DAY), "{text}");
    let meta = std::fs::metadata(&delivered).expect("stat delivered.json");
    assert_eq!((meta.uid(), meta.gid()), (ID, ID), "written as 65532:65532");

    // A new container on the same volume pulls nothing.
    let pulls = ce.request_count();
    assert!(pulls >= 1);
    let second = once();
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}",
        second.describe("second podman run")
    );
    assert!(
        second.stderr.contains("already delivered"),
        "{}",
        second.describe("second podman run")
    );
    assert_eq!(ce.request_count(), pulls, "0 Cost Explorer requests");
    assert_eq!(receiver.request_count(), 7, "no second delivery");
}

// ---------------------------------------------------------------------------------------------
// The arm64 binary from the arm64 image, under qemu.

/// The arm64 image's binary, checked to be a static aarch64 ELF (no PT_INTERP).
fn arm64_binary() -> PathBuf {
    let binary = unpacked("arm64").join("source-aws-billing");
    let elf = std::fs::read(&binary).expect("read the arm64 binary");
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!((elf[4], elf[5]), (2, 1), "ELF64, little-endian");
    assert_eq!(le(&elf, 0x12, 2), 183, "EM_AARCH64");
    let (phoff, phentsize, phnum) = (
        le(&elf, 0x20, 8) as usize,
        le(&elf, 0x36, 2) as usize,
        le(&elf, 0x38, 2) as usize,
    );
    for i in 0..phnum {
        assert_ne!(
            le(&elf, phoff + i * phentsize, 4),
            3,
            "PT_INTERP: the arm64 binary needs a dynamic loader"
        );
    }
    binary
}

/// `qemu-aarch64-static BINARY once --date DAY` with its own config and secret, empty env.
fn once_under_qemu(sandbox: &Sandbox, endpoint: &str, target: &str, extra: &str) -> Output {
    let state = sandbox.state_dir();
    let config = sandbox.write(
        "config.yml",
        &config_yaml(
            endpoint,
            target,
            &format!("state_dir: \"{}\"\n{extra}", state.display()),
        ),
    );
    let secret = sandbox.write("secret.yml", &secret_yaml());
    let mut qemu = command("qemu-aarch64-static", &[]);
    qemu.arg(arm64_binary())
        .args(["once", "--date", DAY, "--config"])
        .arg(config)
        .arg("--secret")
        .arg(secret)
        .env_clear();
    run(qemu, Duration::from_secs(180))
}

#[test]
fn the_arm64_binary_from_the_image_delivers_every_event_under_qemu_over_http() {
    if skip() {
        return;
    }
    let ce = FakeCostExplorer::with_groups(5, 2);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("image-arm64-http");
    let out = once_under_qemu(&sandbox, &ce.url(), &receiver.url(), "");
    assert_eq!(out.status.code(), Some(0), "{}", out.describe("arm64 once"));
    assert_every_event(&ce, &receiver, 5);
    assert!(sandbox.state_dir().join("delivered.json").is_file());
}

#[test]
fn the_arm64_binary_from_the_image_delivers_every_event_under_qemu_over_tls_with_a_private_ca() {
    if skip() {
        return;
    }
    let sandbox = Sandbox::new("image-arm64-tls");
    let pki = Pki::generate(&sandbox.path("pki"), "source-aws-billing arm64 test CA");
    let ce = FakeCostExplorer::with_groups(5, 2);
    let receiver = FakeReceiver::start();
    let backend = |url: &str| {
        let port = url
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("no port in {url}"));
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    };
    let ce_tls = TlsFront::start(&pki, backend(&ce.url()));
    let receiver_tls = TlsFront::start(&pki, backend(&receiver.url()));
    let out = once_under_qemu(
        &sandbox,
        &ce_tls.url(),
        &format!("{}/", receiver_tls.url()),
        &format!("ca_file: \"{}\"\n", pki.ca_pem.display()),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        out.describe("arm64 once over TLS")
    );
    assert!(
        ce_tls.handshakes() >= 1 && receiver_tls.handshakes() >= 1,
        "both went through TLS: {:?} {:?}",
        ce_tls.errors(),
        receiver_tls.errors()
    );
    assert_every_event(&ce, &receiver, 5);
}
