//! Shared helpers for the integration tests: a schema repository in a temp dir, a gateway served
//! in-process on an ephemeral port, the real `sluice` binary as a child process, and small HTTP
//! helpers. Every test drives Sluice as a client would; `source` reads the crate's own files for
//! the tests of its structure (`tests/layers.rs`, `tests/circles.rs`).

#![allow(dead_code)]

pub mod brokers;
pub mod pki;
pub mod source;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// A schema repository written into a temp dir.
pub struct Repo {
    pub dir: TempDir,
}

impl AsRef<Path> for Repo {
    fn as_ref(&self) -> &Path {
        self.dir.path()
    }
}

/// A committed fixture repository under `tests/fixtures/`.
pub fn fixture(path: &str) -> PathBuf {
    project_root().join("tests/fixtures").join(path)
}

/// The project's root, read when the test runs: cargo sets `CARGO_MANIFEST_DIR` for test
/// processes, and reading it at run time keeps a shared `CARGO_TARGET_DIR` correct for every
/// clone (the compile-time value names whichever clone built the binary first).
fn project_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The bytes of a committed fixture file, e.g. `fixture_bytes("avro/messages/click_valid.avro")`.
pub fn fixture_bytes(path: &str) -> Vec<u8> {
    std::fs::read(fixture(path)).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// The reason of the first violation in a 422 body (empty if there is none).
pub fn first_reason(body: &Value) -> String {
    body["violations"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

impl Repo {
    pub fn new(files: &[(&str, &str)]) -> Self {
        let repo = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        for (path, contents) in files {
            repo.write(path, contents);
        }
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, path: &str, contents: &str) {
        write_file(self.dir.path(), path, contents);
    }
}

/// Writes `contents` to `path` below `root`, making its folders.
fn write_file(root: &Path, path: &str, contents: &str) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, contents).unwrap();
}

/// A git repository in a temp dir, changed by commits as a schema author would (with the `git`
/// command, as authors do; Sluice itself reads it through libgit2).
pub struct GitRepo {
    pub dir: TempDir,
}

impl AsRef<Path> for GitRepo {
    fn as_ref(&self) -> &Path {
        self.dir.path()
    }
}

impl GitRepo {
    /// A repository on branch `main` whose first commit holds `files`.
    pub fn new(files: &[(&str, &str)]) -> Self {
        let repo = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.email", "author@example.com"]);
        repo.git(&["config", "user.name", "Schema Author"]);
        for (path, contents) in files {
            repo.write(path, contents);
        }
        repo.commit("first schemas");
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, path: &str, contents: &str) {
        write_file(self.dir.path(), path, contents);
    }

    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.dir.path().join(path)).unwrap();
    }

    /// Commits everything in the working tree; returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    /// Runs `git` in the repository; returns its trimmed output, failing the test on error.
    pub fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("the git command is installed (scripts/test installs it)");
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }
}

/// A gateway served in-process on 127.0.0.1:0 with a temp data dir.
pub struct Gateway {
    pub base: String,
    /// The gRPC API's address, as `http://127.0.0.1:PORT`.
    pub grpc: String,
    pub client: reqwest::Client,
    pub data: TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    /// Starts a gateway on `repo` with the given extra config TOML (sections and keys).
    pub async fn start(repo: impl AsRef<Path>, extra_config: &str) -> Self {
        let data = tempfile::tempdir().unwrap();
        Self::start_with_data(repo, extra_config, data).await
    }

    pub async fn start_with_data(
        repo: impl AsRef<Path>,
        extra_config: &str,
        data: TempDir,
    ) -> Self {
        Self::launch(repo, extra_config, data, None).await
    }

    /// Starts a gateway serving TLS with `certificate`; `base` is `https://localhost:<port>` and
    /// `client` trusts the certificate.
    pub async fn start_tls(
        repo: impl AsRef<Path>,
        extra_config: &str,
        certificate: &TestCertificate,
    ) -> Self {
        let data = tempfile::tempdir().unwrap();
        Self::launch(repo, extra_config, data, Some(certificate)).await
    }

