//! Debian's `docker-registry` (distribution 2.8) on 127.0.0.1 for tests, optionally with
//! htpasswd (bcrypt) Basic auth and TLS; killed on drop.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("swarm-test-{name}-"))
        .tempdir()
        .unwrap()
}

/// A `docker-registry serve` on 127.0.0.1, killed on drop.
pub struct Registry {
    pub child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Start a registry; with `users`, it requires htpasswd (bcrypt) Basic auth.
    pub fn start(users: &[(&str, &str)]) -> Registry {
        Registry::start_with(users, None)
    }

    /// Start a registry that speaks only TLS, with this certificate and key (PEM).
    pub fn start_tls(users: &[(&str, &str)], certificate: &Path, key: &Path) -> Registry {
        Registry::start_with(users, Some((certificate, key)))
    }

    fn start_with(users: &[(&str, &str)], tls: Option<(&Path, &Path)>) -> Registry {
        assert!(
            Path::new("/usr/bin/docker-registry").exists(),
            "docker-registry is not installed (apt-get install docker-registry)"
        );
        let dir = scratch("registry");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
             delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if let Some((certificate, key)) = tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                certificate.display(),
                key.display()
            ));
        }
        if !users.is_empty() {
            let mut htpasswd = String::new();
            for (user, password) in users {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("htpasswd (apt-get install apache2-utils)");
                assert!(out.status.success());
                htpasswd.push_str(String::from_utf8(out.stdout).unwrap().trim());
                htpasswd.push('\n');
            }
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, htpasswd).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: swarm-test\n    path: {}\n",
                path.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        let registry = Registry {
            child,
            addr,
            _dir: dir,
        };
        for _ in 0..200 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return registry;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("docker-registry did not listen on {addr}");
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
