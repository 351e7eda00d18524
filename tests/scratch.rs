//! The scratch image's situation without Docker: the static musl binary alone in an empty chroot (no /etc, /proc, /dev, libc) as user 65532 pulls and delivers every event; plus its ELF is static and stripped, and Dockerfile.scratch is what it should be (tests/image.rs builds and runs the real image).

// Shared with tests/it and the examples; this test uses a few of its helpers.
#[allow(dead_code, unused_imports)]
mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use support::process::{Output, le, run, tree};
use support::tls::{Pki, TlsFront};
use support::{ACCESS_KEY_ID, FakeCostExplorer, FakeReceiver, SECRET_ACCESS_KEY, Sandbox};

const DAY: &str = "2022-06-13";
const DAY_END: &str = "2022-06-14";
/// The image's user and group (Dockerfile.scratch USER, the manifest's runAsUser).
const ID: u32 = 65532;
const STATIC_BIN: &str = "target/x86_64-unknown-linux-musl/release/source-aws-billing";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `make static` (incremental), once per test process: the path of the static binary, or why it could not be built.
fn static_binary() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let mut make = Command::new("make");
            make.arg("static").current_dir(root);
            let out = run(make, Duration::from_secs(1800));
            if !out.status.success() {
                return Err(out.describe("make static failed"));
            }
            let path = root.join(STATIC_BIN);
            if path.is_file() {
                Ok(path)
            } else {
                Err(format!("make static did not produce {}", path.display()))
            }
        })
        .clone()
}

fn chroot_command() -> PathBuf {
    [
        "/usr/sbin/chroot",
        "/usr/bin/chroot",
        "/sbin/chroot",
        "/bin/chroot",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .expect("chroot(8) (coreutils) is installed")
}

fn write(path: &Path, contents: &[u8], mode: u32) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create parent");
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

/// `chroot --userspec=65532:65532 ROOTFS /source-aws-billing ARGS` with an empty environment.
fn in_chroot(rootfs: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(chroot_command());
    command
        .arg(format!("--userspec={ID}:{ID}"))
        .arg(rootfs)
        .arg("/source-aws-billing")
        .args(args)
        .env_clear();
    let out = run(command, Duration::from_secs(60));
    for secret in [SECRET_ACCESS_KEY, "DoNotPrint"] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "{}",
            out.describe("a secret appeared in the output")
        );
    }
    assert!(
        !out.stderr.contains("panicked at"),
        "{}",
        out.describe("the binary panicked")
    );
    out
}

#[test]
fn the_static_binary_alone_in_an_empty_chroot_delivers_every_event() {
    if !is_root() {
        eprintln!(
            "skipped: the chroot scratch test needs root (chroot(2)); run `make test` as root"
        );
        return;
    }
    let binary = static_binary().unwrap_or_else(|e| panic!("{e}"));
    let ce = FakeCostExplorer::with_groups(7, 3);
    let receiver = FakeReceiver::start();
    let sandbox = Sandbox::new("scratch");
    let rootfs = sandbox.path("rootfs");

    // Exactly what the image holds, plus the two mounted files: nothing else.
    write(
        &rootfs.join("source-aws-billing"),
        &std::fs::read(&binary).expect("read static binary"),
        0o755,
    );
    // No state_dir: the binary's default, /vance/data, like the image.
    let config = format!(
        "target: \"{}\"\nendpoint: \"{}\"\npull_hour: 2\nretry_max_backoff_s: 1\n",
        receiver.url(),
        ce.url()
    );
    write(
        &rootfs.join("vance/config/config.yml"),
        config.as_bytes(),
        0o644,
    );
    let secret =
        format!("access_key_id: \"{ACCESS_KEY_ID}\"\nsecret_access_key: \"{SECRET_ACCESS_KEY}\"\n");
    // As Kubernetes mounts it: root-owned, readable by the fsGroup only.
    let secret_file = rootfs.join("vance/secret/secret.yml");
    write(&secret_file, secret.as_bytes(), 0o440);
    chown(&secret_file, 0, ID);
    let data = rootfs.join("vance/data");
    std::fs::create_dir_all(&data).expect("create vance/data");
    chown(&data, ID, ID);
    let before = tree(&rootfs);
    assert_eq!(
        before,
        [
            "source-aws-billing",
            "vance",
            "vance/config",
            "vance/config/config.yml",
            "vance/data",
            "vance/secret",
            "vance/secret/secret.yml"
        ]
    );

    // No --config, --secret or env: the seed's default paths, as `docker run` uses them.
    let out = in_chroot(&rootfs, &["once", "--date", DAY]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        out.describe("once in the chroot")
    );
    ce.assert_no_violations();
    let mut got: Vec<_> = receiver
        .accepted_events()
        .iter()
        .map(support::Event::line)
        .collect();
    got.sort();
    let mut want = ce.expected_lines(DAY, DAY_END);
    want.sort();
    assert_eq!(got.len(), 7);
    assert_eq!(got, want, "every event arrives, as pulled");
    assert_eq!(receiver.request_count(), 7, "each event sent once");

    // State landed in /vance/data, written by the image's user, and nowhere else.
    let delivered = data.join("delivered.json");
    let text = std::fs::read_to_string(&delivered)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", delivered.display(), out.describe("once")));
    assert!(text.contains(DAY), "{text}");
    assert_eq!(
        std::fs::metadata(&delivered).expect("stat").uid(),
        ID,
        "written as 65532"
    );
    let after = tree(&rootfs);
    for path in &after {
        assert!(
            before.contains(path) || path.starts_with("vance/data/"),
            "the binary created {path} outside /vance/data"
        );
    }

    // A restart finds the day delivered: the state really persisted in the volume.
    let pulls = ce.request_count();
    let again = in_chroot(&rootfs, &["once", "--date", DAY]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        again.describe("second once")
    );
    assert!(
        again.stderr.contains("already delivered"),
        "{}",
        again.describe("second once")
    );
    assert_eq!(ce.request_count(), pulls, "no second pull");
    assert_eq!(receiver.request_count(), 7, "no second delivery");
}

