//! A schema repository reached over SSH, as a company's private one is: OpenSSH's `sshd` on a
//! loopback port with a throwaway host key, the gateway holding a deploy key and a `known_hosts`
//! that lists the host key. The registry syncs and serves over SSH; when the server shows another
//! host key (a changed key, or a server in the middle), the sync is refused with a reason naming
//! `registry.known_hosts_file`, and the commit served before goes on being served.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{answer, valid_order, GitRepo, Process, ORDER_SCHEMA};
use tempfile::TempDir;

/// An ed25519 key pair made by `ssh-keygen` at `path` (and `path.pub`).
fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs (scripts/test installs openssh)");
    assert!(status.success());
}

/// `sshd` on a loopback port, letting the deploy key in as the current user.
struct Sshd {
    child: Child,
    dir: PathBuf,
}

impl Sshd {
    fn start(dir: &Path, host_key: &Path, port: u16) -> Self {
        // sshd run as root wants its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let config = dir.join(format!("sshd_config_{port}"));
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\n\
                 AuthorizedKeysFile {}\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin prohibit-password\n",
                host_key.display(),
                dir.join("sshd.pid").display(),
                dir.join("authorized_keys").display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("sshd_{port}.log"))).unwrap())
            .spawn()
            .expect("sshd starts (scripts/test installs openssh-server)");
        let sshd = Self {
            child,
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen: {}",
                std::fs::read_to_string(sshd.dir.join(format!("sshd_{port}.log")))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sshd
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The `known_hosts` line for `port` with the public key of `host_key`.
fn known_host(port: u16, host_key: &Path) -> String {
    let public = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
    let mut fields = public.split_whitespace();
    let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
    format!("[127.0.0.1]:{port} {kind} {key}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_syncs_over_ssh_and_refuses_a_changed_host_key() {
    let keys = TempDir::new().unwrap();
    let (host_a, host_b, deploy) = (
        keys.path().join("host_a"),
        keys.path().join("host_b"),
        keys.path().join("deploy"),
    );
    for key in [&host_a, &host_b, &deploy] {
        keygen(key);
    }
    std::fs::copy(
        deploy.with_extension("pub"),
        keys.path().join("authorized_keys"),
    )
    .unwrap();
    let port = common::brokers::free_port();
    let sshd = Sshd::start(keys.path(), &host_a, port);
    let known_hosts = keys.path().join("known_hosts");
    std::fs::write(&known_hosts, known_host(port, &host_a)).unwrap();

    let repo = GitRepo::new(&[
        ("schemas/orders/v1.json", ORDER_SCHEMA),
        (
            "stations.toml",
            "[[station]]\nname = \"orders\"\nschema = \"orders\"\n",
        ),
    ]);
    let url = format!("ssh://{}@127.0.0.1:{port}{}", user(), repo.path().display());
    let data = TempDir::new().unwrap();
    let env = [
        ("SLUICE_REGISTRY_SOURCE", url.clone()),
        ("SLUICE_REGISTRY_SSH_KEY_FILE", deploy.display().to_string()),
        (
            "SLUICE_REGISTRY_KNOWN_HOSTS_FILE",
            known_hosts.display().to_string(),
        ),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let gw = Process::serve_with_env(repo.path(), data.path(), &env);
    let base = gw.base();
    let first = repo.head();
    let (_, served) = gw.get("/v1/registry/status").await;
    assert_eq!(served["serving_commit"], first.as_str(), "{served}");
    let produced = reqwest::Client::new()
        .post(format!("{base}/v1/stations/orders/messages"))
        .json(&valid_order("over-ssh"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer(produced).await.0, 201);

    // The server now shows another host key: the next sync is refused, naming the file.
    drop(sshd);
    let _sshd = Sshd::start(keys.path(), &host_b, port);
    repo.write(
        "schemas/orders/v2.json",
        &ORDER_SCHEMA.replace("\"minimum\": 1", "\"minimum\": 0"),
    );
    repo.commit("orders v2");
    let synced = reqwest::Client::new()
        .post(format!("{base}/v1/registry/sync"))
        .send()
        .await
        .unwrap();
    let (status_code, body) = answer(synced).await;
    assert_eq!(status_code, 503, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("registry.known_hosts_file") && message.contains(&port.to_string()),
        "{body}"
    );
    let (_, after) = gw.get("/v1/registry/status").await;
    assert_eq!(after["serving_commit"], first.as_str(), "{after}");
    // The deploy key's private part (a line of it) shows nowhere.
    let private = std::fs::read_to_string(&deploy).unwrap();
    gw.assert_secrets_kept(&[private.lines().nth(1).unwrap()])
        .await;
}
