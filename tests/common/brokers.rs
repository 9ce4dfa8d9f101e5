//! Real brokers for the backend tests: a Kafka-protocol broker (`tansu`) and `nats-server` with
//! JetStream, each started on a free loopback port and stopped when dropped. `scripts/test`
//! installs both; a test that cannot start them fails, it does not skip.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Finds `name` on PATH or in the usual install directories.
fn find_binary(name: &str, also: &[&str]) -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .collect()
        })
        .unwrap_or_default();
    candidates.extend(also.iter().map(PathBuf::from));
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin").join(name));
    }
    candidates
        .into_iter()
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not installed; scripts/test installs it"))
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited with {status} before listening on port {port}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what} did not listen on port {port} within 30 s");
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} failed");
}

fn stop(child: &mut Child) {
    signal(child, "CONT"); // a frozen process cannot die until it runs again
    let _ = child.kill();
    let _ = child.wait();
}

/// A `tansu` broker (Kafka protocol) storing its log in SQLite in a temporary directory, or in
/// memory.
pub struct Kafka {
    child: Child,
    pub port: u16,
    store: TempDir,
    launch: Launch,
}

/// How a [`Kafka`] broker is run, again the same way by [`Kafka::start_again`].
#[derive(Clone, Copy)]
struct Launch {
    engine: &'static str,
    /// The port clients are told to reach it at, when not its own (a proxy in front of it).
    advertised: Option<u16>,
    /// Clients must authenticate with SASL.
    authentication: bool,
}

const SQLITE: &str = "sqlite://tansu.db";

/// The `tansu` to run: `SLUICE_TEST_TANSU`, else the one `scripts/test` installs (built with
/// SQLite storage) at its default place, else the first on PATH.
fn tansu() -> PathBuf {
    if let Some(path) = std::env::var_os("SLUICE_TEST_TANSU") {
        return PathBuf::from(path);
    }
    let kept = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/sluice/tansu-0.6.0/bin/tansu"))
        .filter(|path| path.is_file());
    kept.unwrap_or_else(|| find_binary("tansu", &[]))
}

impl Kafka {
    pub fn start() -> Self {
        Self::launch(Launch {
            engine: SQLITE,
            advertised: None,
            authentication: false,
        })
    }

    /// With in-memory storage, for benchmarks and tests that only produce and read topics from
    /// their start (restarted, it starts empty). Each of tansu's storages has a fault the other
    /// lacks: in memory, a fetch from inside a produced batch skips the rest of that batch, so
    /// nothing that resumes a consumer group from a committed offset can run on it; on SQLite, a
    /// broker frozen while an idempotent producer's request is in flight answers every produce
    /// after it with an error.
    pub fn start_in_memory() -> Self {
        Self::launch(Launch {
            engine: "memory://tansu/",
            advertised: None,
            authentication: false,
        })
    }

    /// A broker that requires SASL authentication (`--authentication`), knowing `user` with
    /// `password` for SCRAM-SHA-256 and SCRAM-SHA-512 (tansu 0.6 checks SCRAM proofs against the
    /// credentials it stores; it has no PLAIN).
    pub fn start_with_user(user: &str, password: &str) -> Self {
        let mut kafka = Self::start();
        kafka.set_password(user, password);
        kafka
    }

    /// Gives `user` `password` (both SCRAM mechanisms) and restarts the broker requiring SASL.
    /// tansu changes users only through its Kafka API, which an authenticating listener keeps
    /// behind SASL: the change is made with the broker restarted without it, on the same storage.
    pub fn set_password(&mut self, user: &str, password: &str) {
        self.kill();
        self.launch.authentication = false;
        self.start_again();
        for mechanism in ["scram256", "scram512"] {
            let broker = format!("tcp://127.0.0.1:{}", self.port);
            let status = Command::new(tansu())
                .args([
                    "user",
                    "create",
                    "--broker",
                    &broker,
                    "--mechanism",
                    mechanism,
                ])
                .args([user, password])
                .stdout(Stdio::null())
                .status()
                .expect("tansu user create runs");
            assert!(
                status.success(),
                "tansu user create {user} ({mechanism}) failed"
            );
        }
        self.kill();
        self.launch.authentication = true;
        self.start_again();
    }

    /// A broker that tells clients to reach it at `advertised` (a proxy in front of it).
    pub fn start_behind(advertised: u16) -> Self {
        Self::launch(Launch {
            engine: SQLITE,
            advertised: Some(advertised),
            authentication: false,
        })
    }

    fn launch(launch: Launch) -> Self {
        let store = tempfile::tempdir().unwrap();
        let port = free_port();
        Self {
            child: Self::spawn(port, &store, launch),
            port,
            store,
            launch,
        }
    }

