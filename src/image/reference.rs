//! Image references, normalised the way docker does (`distribution/reference`'s
//! `ParseNormalizedNamed` + `TagNameOnly`): `busybox` is `docker.io/library/busybox:latest`,
//! `127.0.0.1:5000/app:1` keeps its registry, `user/app` lives under `docker.io/user/app`.
//!
//! The store keys names by the full form, so `busybox`, `busybox:latest` and
//! `docker.io/library/busybox:latest` are one name; the familiar form (`busybox:latest`) is what
//! docker prints in `RepoTags`.

use std::fmt;

use super::digest::{Digest, is_hex64};
use super::error::{ImageError, Result};

pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
pub const DEFAULT_TAG: &str = "latest";
const NAME_MAX: usize = 255;

/// A normalised image reference: `domain/path[:tag][@digest]`, at least one of tag or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub domain: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

fn invalid(reference: &str, reason: impl Into<String>) -> ImageError {
    ImageError::InvalidReference {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

impl Reference {
    /// Parse and normalise; a reference with neither tag nor digest gets `:latest`.
    pub fn parse(input: &str) -> Result<Reference> {
        if input.is_empty() {
            return Err(invalid(input, "empty reference"));
        }
        if is_hex64(input) {
            return Err(invalid(
                input,
                "cannot use a 64-character hexadecimal string as a name (it reads as an image id)",
            ));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.parse::<Digest>()?)),
            None => (input, None),
        };
        // A tag follows the last ':' that comes after the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        if let Some(tag) = &tag {
            validate_tag(input, tag)?;
        }
        let (domain, path) = split_domain(name);
        validate_domain(input, &domain)?;
        if path.is_empty() {
            return Err(invalid(input, "missing repository name"));
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid(input, "repository name must be lowercase"));
        }
        for component in path.split('/') {
            validate_path_component(input, component)?;
        }
        if domain.len() + 1 + path.len() > NAME_MAX {
            return Err(invalid(
                input,
                "repository name must not exceed 255 characters",
            ));
        }
        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (tag, _) => tag,
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `docker.io/library/busybox`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `busybox` for `docker.io/library/busybox`, `user/app` for `docker.io/user/app`.
    pub fn familiar_repository(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(short) if !short.contains('/') => short.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.repository()
        }
    }

    /// The form docker prints: `busybox:latest`, `127.0.0.1:5000/app:1`.
    pub fn familiar(&self) -> String {
        self.with_repository(&self.familiar_repository())
    }

    fn with_repository(&self, repository: &str) -> String {
        let mut out = repository.to_string();
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest.as_str());
        }
        out
    }
}

impl fmt::Display for Reference {
    /// The full, normalised form the store keys names by.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.with_repository(&self.repository()))
    }
}

/// Normalise a name for the store: `busybox` → `docker.io/library/busybox:latest`.
pub fn normalize(input: &str) -> Result<String> {
    Ok(Reference::parse(input)?.to_string())
}

/// The familiar form of a stored (full) name; the name itself when it does not parse.
pub fn familiar(full: &str) -> String {
    Reference::parse(full)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| full.to_string())
}

/// The registry a `docker login` server address names, validated: `https://host:port/v2/`
/// and `host:port` are `host:port`; Docker Hub's names (empty, `index.docker.io`,
/// `https://index.docker.io/v1/`, `registry-1.docker.io`) are `docker.io`.
pub fn registry_of_server(server: &str) -> Result<String> {
    let trimmed = server.trim();
    let without_scheme = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .unwrap_or(trimmed);
    let host = without_scheme
        .split('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let registry = match host.as_str() {
        "" | LEGACY_DEFAULT_DOMAIN | "registry-1.docker.io" => DEFAULT_DOMAIN.to_string(),
        _ => host,
    };
    validate_domain(server, &registry)?;
    Ok(registry)
}

/// docker's `splitDockerDomain`: the first component is a registry when it looks like a host
/// (has a '.' or ':', or is `localhost`, or has upper case); otherwise the name is on Docker Hub.
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !path.contains('/') {
        path = format!("{OFFICIAL_REPO_PREFIX}{path}");
    }
    (domain, path)
}

fn validate_tag(input: &str, tag: &str) -> Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(input, format!("invalid tag {tag:?}")))
    }
}

fn validate_domain(input: &str, domain: &str) -> Result<()> {
    let bad = || invalid(input, format!("invalid registry {domain:?}"));
    // `[v6]:port`, `host:port`, or either without the port.
    let (host_ok, port) = if let Some(rest) = domain.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        let ok = !v6.is_empty() && v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        (ok, port)
    } else {
        let (host, port) = match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        };
        let ok = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        (ok, port)
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn validate_path_component(input: &str, component: &str) -> Result<()> {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut ok = !bytes.is_empty() && alnum(bytes[0]) && alnum(bytes[bytes.len() - 1]);
    let mut i = 0;
    while ok && i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
    }
    if ok {
        Ok(())
    } else {
        Err(invalid(
            input,
            format!("invalid repository name component {component:?}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_login_server_addresses_name_a_registry() {
        for (server, registry) in [
            ("", "docker.io"),
            ("https://index.docker.io/v1/", "docker.io"),
            ("index.docker.io", "docker.io"),
            ("registry-1.docker.io", "docker.io"),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
            ("https://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
            ("http://Registry.Example:443", "registry.example:443"),
            ("[::1]:5000", "[::1]:5000"),
        ] {
            assert_eq!(registry_of_server(server).unwrap(), registry, "{server:?}");
        }
        assert!(registry_of_server("..").is_err());
        assert!(registry_of_server("a b").is_err());
    }

    #[test]
    fn t10_names_normalise_like_docker() {
        let cases = [
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "busybox:test",
                "docker.io/library/busybox:test",
                "busybox:test",
            ),
            (
                "docker.io/library/busybox:latest",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            ("user/app", "docker.io/user/app:latest", "user/app:latest"),
            (
                "127.0.0.1:5000/app:1",
                "127.0.0.1:5000/app:1",
                "127.0.0.1:5000/app:1",
            ),
            (
                "localhost/app",
                "localhost/app:latest",
                "localhost/app:latest",
            ),
            (
                "localhost:5000/a/b-c__d.e:v1.0-rc",
                "localhost:5000/a/b-c__d.e:v1.0-rc",
                "localhost:5000/a/b-c__d.e:v1.0-rc",
            ),
            (
                "ghcr.io/org/tool",
                "ghcr.io/org/tool:latest",
                "ghcr.io/org/tool:latest",
            ),
        ];
        for (input, full, familiar_form) in cases {
            let r = Reference::parse(input).unwrap();
            assert_eq!(r.to_string(), full, "{input}");
            assert_eq!(r.familiar(), familiar_form, "{input}");
            assert_eq!(familiar(full), familiar_form);
        }
        let digest = Digest::of(b"x");
        let r = Reference::parse(&format!("busybox@{digest}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{digest}"));
    }

    #[test]
    fn t20_bad_names_are_refused_with_a_reason() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "a//b",
            "a/../b",
            "-a",
            "a:b:c/d",
            "busybox@sha256:xyz",
            &"a".repeat(300),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            let err = Reference::parse(bad).unwrap_err();
            assert!(
                matches!(err, ImageError::InvalidReference { .. })
                    || matches!(err, ImageError::InvalidImage { .. }),
                "{bad}: {err}"
            );
        }
    }
}
