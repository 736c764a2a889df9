//! `POST /auth`: check registry credentials (`docker login`). The daemon asks the registry;
//! the client stores the credentials, the daemon keeps nothing.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};

use super::error::ApiError;
use super::server::Backend;
use crate::types::auth::{AuthConfig, AuthResponse};

/// The credentials of a login request: `username` + `password`, or docker's `auth`.
fn credentials(config: &AuthConfig) -> Option<(String, String)> {
    if !config.username.is_empty() {
        return Some((config.username.clone(), config.password.clone()));
    }
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(config.auth.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    (!user.is_empty()).then(|| (user.to_string(), password.to_string()))
}

/// `POST /auth[?insecure=1]` with an `AuthConfig` body.
pub async fn login<B: Backend>(
    State(backend): State<Arc<B>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<AuthResponse>, ApiError> {
    // serde's message could quote a value of the body (the password): give the place only.
    let config: AuthConfig = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid login request: not an AuthConfig object (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let credentials = credentials(&config)
        .ok_or_else(|| ApiError::bad_request("a username and password are required"))?;
    let insecure = query
        .get("insecure")
        .is_some_and(|v| matches!(v.as_str(), "1" | "true"));
    backend
        .registry_login(config.serveraddress, credentials, insecure)
        .await?;
    Ok(Json(AuthResponse {
        status: "Login Succeeded".into(),
        identity_token: String::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_credentials_from_fields_or_auth() {
        let fields = AuthConfig::new("u", "p:w", "r");
        assert_eq!(credentials(&fields), Some(("u".into(), "p:w".into())));
        let auth = AuthConfig {
            auth: "dTpwOnc=".into(), // u:p:w
            ..AuthConfig::default()
        };
        assert_eq!(credentials(&auth), Some(("u".into(), "p:w".into())));
        assert_eq!(credentials(&AuthConfig::default()), None);
    }
}
