//! `examples/kubernetes/` cannot drift from the gateway: its config loads with the gateway's own
//! config types (with the Secret's tokens), its ports are the ones that config binds, its probe
//! paths answer on a running gateway, its mounts hold the files the config names, and the
//! Deployment, Service and PodDisruptionBudget agree with each other and with the image.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{orders_repo, project_file, Gateway};
use serde_json::Value;
use sluice::config::Config;

fn manifest(name: &str) -> Value {
    let path = project_file(&format!("examples/kubernetes/{name}"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn str_at<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value}"))
}

/// The container's mount of volume `name`.
fn mount_of<'v>(container: &'v Value, name: &str) -> &'v str {
    container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .map(|m| m["mountPath"].as_str().unwrap())
        .unwrap_or_else(|| panic!("no mount of volume {name}"))
}

/// The port number of the container's port named `name`.
fn port_named(container: &Value, name: &str) -> u16 {
    container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("no container port named {name}")) as u16
}

/// The config as the gateway loads it in a pod: the ConfigMap's file, the Secret's tokens at the
/// path the config names.
fn pod_config(configmap: &Value, secret: &Value) -> (Config, String) {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("sluice.toml");
    std::fs::write(&config_path, str_at(configmap, "/data/sluice.toml")).unwrap();
    let raw: toml::Table = toml::from_str(str_at(configmap, "/data/sluice.toml")).unwrap();
    let tokens_file = raw["auth"]["tokens_file"].as_str().unwrap().to_owned();
    let key = Path::new(&tokens_file)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    let tokens_path = dir.path().join(key);
    std::fs::write(&tokens_path, str_at(secret, &format!("/stringData/{key}"))).unwrap();
    let vars = [(
        "SLUICE_AUTH_TOKENS_FILE".to_owned(),
        tokens_path.display().to_string(),
    )];
    let config = Config::load(&config_path, true, vars).expect("the ConfigMap's config loads");
    (config, tokens_file)
}

#[tokio::test]
async fn the_kubernetes_example_matches_the_gateways_config_ports_probes_and_image() {
    let (configmap, secret) = (manifest("configmap.yaml"), manifest("secret.yaml"));
    let (deployment, service, pdb) = (
        manifest("deployment.yaml"),
        manifest("service.yaml"),
        manifest("pdb.yaml"),
    );
    let (config, tokens_file) = pod_config(&configmap, &secret);
    assert_eq!(config.auth.tokens.len(), 3, "the Secret's tokens load");
    config
        .check_bind_addresses()
        .expect("tokens let the gateway bind every interface");

    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "serve");
    let config_arg = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
    assert_eq!(
        Path::new(config_arg),
        Path::new(mount_of(container, "config")).join("sluice.toml"),
        "--config names the ConfigMap's file where it is mounted"
    );
    assert_eq!(
        Path::new(&tokens_file).parent().unwrap(),
        Path::new(mount_of(container, "tokens")),
        "auth.tokens_file is in the Secret's mount"
    );
    assert_eq!(Path::new(mount_of(container, "data")), config.storage.dir);
    assert_eq!(port_named(container, "http"), config.server.http.port());
    assert_eq!(port_named(container, "grpc"), config.server.grpc.port());
    let grace = deployment
        .pointer("/spec/template/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_u64)
        .unwrap();
    assert!(Duration::from_secs(grace) > config.server.shutdown_timeout);

    // The image the Deployment runs is the one scripts/image builds, as the user it runs as.
    let script = std::fs::read_to_string(project_file("scripts/image")).unwrap();
    let image = str_at(container, "/image");
    assert!(
        script.contains(&format!("tag=\"${{1:-{image}}}\"")),
        "{image}"
    );
    let containerfile = std::fs::read_to_string(project_file("deploy/Containerfile")).unwrap();
    let user = pod["spec"]["securityContext"]["runAsUser"]
        .as_u64()
        .unwrap();
    assert!(
        containerfile.contains(&format!("USER {user}:")),
        "runAsUser {user}"
    );
    for port in [config.server.http.port(), config.server.grpc.port()] {
        assert!(containerfile.contains(&port.to_string()), "EXPOSE {port}");
    }

    // Service and budget select the pods, and name ports the container has.
    let labels = &pod["metadata"]["labels"];
    assert_eq!(&deployment["spec"]["selector"]["matchLabels"], labels);
    assert_eq!(&service["spec"]["selector"], labels);
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);
    for port in service["spec"]["ports"].as_array().unwrap() {
        let target = port["targetPort"].as_str().unwrap();
        assert_eq!(
            port["port"].as_u64().unwrap() as u16,
            port_named(container, target)
        );
    }
    let replicas = deployment["spec"]["replicas"].as_u64().unwrap();
    let min_available = pdb["spec"]["minAvailable"].as_u64().unwrap();
    assert!(replicas >= 3 && min_available >= 1 && min_available < replicas);

    // The probes' paths answer on a running gateway: liveness 200, readiness 200 when ready.
    let gw = Gateway::start(orders_repo(""), "").await;
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(str_at(container, &format!("/{probe}/httpGet/port")), "http");
        let path = str_at(container, &format!("/{probe}/httpGet/path"));
        let answer = gw.client.get(gw.url(path)).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{probe} {path}");
    }
}
