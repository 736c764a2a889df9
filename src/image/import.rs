//! `docker import`: a root filesystem tar (plain, gzip or zstd) becomes a one-layer image, with
//! runtime defaults from `--change` lines in Dockerfile syntax.
//!
//! The layer is stored uncompressed, as docker stores imported layers: its digest is then its
//! diff_id, and importing the same tar twice gives the same layer blob.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};

use oci_spec::image::{Descriptor, MediaType};

use super::archive::{host_platform, oci_manifest};
use super::compression::{Compression, Decoder};
use super::config::{ContainerConfig, Empty, History, ImageConfig, RootFs};
use super::digest::{ImageId, from_io};
use super::error::{Context, ImageError, Result};
use super::store::{ImageStore, canonical_json, normalize_names};
use super::unpack::walk;

impl ImageStore {
    /// Import `rootfs` (a tar of a root filesystem) as a new image named `name` (none: a
    /// dangling image, as `docker import` without a repository makes), with `changes`
    /// (`CMD ["sh"]`, `ENV A=1`, …) applied to its config. Returns the image id.
    pub fn import(
        &self,
        rootfs: impl Read,
        name: Option<&str>,
        changes: &[String],
    ) -> Result<ImageId> {
        let mut container_config = ContainerConfig::default();
        for change in changes {
            apply_change(&mut container_config, change)?;
        }
        let names = normalize_names(&name.into_iter().collect::<Vec<_>>())?;

        let mut ingest = self.ingest()?;
        let decoder = Decoder::new(BufReader::new(rootfs))
            .map_err(|e| from_io(|| "read the root filesystem tar".into(), e))?;
        // Bounded before anything reaches the disk: a compressed bomb stops at the limit.
        let limits = self.limits;
        let layer_index = ingest.stage(decoder.take(limits.layer_bytes + 1), None)?;
        let (diff_id, size) = {
            let (d, s) = ingest.staged_digest(layer_index);
            (d.clone(), s)
        };
        if size > limits.layer_bytes {
            return Err(ImageError::limit(format!(
                "uncompressed size (more than {} bytes)",
                limits.layer_bytes
            )));
        }
        // Refuse what is not a tar now rather than at the first container start; the same
        // bounded parser as unpacking reads it.
        let path = ingest.staged_path(layer_index).to_path_buf();
        let file = File::open(&path).context(|| format!("open {}", path.display()))?;
        let limits = self.limits;
        walk(
            file,
            &limits,
            limits.layer_bytes,
            limits.layer_entries,
            |_| Ok(()),
        )?;
        ingest.keep(layer_index);

        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let (architecture, os) = host_platform();
        let config = ImageConfig {
            created: Some(created.clone()),
            architecture: architecture.to_string(),
            os: os.to_string(),
            config: Some(container_config),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![diff_id.clone()],
            },
            history: Some(vec![History {
                created: Some(created),
                created_by: Some("swarm image import".into()),
                comment: Some("Imported from tarball".into()),
                ..History::default()
            }]),
            ..ImageConfig::default()
        };
        let config_bytes = canonical_json(&config)?;
        let (config_digest, config_size) = ingest.put_blob(&config_bytes[..], None)?;
        let layer = Descriptor::new(
            MediaType::from(Compression::None.layer_media_type()),
            size,
            diff_id.to_oci(),
        );
        let manifest = oci_manifest(&config_digest, config_size, vec![layer])?;
        let manifest_bytes = canonical_json(&manifest)?;
        let (manifest_digest, manifest_size) = ingest.put_blob(&manifest_bytes[..], None)?;
        ingest.commit(&[(
            Descriptor::new(
                MediaType::ImageManifest,
                manifest_size,
                manifest_digest.to_oci(),
            ),
            names,
        )])?;
        Ok(ImageId(config_digest))
    }
}

fn invalid(change: &str, reason: impl Into<String>) -> ImageError {
    ImageError::InvalidChange {
        change: change.to_string(),
        reason: reason.into(),
    }
}

/// Apply one `--change` line (Dockerfile syntax) to `config`. The instructions docker import
/// allows: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR.
pub fn apply_change(config: &mut ContainerConfig, change: &str) -> Result<()> {
    let line = change.trim();
    let (instruction, rest) = match line.split_once(char::is_whitespace) {
        Some((i, r)) => (i, r.trim()),
        None => (line, ""),
    };
    if rest.is_empty() {
        return Err(invalid(change, "missing arguments"));
    }
    match instruction.to_ascii_uppercase().as_str() {
        "CMD" => config.cmd = Some(command(rest)),
        "ENTRYPOINT" => config.entrypoint = Some(command(rest)),
        "ENV" => {
            let env = config.env.get_or_insert_with(Vec::new);
            for (key, value) in pairs(change, rest, true)? {
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
                env.push(format!("{key}={value}"));
            }
        }
        "LABEL" => {
            let labels = config.labels.get_or_insert_with(BTreeMap::new);
            for (key, value) in pairs(change, rest, false)? {
                labels.insert(key, value);
            }
        }
        "WORKDIR" => config.working_dir = Some(single(change, rest)?),
        "USER" => config.user = Some(single(change, rest)?),
        "STOPSIGNAL" => config.stop_signal = Some(single(change, rest)?),
        "EXPOSE" => {
            let ports = config.exposed_ports.get_or_insert_with(BTreeMap::new);
            for word in words(change, rest)? {
                ports.insert(port(change, &word)?, Empty {});
            }
        }
        "VOLUME" => {
            let volumes = config.volumes.get_or_insert_with(BTreeMap::new);
            let paths = match json_array(rest) {
                Some(paths) => paths,
                None => words(change, rest)?,
            };
            for path in paths {
                volumes.insert(path, Empty {});
            }
        }
        other => {
            return Err(invalid(
                change,
                format!(
                    "{other} is not allowed: use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME or WORKDIR"
                ),
            ));
        }
    }
    Ok(())
}

