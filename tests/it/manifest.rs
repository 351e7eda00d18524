//! source-aws-billing.yaml: every document parses, the Deployment runs this project's image, locked down and wired to its ConfigMap, Secret and PVC, with liveness and health probes the binary parses, and the binary's own loader accepts the config and secret it ships.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;
use source_aws_billing::config::{self, Overrides, Target};

/// The image `make image` builds, at the registry the user pushes it to (a placeholder).
const IMAGE: &str = "REGISTRY/source-aws-billing";
const USER: i64 = 65532;

fn manifest_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("source-aws-billing.yaml")
}

/// Every non-empty YAML document of the manifest, in order.
fn documents() -> Vec<Value> {
    let path = manifest_path();
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .enumerate()
        .map(|(i, doc)| {
            Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: document {}: {e}", path.display(), i + 1))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The one document of this kind.
fn only(kind: &str) -> Value {
    let docs: Vec<Value> = documents()
        .into_iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect();
    assert_eq!(docs.len(), 1, "expected exactly one {kind} in the manifest");
    docs.into_iter().next().unwrap()
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, found {value:?}"))
}

fn name_of(doc: &Value) -> &str {
    text(&doc["metadata"]["name"], "metadata.name")
}

/// The Deployment's one container.
fn container(deployment: &Value) -> Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("spec.template.spec.containers");
    assert_eq!(containers.len(), 1, "one container");
    containers[0].clone()
}

/// The pod volume of this name.
fn volume(deployment: &Value, name: &str) -> Value {
    deployment["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .expect("spec.template.spec.volumes")
        .iter()
        .find(|v| v["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no volume named {name}"))
        .clone()
}

/// The container's mount at this path: (volume name, read-only).
fn mount_at(container: &Value, path: &str) -> (String, bool) {
    let mount = container["volumeMounts"]
        .as_sequence()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["mountPath"].as_str() == Some(path))
        .unwrap_or_else(|| panic!("nothing mounted at {path}"))
        .clone();
    (
        text(&mount["name"], "volumeMounts.name").to_string(),
        mount["readOnly"].as_bool().unwrap_or(false),
    )
}

/// A security setting as the container gets it: its own value, else the pod's.
fn effective(deployment: &Value, container: &Value, key: &str) -> Value {
    match &container["securityContext"][key] {
        Value::Null => deployment["spec"]["template"]["spec"]["securityContext"][key].clone(),
        v => v.clone(),
    }
}

/// CPU quantity in millicores ("10m", "0.1", "1").
fn millicores(quantity: &str) -> u64 {
    match quantity.strip_suffix('m') {
        Some(m) => m.parse().expect("cpu millicores"),
        None => (quantity.parse::<f64>().expect("cpu cores") * 1000.0) as u64,
    }
}

/// Memory quantity in bytes ("16Mi", "32M", "1Gi", plain bytes).
fn bytes(quantity: &str) -> u64 {
    for (suffix, unit) in [
        ("Ki", 1u64 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ] {
        if let Some(n) = quantity.strip_suffix(suffix) {
            return n.parse::<u64>().expect("memory quantity") * unit;
        }
    }
    quantity.parse().expect("memory bytes")
}

/// The old connector's image (which this project does not publish) is named nowhere a user
/// copies from.
#[test]
fn no_file_names_the_old_connectors_image() {
    for file in [
        "source-aws-billing.yaml",
        "README.md",
        "Makefile",
        "Dockerfile.scratch",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            !text.contains("public.ecr.aws/vanus"),
            "{file} names the old image"
        );
    }
}

#[test]
fn every_document_parses_and_none_names_a_namespace() {
    let docs = documents();
    let mut kinds: Vec<&str> = docs.iter().map(|d| text(&d["kind"], "kind")).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "PersistentVolumeClaim",
            "Secret",
            "ServiceAccount"
        ]
    );
    for doc in &docs {
        assert!(doc["apiVersion"].is_string(), "apiVersion missing: {doc:?}");
        assert!(!name_of(doc).is_empty());
        assert!(
            doc["metadata"]["namespace"].is_null(),
            "{} {} names a namespace; the manifest must apply to any (-n NAME)",
            text(&doc["kind"], "kind"),
            name_of(doc)
        );
    }
}

#[test]
fn the_deployment_is_one_recreated_replica_of_the_image() {
    let deployment = only("Deployment");
    assert_eq!(deployment["apiVersion"].as_str(), Some("apps/v1"));
    assert_eq!(deployment["spec"]["replicas"].as_i64(), Some(1));
    assert_eq!(
        deployment["spec"]["strategy"]["type"].as_str(),
        Some("Recreate")
    );
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let selector = selector.as_mapping().expect("selector.matchLabels");
    assert!(!selector.is_empty());
    for (key, value) in selector {
        assert_eq!(&labels[key], value, "the pod template carries the selector");
    }
    let container = container(&deployment);
    let image = text(&container["image"], "image");
    // This project's image, tagged with the version `make image` tags it with (Cargo's).
    assert_eq!(
        image,
        format!("{IMAGE}:{}", env!("CARGO_PKG_VERSION")),
        "the image is the one `make image` builds"
    );
    // The image's entrypoint is the binary; the args, if any, name a service-mode command.
    if let Some(args) = container["args"].as_sequence() {
        assert_eq!(args, &[Value::from("run")]);
    }
    assert!(
        container["command"].is_null(),
        "no command: there is no shell in the image"
    );
}

