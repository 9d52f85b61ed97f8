//! Tenants and their API keys. Keys are kept only as SHA-256 digests; a request's
//! `Authorization: Bearer <key>` is hashed and looked up, and maps to exactly one tenant.
//! A tenant's id is derived from its name, so it is the same after a restart.

use std::collections::HashMap;
use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sequence_engine::domain::ids::TenantId;
use sha2::{Digest, Sha256};

use crate::config::ApiKeyConfig;
use crate::problem::ApiError;
use crate::state::AppState;

/// The tenants' keys, hashed.
#[derive(Clone, Default)]
pub struct ApiKeys {
    by_digest: HashMap<[u8; 32], Tenant>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("keys", &self.by_digest.len())
            .finish()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    /// The keys of `configured`, hashed (the plain keys are not kept).
    #[must_use]
    pub fn new(configured: &[ApiKeyConfig]) -> Self {
        let by_digest = configured
            .iter()
            .map(|k| (digest(k.key.expose()), Tenant::named(&k.tenant)))
            .collect();
        Self { by_digest }
    }

    /// Every tenant with a key, each once.
    #[must_use]
    pub fn tenants(&self) -> Vec<TenantId> {
        let mut ids: Vec<TenantId> = self.by_digest.values().map(|t| t.id).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The tenant whose key `key` is.
    #[must_use]
    pub fn tenant_of(&self, key: &str) -> Option<&Tenant> {
        self.by_digest.get(&digest(key))
    }
}

/// The tenant a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Its id (derived from its name).
    pub id: TenantId,
    /// Its configured name.
    pub name: String,
}

impl Tenant {
    /// The tenant called `name`.
    #[must_use]
    pub fn named(name: &str) -> Self {
        Self {
            id: TenantId::from_name(name),
            name: name.to_owned(),
        }
    }
}

/// 401 with `WWW-Authenticate: Bearer`.
#[derive(Debug)]
pub struct Unauthorized(&'static str);

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let mut response = ApiError::new(StatusCode::UNAUTHORIZED, self.0).into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    }
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = Unauthorized;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(Unauthorized(
                "an API key is required: Authorization: Bearer <key>",
            ))?;
        let key = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, key) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
            })
            .ok_or(Unauthorized(
                "the Authorization header must be `Bearer <key>`",
            ))?;
        state
            .keys()
            .tenant_of(key)
            .cloned()
            .ok_or(Unauthorized("unknown API key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn keys_map_to_their_tenant_and_are_kept_hashed() {
        let keys = ApiKeys::new(&[
            ApiKeyConfig {
                tenant: "acme".into(),
                key: Secret::new("KEY1"),
            },
            ApiKeyConfig {
                tenant: "globex".into(),
                key: Secret::new("KEY2"),
            },
        ]);
        assert_eq!(
            keys.tenant_of("KEY1").map(|t| t.name.as_str()),
            Some("acme")
        );
        assert_eq!(
            keys.tenant_of("KEY2").map(|t| t.id),
            Some(TenantId::from_name("globex"))
        );
        assert!(keys.tenant_of("KEY3").is_none());
        assert!(!format!("{keys:?}").contains("KEY1"));
    }
}