/// A JSON array of strings (exec form), or `None` when `s` is not one.
fn json_array(s: &str) -> Option<Vec<String>> {
    if !s.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(s).ok()
}

/// Exec form (`["a","b"]`) as is; anything else (shell form, or text that only looks like
/// JSON, as docker decides) runs under `/bin/sh -c`.
fn command(rest: &str) -> Vec<String> {
    json_array(rest).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), rest.into()])
}

fn single(change: &str, rest: &str) -> Result<String> {
    let mut w = words(change, rest)?;
    if w.len() == 1 {
        Ok(w.remove(0))
    } else {
        Ok(rest.to_string())
    }
}

/// Split on blanks, honouring "double" and 'single' quotes and backslash escapes.
fn words(change: &str, s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                in_word = true;
            }
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(invalid(change, "unterminated quote"));
    }
    if in_word {
        out.push(word);
    }
    Ok(out)
}

/// `K=V K2="v 2"`, or (ENV only, the legacy form) `K the rest is the value`.
fn pairs(change: &str, rest: &str, legacy_allowed: bool) -> Result<Vec<(String, String)>> {
    let first = rest.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        if !legacy_allowed {
            return Err(invalid(change, "expected KEY=VALUE"));
        }
        let (key, value) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| invalid(change, "expected KEY=VALUE or KEY VALUE"))?;
        let value = words(change, value.trim())?.join(" ");
        return Ok(vec![(key.to_string(), value)]);
    }
    words(change, rest)?
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(invalid(change, format!("{w:?} is not KEY=VALUE"))),
        })
        .collect()
}

/// `80`, `80/udp` → `80/tcp`, `80/udp` (a range `8000-8002` stays a range, as docker keeps it).
fn port(change: &str, word: &str) -> Result<String> {
    let (ports, proto) = match word.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (word, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(invalid(change, format!("invalid protocol {proto:?}")));
    }
    let valid = |p: &str| p.parse::<u16>().is_ok_and(|n| n > 0);
    let ok = match ports.split_once('-') {
        Some((a, b)) => valid(a) && valid(b),
        None => valid(ports),
    };
    if !ok {
        return Err(invalid(change, format!("invalid port {ports:?}")));
    }
    Ok(format!("{ports}/{proto}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(changes: &[&str]) -> ContainerConfig {
        let mut c = ContainerConfig::default();
        for change in changes {
            apply_change(&mut c, change).unwrap();
        }
        c
    }

    #[test]
    fn t10_changes_in_both_forms_set_the_config() {
        let c = applied(&[
            r#"CMD ["httpd", "-f", "-p", "80"]"#,
            "ENTRYPOINT /bin/entry --flag",
            "ENV A=1 B=\"two words\"",
            "ENV LEGACY some value",
            "ENV A=3",
            "WORKDIR /srv",
            "USER app:app",
            "EXPOSE 80 53/udp 8000-8002",
            r#"LABEL org.example.x=1 "quoted key"="v w""#,
            "VOLUME /data",
            "STOPSIGNAL SIGINT",
        ]);
        assert_eq!(c.cmd.unwrap(), ["httpd", "-f", "-p", "80"]);
        assert_eq!(
            c.entrypoint.unwrap(),
            ["/bin/sh", "-c", "/bin/entry --flag"]
        );
        assert_eq!(c.env.unwrap(), ["B=two words", "LEGACY=some value", "A=3"]);
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.user.as_deref(), Some("app:app"));
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, ["53/udp", "80/tcp", "8000-8002/tcp"]);
        let labels = c.labels.unwrap();
        assert_eq!(labels["org.example.x"], "1");
        assert_eq!(labels["quoted key"], "v w");
        assert!(c.volumes.unwrap().contains_key("/data"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
    }

    #[test]
    fn t20_bad_changes_are_refused() {
        for bad in [
            "RUN rm -rf /",
            "CMD",
            "EXPOSE 99999",
            "EXPOSE 80/xyz",
            "LABEL novalue",
            "ENV A=\"unterminated",
        ] {
            let mut c = ContainerConfig::default();
            let err = apply_change(&mut c, bad).unwrap_err();
            assert!(
                err.to_string().starts_with("invalid --change"),
                "{bad}: {err}"
            );
        }
    }
}
