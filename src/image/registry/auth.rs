//! Registry authentication, the pure part: `WWW-Authenticate` challenges, the token request
//! URL of the Bearer flow, Basic credentials, and the token answer.
//!
//! ```text
//!  GET /v2/<name>/manifests/<tag>            → 401 WWW-Authenticate: Bearer realm=R,service=S,scope=P
//!  GET R?service=S&scope=P  [Basic user:pass] → 200 {"token": T}   (or "access_token")
//!  GET /v2/<name>/manifests/<tag>  Bearer T  → 200
//! ```
//!
//! A `Basic realm=…` challenge (docker-registry with htpasswd) is answered with the
//! credentials directly. Nothing here does I/O, so every branch is unit-tested.

use std::collections::BTreeMap;

/// What a registry asked for in `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` header value (`Bearer realm="…",service="…",scope="…"`).
/// Returns `None` for schemes we do not speak.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `k="v",k2=v2` with quoted values that may contain commas (scopes do:
/// `repository:a:pull,push`).
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.insert(key, value);
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// The token endpoint's URL: the realm with `service` and `scope` in the query.
pub fn token_url(realm: &str, service: Option<&str>, scope: Option<&str>) -> String {
    let mut url = realm.to_string();
    let mut sep = if realm.contains('?') { '&' } else { '?' };
    for (key, value) in [("service", service), ("scope", scope)] {
        if let Some(value) = value {
            url.push(sep);
            url.push_str(key);
            url.push('=');
            url.push_str(&percent_encode(value));
            sep = '&';
        }
    }
    url
}

/// Percent-encode everything but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `Basic base64(user:pass)`.
pub fn basic_header(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

/// Standard base64 with padding (a dozen lines; not worth a dependency).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The token endpoint's answer: docker's `token`, or OAuth2's `access_token`.
pub fn token_from_answer(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        token: Option<String>,
        access_token: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(body).ok()?;
    answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_bearer_challenge_with_a_comma_in_the_scope() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None, "no realm");
    }

    #[test]
    fn t10_token_url_and_answers() {
        assert_eq!(
            token_url("http://a/token", Some("reg"), Some("repository:x/y:pull")),
            "http://a/token?service=reg&scope=repository%3Ax%2Fy%3Apull"
        );
        assert_eq!(
            token_url("http://a/t?x=1", None, Some("s")),
            "http://a/t?x=1&scope=s"
        );
        assert_eq!(
            token_from_answer(br#"{"token":"t1"}"#).as_deref(),
            Some("t1")
        );
        assert_eq!(
            token_from_answer(br#"{"access_token":"t2"}"#).as_deref(),
            Some("t2")
        );
        assert_eq!(token_from_answer(br#"{"token":""}"#), None);
    }

    #[test]
    fn t10_basic_header_is_rfc4648_base64() {
        assert_eq!(
            basic_header("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }
}