#[test]
fn the_container_runs_locked_down() {
    let deployment = only("Deployment");
    let container = container(&deployment);
    let get = |key: &str| effective(&deployment, &container, key);
    assert_eq!(get("runAsNonRoot").as_bool(), Some(true));
    assert_eq!(get("runAsUser").as_i64(), Some(USER));
    assert_eq!(get("readOnlyRootFilesystem").as_bool(), Some(true));
    assert_eq!(get("allowPrivilegeEscalation").as_bool(), Some(false));
    assert_ne!(get("privileged").as_bool(), Some(true));
    assert_eq!(
        get("seccompProfile")["type"].as_str(),
        Some("RuntimeDefault")
    );
    let dropped = container["securityContext"]["capabilities"]["drop"]
        .as_sequence()
        .expect("securityContext.capabilities.drop");
    assert_eq!(dropped, &[Value::from("ALL")]);
    assert!(container["securityContext"]["capabilities"]["add"].is_null());
    // The PVC must be writable by the non-root user.
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"]["fsGroup"].as_i64(),
        Some(USER)
    );
}

#[test]
fn resources_are_small_and_bounded() {
    let deployment = only("Deployment");
    let resources = &container(&deployment)["resources"];
    let quantity = |kind: &str, name: &str| -> String {
        match &resources[kind][name] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => panic!("resources.{kind}.{name}: missing ({other:?})"),
        }
    };
    let (cpu_request, cpu_limit) = (
        millicores(&quantity("requests", "cpu")),
        millicores(&quantity("limits", "cpu")),
    );
    let (memory_request, memory_limit) = (
        bytes(&quantity("requests", "memory")),
        bytes(&quantity("limits", "memory")),
    );
    assert!(cpu_request > 0 && cpu_request <= cpu_limit && cpu_limit <= 250);
    assert!(memory_request > 0 && memory_request <= memory_limit && memory_limit <= 64 << 20);
}

#[test]
fn config_secret_and_data_are_mounted_where_the_binary_looks() {
    let deployment = only("Deployment");
    let container = container(&deployment);

    let (config_volume, read_only) = mount_at(&container, "/vance/config");
    assert!(read_only, "/vance/config is mounted read-only");
    assert_eq!(
        volume(&deployment, &config_volume)["configMap"]["name"].as_str(),
        Some(name_of(&only("ConfigMap")))
    );

    let (secret_volume, read_only) = mount_at(&container, "/vance/secret");
    assert!(read_only, "/vance/secret is mounted read-only");
    let secret = volume(&deployment, &secret_volume);
    assert_eq!(
        secret["secret"]["secretName"].as_str(),
        Some(name_of(&only("Secret")))
    );
    if let Some(mode) = secret["secret"]["defaultMode"].as_i64() {
        assert_eq!(mode & 0o004, 0, "the secret file is not world-readable");
        assert_ne!(mode & 0o040, 0, "the secret file is readable by fsGroup");
    }

    let (data_volume, read_only) = mount_at(&container, "/vance/data");
    assert!(!read_only, "/vance/data must be writable");
    let pvc = only("PersistentVolumeClaim");
    assert_eq!(
        volume(&deployment, &data_volume)["persistentVolumeClaim"]["claimName"].as_str(),
        Some(name_of(&pvc)),
        "delivered days and the spool survive restarts on the claim in the manifest"
    );
    assert_eq!(
        pvc["spec"]["accessModes"].as_sequence().map(Vec::as_slice),
        Some(&[Value::from("ReadWriteOnce")][..])
    );
    let storage = bytes(text(
        &pvc["spec"]["resources"]["requests"]["storage"],
        "storage",
    ));
    assert!(
        storage >= 64 << 20,
        "room for the default 64 MiB spool, found {storage}"
    );
}