#[test]
fn the_chroot_has_no_proc_dev_or_etc_and_the_binary_needs_none() {
    if !is_root() {
        eprintln!("skipped: needs root (chroot(2)); run `make test` as root");
        return;
    }
    let binary = static_binary().unwrap_or_else(|e| panic!("{e}"));
    let sandbox = Sandbox::new("scratch-bare");
    let rootfs = sandbox.path("rootfs");
    write(
        &rootfs.join("source-aws-billing"),
        &std::fs::read(&binary).expect("read static binary"),
        0o755,
    );
    // A command that needs only the binary: prints one event per line, no state, no files.
    let ce = FakeCostExplorer::with_groups(2, 100);
    let config = format!(
        "target: \"-\"\nendpoint: \"{}\"\nsecret:\n  access_key_id: \"{ACCESS_KEY_ID}\"\n  secret_access_key: \"{SECRET_ACCESS_KEY}\"\n",
        ce.url()
    );
    write(
        &rootfs.join("vance/config/config.yml"),
        config.as_bytes(),
        0o644,
    );
    for missing in ["proc", "dev", "etc", "tmp", "lib", "usr"] {
        assert!(!rootfs.join(missing).exists());
    }
    let out = in_chroot(&rootfs, &["once", "--date", DAY]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        out.describe("once --target - in a bare chroot")
    );
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON event per line"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", out.describe("printed events"));
    for event in &lines {
        // Random UUIDs (getrandom(2), not /dev/urandom) and UTC times (no tzdata).
        assert!(support::is_uuid_v8(event["id"].as_str().expect("id")));
        assert!(event["time"].as_str().expect("time").ends_with('Z'));
    }
    assert_eq!(
        tree(&rootfs),
        [
            "source-aws-billing",
            "vance",
            "vance/config",
            "vance/config/config.yml"
        ]
    );
}

