//! Errors as RFC 9457 problem details, and the JSON body extractor that turns every
//! malformed or oversize body into one (400, 413 or 422), never a 500.
//!
//! A problem names its fields: `errors` is a list of `{field, reason}` with paths such as
//! `steps[2].wait_days`, taken from the domain's validation or from the JSON decoder.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sequence_engine::domain::error::ValidationErrors;
use sequence_engine::domain::TransitionError;
use sequence_engine::EngineError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

/// One problem with one field of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's path, e.g. `steps[2].wait_days` (empty for the body as a whole).
    pub field: String,
    /// Why the value is refused.
    pub reason: String,
}

/// An RFC 9457 problem details document (`application/problem+json`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` for a plain HTTP status).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// Each field refused, with its reason (validation problems only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// An error answered to a client. Everything a handler can fail with becomes one.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {detail}")]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    detail: String,
    errors: Vec<FieldError>,
}

impl ApiError {
    /// A problem with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind: "about:blank",
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// 404 for a record of `entity` (also for another tenant's record: never 403).
    pub fn not_found(entity: &str, id: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{entity} {id} not found"))
    }

    /// 422 naming `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        let (field, reason) = (field.into(), reason.into());
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            kind: "/problems/validation",
            detail: format!("{field}: {reason}"),
            errors: vec![FieldError { field, reason }],
        }
    }

    /// 422 with every problem of `errors`, each path put after `prefix` (if any).
    pub fn validation(prefix: &str, errors: &ValidationErrors) -> Self {
        let errors: Vec<FieldError> = errors
            .problems
            .iter()
            .map(|p| FieldError {
                field: join_path(prefix, &p.path),
                reason: p.reason.clone(),
            })
            .collect();
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.reason))
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            kind: "/problems/validation",
            detail,
            errors,
        }
    }

    /// The status answered.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The problem details document.
    #[must_use]
    pub fn problem(&self) -> Problem {
        Problem {
            kind: self.kind.to_owned(),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            errors: self.errors.clone(),
        }
    }
}

/// `prefix.path`, or `prefix[i]` when the path is an index, or either alone.
fn join_path(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_owned(),
        (false, true) => prefix.to_owned(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, detail = %self.detail, "request failed");
        }
        let mut response = (self.status, axum::Json(self.problem())).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound { entity, id } => Self::not_found(entity.as_str(), id),
            EngineError::Invalid(errors) => Self::validation("", &errors),
            EngineError::Transition(t) => t.into(),
            EngineError::KeptChanging { .. } => Self::new(StatusCode::CONFLICT, e.to_string()),
            EngineError::Store(s) if s.is_conflict() => Self::new(
                StatusCode::CONFLICT,
                format!("changed meanwhile, read it again and retry: {s}"),
            ),
            EngineError::Store(s) => {
                // The cause is logged, not shown: it may name tables or servers.
                tracing::error!(error = %s, "store failed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store failed; retry later",
                )
            }
            other => {
                tracing::error!(error = %other, "engine failed");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

impl From<TransitionError> for ApiError {
    fn from(t: TransitionError) -> Self {
        match t {
            TransitionError::InvalidStatus { .. } => Self::new(StatusCode::CONFLICT, t.to_string()),
            TransitionError::Invariant { field, reason } => Self::invalid(field, reason),
            TransitionError::Invalid(errors) => Self::validation("", &errors),
            other => Self::new(StatusCode::CONFLICT, other.to_string()),
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        Self::validation("", &e)
    }
}

/// A JSON request body, decoded by the service so that every failure is a problem: a body
/// that is not JSON is 400, one over the size limit 413, one of the wrong shape 422 with
/// the path of the field (`steps[0].wait_days`).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| {
                let status = e.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        status,
                        "the request body is larger than the service accepts",
                    )
                } else {
                    ApiError::new(status, e.body_text())
                }
            })?;
        decode(&bytes).map(JsonBody)
    }
}

/// Decode `bytes` as JSON into `T`: 400 for a syntax error, 422 naming the field for data
/// of the wrong shape.
///
/// # Errors
/// The problem to answer.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            let field = if path == "." { String::new() } else { path };
            ApiError::invalid(field, strip_position(&inner.to_string()))
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the body is not valid JSON: {inner}"),
            )
        }
    })?;
    de.end().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    Ok(value)
}

/// serde_json's messages end with ` at line 1 column 42`: the path says it better.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code, reason = "only decoded")]
    struct Steps {
        steps: Vec<Step>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code, reason = "only decoded")]
    struct Step {
        wait_days: u32,
    }

    #[test]
    fn a_wrong_type_names_its_field_and_bad_json_is_400() {
        let e = decode::<Steps>(br#"{"steps":[{"wait_days":1},{"wait_days":-2}]}"#).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.problem().errors[0].field, "steps[1].wait_days");
        let e = decode::<Steps>(b"{\"steps\": [").unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let e = decode::<Steps>(b"{}").unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.problem().detail.contains("steps"), "{e}");
    }

    #[test]
    fn validation_paths_are_prefixed() {
        let errors = ValidationErrors::one("email", "not an address");
        let e = ApiError::validation("contacts[3]", &errors);
        assert_eq!(e.problem().errors[0].field, "contacts[3].email");
        assert_eq!(join_path("steps", "[2].subject"), "steps[2].subject");
    }
}