    async fn launch(
        repo: impl AsRef<Path>,
        extra_config: &str,
        data: TempDir,
        tls: Option<&TestCertificate>,
    ) -> Self {
        let mut table: toml::Table = toml::from_str(extra_config).expect("extra config is TOML");
        let mut set = |section: &str, key: &str, value: String| {
            table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .expect("a config section is a table")
                .insert(key.to_owned(), toml::Value::String(value));
        };
        set("registry", "source", repo.as_ref().display().to_string());
        set(
            "storage",
            "dir",
            data.path().join("store").display().to_string(),
        );
        if let Some(certificate) = tls {
            set(
                "server",
                "tls_cert",
                certificate.cert_file().display().to_string(),
            );
            set(
                "server",
                "tls_key",
                certificate.key_file().display().to_string(),
            );
        }
        let config_text = toml::to_string(&table).unwrap();
        let config_file = data.path().join("sluice.toml");
        std::fs::write(&config_file, config_text).unwrap();
        let config = sluice::config::Config::load(&config_file, true, std::iter::empty()).unwrap();
        let listeners = sluice::server::Listeners {
            http: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            grpc: Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
        };
        let addr = listeners.http.local_addr().unwrap();
        let grpc_addr = listeners.grpc.as_ref().unwrap().local_addr().unwrap();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            sluice::server::serve(config, listeners, async {
                let _ = shutdown_rx.await;
            })
            .await
            .expect("gateway serves");
        });
        let (scheme, host, client) = match tls {
            None => ("http", addr.ip().to_string(), reqwest::Client::new()),
            Some(certificate) => ("https", "localhost".to_owned(), certificate.client()),
        };
        let gateway = Self {
            base: format!("{scheme}://{host}:{}", addr.port()),
            grpc: format!("{scheme}://{host}:{}", grpc_addr.port()),
            client,
            data,
            shutdown: Some(shutdown_tx),
            task: Some(task),
        };
        // The listener is bound before the registry loads; the first answer comes after it has.
        let (status, _) = gateway.get("/healthz").await;
        assert_eq!(status, 200, "the gateway answers once started");
        gateway
    }

    /// Stops serving and waits for the server to finish; returns the data dir for a restart.
    pub async fn stop(self) -> TempDir {
        let Gateway {
            data,
            shutdown,
            task,
            ..
        } = self;
        if let Some(tx) = shutdown {
            let _ = tx.send(());
        }
        if let Some(task) = task {
            task.await.unwrap();
        }
        data
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a JSON body; returns status and parsed JSON answer.
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_bytes(path, "application/json", body.to_string().into_bytes(), &[])
            .await
    }

    /// POSTs raw bytes with a content type and extra headers.
    pub async fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        post_to(&self.client, &self.url(path), content_type, body, headers).await
    }

    /// Produces the bytes of fixture file `path` to `station` with `content_type`.
    pub async fn send_fixture(
        &self,
        station: &str,
        content_type: &str,
        path: &str,
    ) -> (u16, Value) {
        self.post_bytes(
            &format!("/v1/stations/{station}/messages"),
            content_type,
            fixture_bytes(path),
            &[],
        )
        .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        answer(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        get_text(&self.client, &self.url("/metrics")).await
    }

    /// Produces one JSON message to `station`.
    pub async fn produce(&self, station: &str, message: &Value) -> (u16, Value) {
        self.post_json(&format!("/v1/stations/{station}/messages"), message)
            .await
    }

    /// Consumes without waiting.
    pub async fn consume(&self, station: &str, group: &str, max: usize) -> Vec<Value> {
        let (status, body) = self
            .get(&format!(
                "/v1/stations/{station}/messages?group={group}&max={max}"
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        body["messages"].as_array().unwrap().clone()
    }

    /// Produces valid orders `{prefix}-0`..`{prefix}-{count-1}`, each answered 201; their ids.
    pub async fn produce_orders(&self, station: &str, prefix: &str, count: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(count);
        for i in 0..count {
            let id = format!("{prefix}-{i}");
            let (status, body) = self.produce(station, &valid_order(&id)).await;
            assert_eq!(status, 201, "{id}: {body}");
            ids.push(id);
        }
        ids
    }

    /// Posts one NDJSON batch of `count` orders `m-0`, `m-1`... in which every `every`th is invalid
    /// (`qty: 0`), and checks the answer: one result per message, in order, 201s with consecutive
    /// offsets and 422s where the invalid ones were.
    pub async fn produce_mixed_batch(
        &self,
        station: &str,
        count: usize,
        every: usize,
    ) -> MixedBatch {
        let is_invalid = |i: usize| i % every == every - 1;
        let (mut body, mut valid, mut invalid) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..count {
            let id = format!("m-{i}");
            let mut order = valid_order(&id);
            if is_invalid(i) {
                order["items"][0]["qty"] = 0.into();
                invalid.push(id);
            } else {
                valid.push(id);
            }
            body.extend_from_slice(serde_json::json!({ "value": order }).to_string().as_bytes());
            body.push(b'\n');
        }
        let (status, answer) = self
            .post_bytes(
                &format!("/v1/stations/{station}/messages:batch"),
                "application/x-ndjson",
                body,
                &[],
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        let results = answer["results"].as_array().expect("per-message results");
        assert_eq!(results.len(), count, "{answer}");
        let mut offsets = Vec::new();
        for (i, result) in results.iter().enumerate() {
            let expected = if is_invalid(i) { 422 } else { 201 };
            assert_eq!(result["status"], expected, "message {i}: {result}");
            if !is_invalid(i) {
                offsets.push(result["offset"].as_u64().expect("an offset"));
            }
        }
        let first_offset = offsets[0];
        let consecutive: Vec<u64> = (first_offset..first_offset + offsets.len() as u64).collect();
        assert_eq!(
            offsets, consecutive,
            "valid messages stored in order, consecutively"
        );
        MixedBatch {
            first_offset,
            valid,
            invalid,
        }
    }

    /// Produces one order and expects `503 backend_unavailable` within `bound`: an answer, not a
    /// hang.
    pub async fn expect_backend_unavailable(&self, station: &str, bound: Duration) {
        let started = Instant::now();
        let (status, body) = self.produce(station, &valid_order("unavailable")).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"], "backend_unavailable");
        assert!(
            started.elapsed() < bound,
            "answered within the request timeout, not a hang: {:?}",
            started.elapsed()
        );
    }

    /// Waits until `/readyz` answers `status`.
    pub async fn wait_readiness(&self, status: u16) {
        eventually(Duration::from_secs(20), || async {
            (self.get("/readyz").await.0 == status).then_some(())
        })
        .await
    }

    /// Produces fresh orders `{prefix}-1`, `{prefix}-2`... until one is accepted (a backend
    /// coming back); returns the accepted one's id.
    pub async fn produce_until_accepted(&self, station: &str, prefix: &str) -> String {
        let mut n = 0;
        eventually(Duration::from_secs(60), || {
            n += 1;
            let id = format!("{prefix}-{n}");
            async move {
                let (status, _) = self.produce(station, &valid_order(&id)).await;
                (status == 201).then_some(id)
            }
        })
        .await
    }

    pub async fn ack(&self, station: &str, group: &str, offsets: &[u64]) -> Value {
        let (status, body) = self
            .post_json(
                &format!("/v1/stations/{station}/ack"),
                &serde_json::json!({ "group": group, "offsets": offsets }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// POSTs `body` to `url` with a content type and extra headers: the status and the JSON body.
pub async fn post_to(
    client: &reqwest::Client,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = client
        .post(url)
        .header("content-type", content_type)
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    answer(request.send().await.unwrap()).await
}

/// The text of GET `url`.
pub async fn get_text(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// Status and JSON body of a response; a body that is not JSON fails the test.
pub async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("answer with status {status} is not JSON ({e}): {text:?}"));
    (status, body)
}

/// Polls `check` until it returns Some, or fails after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "condition not reached in {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A `sluice` binary running as a child process.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    /// Where the process's log goes (appended to by every start on the same data dir).
    pub log: PathBuf,
    /// Where this start's lines begin in the log.
    log_from: usize,
    /// The configuration file and the environment it was started with.
    config: PathBuf,
    env: Vec<(String, String)>,
    /// The `sluice` executable it runs.
    binary: PathBuf,
}

impl Process {
    /// Starts `sluice serve` with the repository, data dir and a free port; waits until healthy.
    pub fn serve(repo: &Path, data: &Path) -> Self {
        Self::serve_with_env(repo, data, &[])
    }

    /// [`Process::serve`] with extra environment variables. A port taken by another test between
    /// picking it and binding it is picked again.
    pub fn serve_with_env(repo: &Path, data: &Path, env: &[(&str, &str)]) -> Self {
        Self::serve_with_config(repo, data, "", env)
    }

    /// [`Process::serve_with_env`] with `config` as the configuration file.
    pub fn serve_with_config(repo: &Path, data: &Path, config: &str, env: &[(&str, &str)]) -> Self {
        Self::serve_binary(&sluice_binary(), repo, data, config, env)
    }

    /// The release build of `sluice` ([`release_binary`]), serving as
    /// [`Process::serve_with_config`] does.
    pub fn serve_release(repo: &Path, data: &Path, config: &str, env: &[(&str, &str)]) -> Self {
        Self::serve_binary(&release_binary(), repo, data, config, env)
    }

    fn serve_binary(
        binary: &Path,
        repo: &Path,
        data: &Path,
        config: &str,
        env: &[(&str, &str)],
    ) -> Self {
        for _ in 0..3 {
            let mut process = Self::spawn(binary, repo, data, config, env);
            match process.wait_listening() {
                Ok(()) => return process,
                Err(log) if log.contains("cannot listen on") => continue,
                Err(log) => panic!("{log}"),
            }
        }
        panic!("no free ports for sluice after three tries");
    }

    fn spawn(
        binary: &Path,
        repo: &Path,
        data: &Path,
        config_text: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let grpc_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = data.join("sluice.toml");
        std::fs::write(&config, config_text).unwrap();
        let log = data.join("sluice.log");
        let log_from = std::fs::metadata(&log).map_or(0, |m| m.len()) as usize;
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(binary)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("SLUICE_SERVER_HTTP", addr.to_string())
            .env("SLUICE_SERVER_GRPC", grpc_addr.to_string())
            .env("SLUICE_REGISTRY_SOURCE", repo)
            .env("SLUICE_STORAGE_DIR", data.join("store"))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap();
        Self {
            child,
            addr,
            grpc_addr,
            log,
            log_from,
            config,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            binary: binary.to_owned(),
        }
    }

    /// Waits until the HTTP and gRPC ports accept connections (the gateway binds them one after
    /// the other). If the process exits first, or takes longer
    /// than a minute (a loaded machine can be slow to start a debug build), the error is what
    /// happened with the log of this start.
    fn wait_listening(&mut self) -> Result<(), String> {
        let from = self.log_from;
        let this_start = |log: &Path| {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            text.get(from.min(text.len())..)
                .unwrap_or_default()
                .to_owned()
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(self.addr).is_ok()
                && std::net::TcpStream::connect(self.grpc_addr).is_ok()
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!(
                    "sluice exited ({status}) before listening on {}:\n{}",
                    self.addr,
                    this_start(&self.log)
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        Err(format!(
            "sluice did not start listening on {} within a minute:\n{}",
            self.addr,
            this_start(&self.log)
        ))
    }

    /// No secret of `secrets` in anything the gateway shows: its log, `/readyz`, `/metrics`, what
    /// the dashboard reads (stations, dead letters, the registry's status) and the configuration
    /// `sluice config` prints with the same file and environment.
    pub async fn assert_secrets_kept(&self, secrets: &[&str]) {
        let log = std::fs::read_to_string(&self.log).unwrap();
        let mut shown = vec![("log", log)];
        for path in [
            "/readyz",
            "/v1/stations",
            "/v1/registry/status",
            "/metrics",
            "/",
        ] {
            let response = reqwest::get(format!("{}{path}", self.base()))
                .await
                .unwrap();
            shown.push((path, response.text().await.unwrap()));
        }
        let (_, stations) = self.get("/v1/stations").await;
        for station in stations["stations"].as_array().into_iter().flatten() {
            let name = station["name"].as_str().unwrap_or_default();
            let response = reqwest::get(format!("{}/v1/stations/{name}/dlq", self.base()))
                .await
                .unwrap();
            shown.push(("a station's dead letters", response.text().await.unwrap()));
        }
        let dump = Command::new(&self.binary)
            .arg("config")
            .arg("--config")
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(dump.status.success(), "sluice config: {dump:?}");
        shown.push(("sluice config", String::from_utf8(dump.stdout).unwrap()));
        for secret in secrets {
            for (what, text) in &shown {
                assert!(!text.contains(secret), "{what} shows a secret");
            }
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// GET `path`: the status and the JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        answer(
            reqwest::get(format!("{}{path}", self.base()))
                .await
                .unwrap(),
        )
        .await
    }

    /// Waits up to a minute until `/readyz` answers `status` with a body `accept` takes; that
    /// body. Failing, shows this process's log.
    pub async fn readiness(&self, status: u16, accept: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = reqwest::get(format!("{}/readyz", self.base())).await {
                let (got, body) = answer(response).await;
                if got == status && accept(&body) {
                    return body;
                }
                if Instant::now() > deadline {
                    let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                    panic!("/readyz stayed {got}: {body}\n{log}");
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then waits up to `within` for the process to exit; its exit status.
    pub fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "sluice did not exit within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn sluice_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice"))
}

/// The release build of `sluice`: `SLUICE_RELEASE_BIN`, or `release/sluice` beside the debug
/// build the tests run with. `scripts/test` builds it first; a test that needs it fails when it
/// is missing or older than a file of `src/` (it would judge code that is not this code).
pub fn release_binary() -> PathBuf {
    let release = std::env::var_os("SLUICE_RELEASE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| sluice_binary().parent().unwrap().join("../release/sluice"));
    let built = std::fs::metadata(&release)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "no release build of sluice at {}: run `cargo build --release --bin sluice` (scripts/test does)",
                release.display()
            )
        });
    let newest = newest_change(&project_root().join("src"));
    assert!(
        newest <= built,
        "the release build at {} is older than the code in src/: run `cargo build --release --bin sluice`",
        release.display()
    );
    release
}

/// When a file under `dir` last changed.
fn newest_change(dir: &Path) -> std::time::SystemTime {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let metadata = entry.metadata().unwrap();
            match metadata.is_dir() {
                true => newest_change(&entry.path()),
                false => metadata.modified().unwrap(),
            }
        })
        .max()
        .unwrap_or(std::time::UNIX_EPOCH)
}

/// `sluice check DIR ARGS…`: whether it passed, and what it printed (stdout, then stderr).
pub fn sluice_check(dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(sluice_binary())
        .arg("check")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), printed)
}

/// A gRPC `Produce` request of `order` as JSON to `station`.
pub fn order_request(station: &str, order: &Value) -> sluice::ingress::grpc::proto::ProduceRequest {
    sluice::ingress::grpc::proto::ProduceRequest {
        station: station.to_owned(),
        payload: bytes::Bytes::from(serde_json::to_vec(order).unwrap()),
        content_type: "application/json".to_owned(),
        ..Default::default()
    }
}

/// The outcome of each of `requests`, sent on one gRPC `ProduceStream` to `gw`; each result must
/// come in the order of its request.
pub async fn produce_stream(
    gw: &Gateway,
    requests: Vec<sluice::ingress::grpc::proto::ProduceRequest>,
) -> Vec<sluice::ingress::grpc::proto::produce_result::Outcome> {
    use sluice::ingress::grpc::proto::gateway_client::GatewayClient;
    let mut grpc = GatewayClient::connect(gw.grpc.clone()).await.unwrap();
    let mut results = grpc
        .produce_stream(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut outcomes = Vec::new();
    while let Some(result) = results.message().await.unwrap() {
        assert_eq!(result.index, outcomes.len() as u64, "results come in order");
        outcomes.push(result.outcome.unwrap());
    }
    outcomes
}

/// `schedules.toml` with one schedule, `every-second`, producing an order to `station` each
/// second with header `team = "ops"`.
pub fn every_second_schedule(station: &str) -> String {
    format!(
        "[[schedule]]\nname = \"every-second\"\nstation = \"{station}\"\nevery = \"1s\"\n\
         value = {{ order_id = \"tick\", items = [{{ qty = 1 }}] }}\nheaders = {{ team = \"ops\" }}\n"
    )
}

use brokers::free_port;

/// The JSON Schema used by most tests: an order with items of positive quantity.
pub const ORDER_SCHEMA: &str = r#"{
  "type": "object",
  "required": ["order_id", "items"],
  "properties": {
    "order_id": {"type": "string"},
    "items": {"type": "array", "items": {
      "type": "object", "required": ["qty"],
      "properties": {"qty": {"type": "integer", "minimum": 1}}
    }}
  }
}"#;

/// A repository with an `orders` station on [`ORDER_SCHEMA`] and a pass-through `raw` station.
pub fn orders_repo(station_extra: &str) -> Repo {
    Repo::new(&[
        ("orders/v1.json", ORDER_SCHEMA),
        (
            "stations.toml",
            &format!(
                "[[station]]\nname = \"orders\"\nschema = \"orders\"\n{station_extra}\n\n[[station]]\nname = \"raw\"\n"
            ),
        ),
    ])
}

/// What [`Gateway::produce_mixed_batch`] sent and was answered.
pub struct MixedBatch {
    /// The offset answered for the first valid order.
    pub first_offset: u64,
    /// Ids of the valid orders, in order.
    pub valid: Vec<String>,
    /// Ids of the invalid orders, in order.
    pub invalid: Vec<String>,
}

pub fn valid_order(id: &str) -> Value {
    serde_json::json!({"order_id": id, "items": [{"qty": 1}]})
}

/// A file of this project, by path from its root.
pub fn project_file(path: &str) -> PathBuf {
    project_root().join(path)
}

/// Runs the Python client `script` (a file of this project) with `args` on a blocking thread, so
/// a gateway served in-process on the test's runtime answers it; its standard output. Fails the
/// test if the client fails; `installs` names what scripts/test installs for it.
pub async fn python_client(script: &str, args: Vec<String>, installs: &str) -> Vec<u8> {
    let script = project_file(script);
    let installs = installs.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&script)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("python3 runs (scripts/test installs {installs}): {e}"))
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the Python client failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A self-signed certificate for `localhost` and `127.0.0.1`, written as PEM files.
pub struct TestCertificate {
    dir: TempDir,
    pub cert_pem: String,
}

impl TestCertificate {
    pub fn new() -> Self {
        let generated =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert_pem = generated.cert.pem();
        std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
        std::fs::write(
            dir.path().join("key.pem"),
            generated.signing_key.serialize_pem(),
        )
        .unwrap();
        Self { dir, cert_pem }
    }

    pub fn cert_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// An HTTP client that trusts only this certificate.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(self.cert_pem.as_bytes()).unwrap()])
            .build()
            .unwrap()
    }
}