#[test]
fn the_static_binary_is_static_stripped_and_has_no_interpreter() {
    let binary = match static_binary() {
        Ok(b) => b,
        Err(e) if !is_root() => {
            eprintln!("skipped: cannot build the static binary as non-root: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let elf = std::fs::read(&binary).expect("read static binary");
    assert_eq!(&elf[..4], b"\x7fELF", "an ELF file");
    assert_eq!(elf[4], 2, "ELF64");
    assert_eq!(elf[5], 1, "little-endian");
    assert_eq!(le(&elf, 0x12, 2), 62, "x86-64");
    let (phoff, phentsize, phnum) = (
        le(&elf, 0x20, 8) as usize,
        le(&elf, 0x36, 2) as usize,
        le(&elf, 0x38, 2) as usize,
    );
    const PT_DYNAMIC: u64 = 2;
    const PT_INTERP: u64 = 3;
    const DT_NEEDED: u64 = 1;
    let mut loads = 0;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let (kind, offset, size) = (
            le(&elf, ph, 4),
            le(&elf, ph + 8, 8) as usize,
            le(&elf, ph + 0x20, 8) as usize,
        );
        assert_ne!(
            kind, PT_INTERP,
            "a PT_INTERP header: the binary needs a dynamic loader"
        );
        if kind == 1 {
            loads += 1;
        }
        if kind == PT_DYNAMIC {
            // static-pie keeps a dynamic section for its own relocations, but needs no library.
            for entry in (offset..offset + size).step_by(16) {
                let tag = le(&elf, entry, 8);
                assert_ne!(
                    tag, DT_NEEDED,
                    "DT_NEEDED: the binary links a shared library"
                );
                if tag == 0 {
                    break;
                }
            }
        }
    }
    assert!(loads > 0, "PT_LOAD segments");
    let (shoff, shentsize, shnum) = (
        le(&elf, 0x28, 8) as usize,
        le(&elf, 0x3a, 2) as usize,
        le(&elf, 0x3c, 2) as usize,
    );
    const SHT_SYMTAB: u64 = 2;
    for i in 0..shnum {
        let kind = le(&elf, shoff + i * shentsize + 4, 4);
        assert_ne!(
            kind, SHT_SYMTAB,
            "a .symtab section: the binary is not stripped"
        );
    }
    eprintln!("{}: {} bytes", binary.display(), elf.len());
}

#[test]
fn dockerfile_scratch_ships_only_the_prebuilt_binary_of_the_target_arch() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile.scratch");
    let text = std::fs::read_to_string(&path).expect("read Dockerfile.scratch");
    // Instructions, with continuation lines joined and comments dropped.
    let mut instructions: Vec<String> = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && pending.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => pending.push_str(part),
            None => {
                pending.push_str(line);
                instructions.push(std::mem::take(&mut pending));
            }
        }
    }
    // One stage, no builder: the image is made of the binaries `make` built (no image pulled).
    let image = &instructions[..];
    assert_eq!(image[0], "FROM scratch");
    assert_eq!(
        image
            .iter()
            .filter(|i| i.to_ascii_uppercase().starts_with("FROM "))
            .count(),
        1,
        "no builder stage: {image:?}"
    );
    assert!(
        image.iter().all(|i| !i.starts_with("RUN ")),
        "no RUN in a shell-less image"
    );
    let has = |want: &str| image.iter().any(|i| i == want);
    assert!(has("ARG TARGETARCH"), "{image:?}");
    assert!(
        has("COPY ${TARGETARCH}/source-aws-billing /source-aws-billing"),
        "the binary of the platform being built: {image:?}"
    );
    assert!(has("COPY data /vance"), "{image:?}");
    assert!(
        has("COPY --chown=65532:65532 data /vance/data"),
        "{image:?}"
    );
    assert!(has("USER 65532:65532"), "{image:?}");
    assert!(has("VOLUME [\"/vance/data\"]"), "{image:?}");
    assert!(has("ENTRYPOINT [\"/source-aws-billing\"]"), "{image:?}");
    assert!(has("CMD [\"run\"]"), "{image:?}");
    let copies = image.iter().filter(|i| i.starts_with("COPY ")).count();
    assert_eq!(copies, 3, "only the binary and the empty data directory");
    assert!(
        image
            .iter()
            .all(|i| !i.starts_with("ENV ") || !i.contains("CONNECTOR_")),
        "config and secret come from the binary's defaults (the seed's paths), so env credentials still work"
    );
}

/// The static binary as linked for the image (lld, identical code folding, packed
/// relocations; see tests/bench/README.md, Size) pulls and delivers every event over TLS 1.3 and TLS 1.2
/// with a private CA: its TLS code survived the link.
#[test]
fn the_static_binary_delivers_every_event_over_tls_1_3_and_1_2() {
    let binary = match static_binary() {
        Ok(b) => b,
        Err(e) if !is_root() => {
            eprintln!("skipped: cannot build the static binary as non-root: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    for (version, tls12) in [("1.3", false), ("1.2", true)] {
        let sandbox = Sandbox::new(&format!("scratch-tls-{}", if tls12 { 12 } else { 13 }));
        let pki = Pki::generate(&sandbox.path("pki"), "source-aws-billing static test CA");
        let ce = FakeCostExplorer::with_groups(4, 2);
        let receiver = FakeReceiver::start();
        let front = |url: &str| {
            let port = url.trim_end_matches('/').rsplit(':').next().unwrap();
            let backend = std::net::SocketAddr::from(([127, 0, 0, 1], port.parse().unwrap()));
            match tls12 {
                true => TlsFront::start_tls12(&pki, backend),
                false => TlsFront::start(&pki, backend),
            }
        };
        let (ce_tls, receiver_tls) = (front(&ce.url()), front(&receiver.url()));
        let config = sandbox.write_config(
            &ce_tls.url(),
            &format!("{}/", receiver_tls.url()),
            &format!("ca_file: \"{}\"\n", pki.ca_pem.display()),
        );
        let mut command = Command::new(&binary);
        command
            .args(["once", "--date", DAY, "--config"])
            .arg(config)
            .arg("--secret")
            .arg(sandbox.write_secret())
            .env_clear();
        let out = run(command, Duration::from_secs(120));
        let what = format!("static binary over TLS {version}");
        assert_eq!(out.status.code(), Some(0), "{}", out.describe(&what));
        assert!(
            ce_tls.handshakes() >= 1 && receiver_tls.handshakes() >= 1,
            "{what}: both went through TLS: {:?} {:?}",
            ce_tls.errors(),
            receiver_tls.errors()
        );
        ce.assert_no_violations();
        let mut want = ce.expected_lines(DAY, DAY_END);
        want.sort();
        let mut got: Vec<_> = receiver
            .accepted_events()
            .iter()
            .map(support::Event::line)
            .collect();
        got.sort();
        assert_eq!(got, want, "{what}: every event arrives, as pulled");
    }
}
