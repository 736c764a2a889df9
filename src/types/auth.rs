//! Registry credentials in Docker's shapes: the body of `POST /auth` and, base64url-encoded,
//! the `X-Registry-Auth` header of pulls and pushes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Docker's `AuthConfig`. Its `Debug` never shows the password or `auth`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// base64(`username:password`), as docker's config file keeps it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub email: String,
    /// The registry: `host:port`, or an URL (`https://index.docker.io/v1/`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub serveraddress: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub identitytoken: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub registrytoken: String,
}

impl AuthConfig {
    pub fn new(username: &str, password: &str, serveraddress: &str) -> AuthConfig {
        AuthConfig {
            username: username.to_string(),
            password: password.to_string(),
            serveraddress: serveraddress.to_string(),
            ..AuthConfig::default()
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("serveraddress", &self.serveraddress)
            .finish_non_exhaustive()
    }
}

/// The answer to a successful `POST /auth`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AuthResponse {
    pub status: String,
    pub identity_token: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_debug_hides_the_password() {
        let config = AuthConfig::new("alice", "s3cret", "127.0.0.1:5000");
        let shown = format!("{config:?}");
        assert!(
            shown.contains("alice") && !shown.contains("s3cret"),
            "{shown}"
        );
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(
            json,
            r#"{"username":"alice","password":"s3cret","serveraddress":"127.0.0.1:5000"}"#
        );
    }
}
