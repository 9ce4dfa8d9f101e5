//! The SSH host-key check of a git source: the key the server shows must be one that
//! `registry.known_hosts_file` lists for that host (OpenSSH's format: `host[,host…] type key`,
//! `[host]:port` for a port other than 22). Hashed host names (`ssh-keyscan -H`) are not read.

use std::path::Path;

use base64::engine::{general_purpose::STANDARD, Engine};

/// Whether `known_hosts` (the file's text) lists `key` (the raw key blob the server showed) for
/// `host` on `port`.
pub fn lists(known_hosts: &str, host: &str, port: u16, key: &[u8]) -> bool {
    let name = if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    };
    known_hosts
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('@'))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let hosts = fields.next()?;
            let _kind = fields.next()?;
            let blob = STANDARD.decode(fields.next()?).ok()?;
            Some((hosts, blob))
        })
        .any(|(hosts, blob)| hosts.split(',').any(|h| h == name) && blob == key)
}

/// Why the host key of `host:port` is refused, naming the file and how to fix it.
pub fn refusal(file: &Path, host: &str, port: u16) -> String {
    format!(
        "the SSH host key of {host} (port {port}) is not in registry.known_hosts_file ({}): an \
         unknown host, or one whose key changed; check the key, then add it \
         (ssh-keyscan -p {port} {host} >> {})",
        file.display(),
        file.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_counts_only_for_the_host_and_port_it_is_listed_for() {
        let key = b"\x00\x00\x00\x0bssh-ed25519-and-some-key-bytes";
        let encoded = STANDARD.encode(key);
        let file = format!(
            "# comment\n[127.0.0.1]:2222 ssh-ed25519 {encoded}\ngit.example.com,10.0.0.1 ssh-ed25519 {encoded}\n"
        );
        assert!(lists(&file, "127.0.0.1", 2222, key));
        assert!(!lists(&file, "127.0.0.1", 22, key));
        assert!(lists(&file, "git.example.com", 22, key));
        assert!(lists(&file, "10.0.0.1", 22, key));
        assert!(!lists(&file, "git.example.com", 22, b"another key"));
    }
}