    fn spawn(port: u16, store: &TempDir, launch: Launch) -> Child {
        let url = format!("tcp://127.0.0.1:{port}");
        let advertised = format!("tcp://127.0.0.1:{}", launch.advertised.unwrap_or(port));
        let mut command = Command::new(tansu());
        command
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
            ])
            // Relative to the working directory: tansu joins the URL's path onto it.
            .args(["--storage-engine", launch.engine]);
        if launch.authentication {
            command.arg("--authentication");
        }
        let mut child = command
            .current_dir(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts");
        wait_listening(
            port,
            "tansu (with SQLite storage: scripts/test installs it)",
            &mut child,
        );
        child
    }

    /// The `[kafka] brokers` value.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGSTOP: the broker keeps its sockets and its data but answers nothing.
    pub fn freeze(&self) {
        signal(&self.child, "STOP");
    }

    /// SIGCONT: the frozen broker carries on.
    pub fn thaw(&self) {
        signal(&self.child, "CONT");
    }

    /// Kills the broker.
    pub fn kill(&mut self) {
        stop(&mut self.child);
    }

    /// Starts the broker again on the same port and storage (empty again, in memory), with its
    /// users.
    pub fn start_again(&mut self) {
        self.child = Self::spawn(self.port, &self.store, self.launch);
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A `nats-server` with JetStream on file storage, which survives a restart.
pub struct Nats {
    child: Child,
    pub port: u16,
    store: TempDir,
}

impl Nats {
    pub fn start() -> Self {
        let store = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Self::spawn(port, &store);
        Self { child, port, store }
    }

    /// A `nats-server` with JetStream run from `config`, nats-server's own configuration text
    /// (TLS, authorization), beside the port and store it is given here.
    pub fn start_with_config(config: &str) -> Self {
        let store = tempfile::tempdir().unwrap();
        let port = free_port();
        let file = store.path().join("nats.conf");
        let text = format!(
            "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: \"{}\" }}\n{config}\n",
            store.path().join("js").display()
        );
        std::fs::write(&file, text).unwrap();
        let log = store.path().join("nats.log");
        let mut child = Command::new(find_binary("nats-server", &["/usr/sbin/nats-server"]))
            .arg("-c")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("nats-server starts");
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_listening(port, "nats-server", &mut child)
        })) {
            eprintln!("{}", std::fs::read_to_string(&log).unwrap_or_default());
            std::panic::resume_unwind(panic);
        }
        Self { child, port, store }
    }

    /// Asks the server to read its configuration file again (SIGHUP).
    pub fn reload(&self) {
        signal(&self.child, "HUP");
    }

    /// The configuration file of a server from [`Nats::start_with_config`].
    pub fn config_file(&self) -> PathBuf {
        self.store.path().join("nats.conf")
    }

    fn spawn(port: u16, store: &TempDir) -> Child {
        let mut child = Command::new(find_binary("nats-server", &["/usr/sbin/nats-server"]))
            .args([
                "--jetstream",
                "--addr",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .arg("--store_dir")
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        wait_listening(port, "nats-server", &mut child);
        child
    }

    /// The `[nats] url` value.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server; its JetStream data stays on disk for [`Nats::start_again`].
    pub fn kill(&mut self) {
        stop(&mut self.child);
    }

    /// Starts the server again on the same port and store.
    pub fn start_again(&mut self) {
        self.child = Self::spawn(self.port, &self.store);
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Three `nats-server`s clustered over routes on loopback ports, JetStream on each with a store of
/// its own, so streams can have three replicas and survive losing a node.
pub struct NatsCluster {
    nodes: Vec<ClusterNode>,
}

struct ClusterNode {
    name: String,
    port: u16,
    cluster_port: u16,
    store: TempDir,
    child: Option<Child>,
}

impl NatsCluster {
    pub fn start() -> Self {
        let mut nodes: Vec<ClusterNode> = (1..=3)
            .map(|i| ClusterNode {
                name: format!("n{i}"),
                port: free_port(),
                cluster_port: free_port(),
                store: tempfile::tempdir().unwrap(),
                child: None,
            })
            .collect();
        let routes: Vec<String> = nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.cluster_port))
            .collect();
        for node in &mut nodes {
            node.child = Some(Self::spawn(node, &routes));
        }
        Self { nodes }
    }

    fn spawn(node: &ClusterNode, routes: &[String]) -> Child {
        let others: Vec<&str> = routes
            .iter()
            .filter(|r| !r.ends_with(&format!(":{}", node.cluster_port)))
            .map(String::as_str)
            .collect();
        let mut child = Command::new(find_binary("nats-server", &["/usr/sbin/nats-server"]))
            .args(["--jetstream", "--addr", "127.0.0.1"])
            .args(["--port", &node.port.to_string()])
            .args(["--server_name", &node.name, "--cluster_name", "sluice"])
            .args([
                "--cluster",
                &format!("nats://127.0.0.1:{}", node.cluster_port),
            ])
            .args(["--routes", &others.join(",")])
            .arg("--store_dir")
            .arg(node.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        wait_listening(node.port, "nats-server", &mut child);
        child
    }

    /// The `[nats] url` value: every node, comma-separated.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The index of the node called `name` (`n1`...).
    pub fn node_named(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// SIGKILL node `i`: its JetStream data stays on disk for [`NatsCluster::restart`].
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again, on its ports and store.
    pub fn restart(&mut self, i: usize) {
        let routes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.cluster_port))
            .collect();
        let child = Self::spawn(&self.nodes[i], &routes);
        self.nodes[i].child = Some(child);
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
