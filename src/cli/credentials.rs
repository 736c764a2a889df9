//! The CLI's credential file: docker's `config.json` shape, `{"auths": {"host:port":
//! {"auth": "base64(user:password)"}}}`, at `$SWARM_CONFIG/config.json`, else
//! `~/.swarm/config.json`; mode 0600 in a 0700 directory, replaced atomically.
//!
//! `swarm login` writes an entry once the daemon has checked it with the registry,
//! `swarm logout` removes it, and `swarm image pull|push` send the entry of the image's
//! registry in `X-Registry-Auth`. Keys are matched by the registry they name, so docker's
//! `https://index.docker.io/v1/` is Docker Hub's entry, as it is for docker. Other keys of
//! the file (a docker config copied over) are kept as they are.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};

use crate::image::reference::{DEFAULT_DOMAIN, registry_of_server};
use crate::types::auth::AuthConfig;

/// The key docker gives Docker Hub's entry.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

pub struct CredentialFile {
    path: PathBuf,
}

impl CredentialFile {
    /// `$SWARM_CONFIG/config.json`, else `$HOME/.swarm/config.json`.
    pub fn locate() -> Result<CredentialFile> {
        let dir = match std::env::var_os("SWARM_CONFIG").filter(|d| !d.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
                Some(home) => Path::new(&home).join(".swarm"),
                None => bail!("cannot find the credential file: set $HOME or $SWARM_CONFIG"),
            },
        };
        Ok(CredentialFile::at(dir.join("config.json")))
    }

    pub fn at(path: impl Into<PathBuf>) -> CredentialFile {
        CredentialFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file as JSON; an empty object when there is none.
    fn load(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(e).with_context(|| format!("read {}", self.path.display())),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Default::default());
        }
        match serde_json::from_slice(&bytes) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            _ => bail!("{} is not a JSON object", self.path.display()),
        }
    }

    /// Write the file: a 0600 temporary file beside it, synced, renamed over it.
    fn save(&self, map: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("create {}", dir.display()))?;
        let tmp = self
            .path
            .with_extension(format!("json.tmp-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            let mut text = serde_json::to_vec_pretty(map).map_err(std::io::Error::other)?;
            text.push(b'\n');
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            anyhow::Error::new(e).context(format!("write {}", self.path.display()))
        })
    }

    /// The keys of `auths` that name `registry`.
    fn keys_for(auths: &serde_json::Map<String, serde_json::Value>, registry: &str) -> Vec<String> {
        auths
            .keys()
            .filter(|key| registry_of_server(key).is_ok_and(|r| r == registry))
            .cloned()
            .collect()
    }

    /// The (user, password) stored for `registry` (`host:port`, `docker.io`).
    pub fn get(&self, registry: &str) -> Result<Option<(String, String)>> {
        let map = self.load()?;
        let Some(auths) = map.get("auths").and_then(|a| a.as_object()) else {
            return Ok(None);
        };
        for key in Self::keys_for(auths, registry) {
            let entry: AuthConfig = serde_json::from_value(auths[&key].clone()).unwrap_or_default();
            if !entry.username.is_empty() {
                return Ok(Some((entry.username, entry.password)));
            }
            let decoded = STANDARD
                .decode(entry.auth.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok());
            if let Some((user, password)) = decoded.as_deref().and_then(|t| t.split_once(':')) {
                return Ok(Some((user.to_string(), password.to_string())));
            }
        }
        Ok(None)
    }

    /// Store `(user, password)` for `registry`, replacing its entries.
    pub fn store(&self, registry: &str, user: &str, password: &str) -> Result<()> {
        let mut map = self.load()?;
        let auths = map
            .entry("auths")
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if !auths.is_object() {
            *auths = serde_json::Value::Object(Default::default());
        }
        let Some(auths) = auths.as_object_mut() else {
            unreachable!("auths was just made an object");
        };
        for key in Self::keys_for(auths, registry) {
            auths.remove(&key);
        }
        let key = if registry == DEFAULT_DOMAIN {
            DOCKER_HUB_KEY
        } else {
            registry
        };
        auths.insert(
            key.to_string(),
            serde_json::json!({ "auth": STANDARD.encode(format!("{user}:{password}")) }),
        );
        self.save(&map)
    }

    /// Remove the entries of `registry`; whether there was one.
    pub fn remove(&self, registry: &str) -> Result<bool> {
        let mut map = self.load()?;
        let Some(auths) = map.get_mut("auths").and_then(|a| a.as_object_mut()) else {
            return Ok(false);
        };
        let keys = Self::keys_for(auths, registry);
        if keys.is_empty() {
            return Ok(false);
        }
        for key in keys {
            auths.remove(&key);
        }
        self.save(&map)?;
        Ok(true)
    }
}

/// docker's `X-Registry-Auth` value: base64url of the `AuthConfig` JSON.
pub fn registry_auth_header(registry: &str, user: &str, password: &str) -> Result<String> {
    let json = serde_json::to_vec(&AuthConfig::new(user, password, registry))?;
    Ok(URL_SAFE.encode(json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn t10_store_get_remove_in_dockers_shape() {
        let tmp = tempfile::tempdir().unwrap();
        let file = CredentialFile::at(tmp.path().join("cfg/config.json"));
        assert_eq!(file.get("127.0.0.1:5000").unwrap(), None);
        assert!(!file.remove("127.0.0.1:5000").unwrap());

        file.store("127.0.0.1:5000", "alice", "p:w").unwrap();
        file.store("docker.io", "bob", "hub").unwrap();
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(tmp.path().join("cfg"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(file.path()).unwrap()).unwrap();
        assert_eq!(json["auths"]["127.0.0.1:5000"]["auth"], "YWxpY2U6cDp3");
        assert_eq!(json["auths"][DOCKER_HUB_KEY]["auth"], "Ym9iOmh1Yg==");
        assert_eq!(
            file.get("127.0.0.1:5000").unwrap(),
            Some(("alice".into(), "p:w".into()))
        );
        assert_eq!(
            file.get("docker.io").unwrap(),
            Some(("bob".into(), "hub".into()))
        );

        assert!(file.remove("127.0.0.1:5000").unwrap());
        assert_eq!(file.get("127.0.0.1:5000").unwrap(), None);
        assert_eq!(
            file.get("docker.io").unwrap(),
            Some(("bob".into(), "hub".into()))
        );
    }

    #[test]
    fn t10_other_keys_and_url_keys_are_kept_and_matched() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://127.0.0.1:5000/v2/":{"auth":"dTpw"}},"psFormat":"x"}"#,
        )
        .unwrap();
        let file = CredentialFile::at(&path);
        assert_eq!(
            file.get("127.0.0.1:5000").unwrap(),
            Some(("u".into(), "p".into()))
        );
        file.store("127.0.0.1:5000", "v", "q").unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["psFormat"], "x");
        assert_eq!(json["auths"].as_object().unwrap().len(), 1, "{json}");
        assert_eq!(
            file.get("127.0.0.1:5000").unwrap(),
            Some(("v".into(), "q".into()))
        );
    }

    #[test]
    fn t10_registry_auth_header_is_base64url_json() {
        let header = registry_auth_header("r:1", "u", "p?>").unwrap();
        let json = URL_SAFE.decode(&header).unwrap();
        let config: AuthConfig = serde_json::from_slice(&json).unwrap();
        assert_eq!(config, AuthConfig::new("u", "p?>", "r:1"));
    }
}