#[test]
fn the_shipped_config_and_secret_load_with_the_binarys_own_loader() {
    let config_map = only("ConfigMap");
    let secret = only("Secret");
    assert_eq!(secret["type"].as_str(), Some("Opaque"));
    let config_text = text(&config_map["data"]["config.yml"], "data.config.yml");
    let secret_text = text(&secret["stringData"]["secret.yml"], "stringData.secret.yml");

    let dir = std::env::temp_dir().join(format!("sab-manifest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config_path = dir.join("config.yml");
    let secret_path = dir.join("secret.yml");
    std::fs::write(&config_path, config_text).expect("write config.yml");
    std::fs::write(&secret_path, secret_text).expect("write secret.yml");
    let overrides = Overrides {
        config: Some(config_path),
        secret: Some(secret_path),
        ..Default::default()
    };
    let loaded = config::load(&overrides, &|_| None).map(|(config, warnings)| {
        let credentials = source_aws_billing::credentials::load_credentials(&config.secret);
        let given = source_aws_billing::credentials::static_sources(&config.secret).1;
        (config, warnings, (credentials, given))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let (config, warnings, (credentials, given)) =
        loaded.unwrap_or_else(|e| panic!("the manifest's config: {e}"));
    assert!(warnings.is_empty(), "unknown keys: {warnings:?}");
    assert!(
        matches!(&config.target, Target::Http(url) if url.starts_with("http")),
        "{:?}",
        config.target
    );
    let pull_hour: Value = serde_yaml::from_str::<Value>(config_text).unwrap()["pull_hour"].clone();
    assert_eq!(
        pull_hour.as_u64(),
        Some(u64::from(config.pull_hour)),
        "pull_hour is set"
    );
    assert!(config.ca_file.is_none());
    // State goes to the mounted claim (the binary's default, not moved elsewhere).
    assert_eq!(config.state_dir, Path::new("/vance/data"));
    // Shipped with the keys commented out, so the chain goes on to the pod's role ...
    assert!(credentials.is_err(), "the Secret ships without keys");
    assert_eq!(given, None);
    // ... and uncommenting the two lines gives keys.
    let uncommented = secret_text.replace("# access_key_id", "access_key_id");
    let uncommented = uncommented.replace("# secret_access_key", "secret_access_key");
    let keys: Value = serde_yaml::from_str(&uncommented).unwrap();
    assert!(text(&keys["access_key_id"], "access_key_id").contains("REPLACE"));
    assert!(text(&keys["secret_access_key"], "secret_access_key").contains("REPLACE"));
}

#[test]
fn the_pod_runs_as_a_service_account_carrying_the_irsa_annotation() {
    let account = only("ServiceAccount");
    let deployment = only("Deployment");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"].as_str(),
        Some(name_of(&account))
    );
    let arn = text(
        &account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "the eks.amazonaws.com/role-arn annotation",
    );
    assert!(
        arn.starts_with("arn:aws:iam::") && arn.contains(":role/"),
        "{arn}"
    );
    // Without keys the pod must still start: the Secret volume is optional.
    let (secret_volume, _) = mount_at(&container(&deployment), "/vance/secret");
    assert_eq!(
        volume(&deployment, &secret_volume)["secret"]["optional"].as_bool(),
        Some(true)
    );
}

#[test]
fn the_liveness_probe_runs_status_check_and_restarts_only_a_real_hang() {
    let container = container(&only("Deployment"));
    let probe = &container["livenessProbe"];
    let command: Vec<String> = probe["exec"]["command"]
        .as_sequence()
        .expect("livenessProbe.exec.command")
        .iter()
        .map(|v| text(v, "livenessProbe.exec.command").to_string())
        .collect();
    // The binary the image's ENTRYPOINT names, with arguments its own parser accepts.
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile.scratch"))
            .expect("Dockerfile.scratch");
    let entrypoint = format!("ENTRYPOINT [\"{}\"]", command[0]);
    assert!(
        dockerfile.contains(&entrypoint),
        "{entrypoint} in Dockerfile.scratch"
    );
    let cli = source_aws_billing::cli::parse(&command[1..]).expect("probe arguments parse");
    let grace = match cli.action {
        source_aws_billing::cli::Action::Status {
            check: true,
            grace_s,
            ..
        } => grace_s,
        other => panic!("the probe must run status --check, not {other:?}"),
    };
    let seconds = |key: &str, default: i64| probe[key].as_i64().unwrap_or(default);
    let (period, threshold) = (seconds("periodSeconds", 10), seconds("failureThreshold", 3));
    assert!(
        period * threshold >= 120,
        "one slow probe must not restart the service"
    );
    assert!(seconds("timeoutSeconds", 1) >= 5, "room for a busy node");
    assert!(
        grace as i64 + period * threshold <= 3600,
        "a hang is noticed within the hour"
    );
}

/// The probes' command lines, as the binary parses them.
fn probe(container: &Value, name: &str) -> source_aws_billing::cli::Action {
    let command: Vec<String> = container[name]["exec"]["command"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{name}.exec.command"))
        .iter()
        .map(|v| text(v, "exec.command").to_string())
        .collect();
    assert_eq!(command[0], "/source-aws-billing");
    source_aws_billing::cli::parse(&command[1..])
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .action
}

#[test]
fn health_is_the_readiness_probe_so_a_failed_pull_never_restarts_the_pod() {
    use source_aws_billing::cli::Action;
    let container = container(&only("Deployment"));
    assert!(matches!(
        probe(&container, "readinessProbe"),
        Action::Status { healthy: true, .. }
    ));
    assert!(matches!(
        probe(&container, "livenessProbe"),
        Action::Status {
            check: true,
            healthy: false,
            ..
        }
    ));
    assert!(container["startupProbe"].is_null());
}
