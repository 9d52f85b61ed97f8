//! `/api/v1/signals`: what the host's inbound mail processing learned about a contact: a
//! reply, a bounce, an unsubscribe.

use axum::extract::State;
use axum::Json;
use sequence_engine::domain::contact::BounceKind;
use sequence_engine::domain::ids::ContactId;
use sequence_engine::EngineError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::problem::{ApiError, JsonBody, Problem};
use crate::state::AppState;

/// The contact a signal is about: by id or by address.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalBody {
    /// The contact's id.
    #[serde(default)]
    pub contact_id: Option<Uuid>,
    /// The contact's address (when the id is not known).
    #[serde(default)]
    pub email: Option<String>,
    /// For bounces: `hard` (the default) or `soft`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub kind: Option<BounceKind>,
}

/// A signal recorded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SignalRecorded {
    /// The contact.
    pub contact_id: Uuid,
    /// `reply`, `bounce` or `unsubscribe`.
    pub signal: &'static str,
}

async fn contact_of(
    state: &AppState,
    tenant: &Tenant,
    body: &SignalBody,
) -> Result<ContactId, ApiError> {
    let store = state.engine().store();
    let found = match (&body.contact_id, &body.email) {
        (Some(id), _) => store.get_contact(tenant.id, ContactId(*id)).await,
        (None, Some(email)) => store.find_contact_by_email(tenant.id, email).await,
        (None, None) => {
            return Err(ApiError::invalid("contact_id", "give contact_id or email"));
        }
    }
    .map_err(|e| ApiError::from(EngineError::from(e)))?;
    found.map(|c| c.id).ok_or_else(|| {
        ApiError::not_found(
            "contact",
            body.contact_id.map_or_else(
                || body.email.clone().unwrap_or_default(),
                |id| id.to_string(),
            ),
        )
    })
}

/// The contact replied: its enrollments in sequences that exit on reply exit.
#[utoipa::path(post, path = "/api/v1/signals/reply", tag = "signals",
    request_body = SignalBody,
    responses((status = 200, body = SignalRecorded), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn reply(
    State(state): State<AppState>,
    tenant: Tenant,
    JsonBody(body): JsonBody<SignalBody>,
) -> Result<Json<SignalRecorded>, ApiError> {
    let contact = contact_of(&state, &tenant, &body).await?;
    state.engine().reply(tenant.id, contact).await?;
    Ok(Json(SignalRecorded {
        contact_id: contact.0,
        signal: "reply",
    }))
}

/// The contact's address bounced: hard, it exits every sequence for good; soft, it counts
/// toward the retry budget.
#[utoipa::path(post, path = "/api/v1/signals/bounce", tag = "signals",
    request_body = SignalBody,
    responses((status = 200, body = SignalRecorded), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn bounce(
    State(state): State<AppState>,
    tenant: Tenant,
    JsonBody(body): JsonBody<SignalBody>,
) -> Result<Json<SignalRecorded>, ApiError> {
    let contact = contact_of(&state, &tenant, &body).await?;
    let kind = body.kind.unwrap_or(BounceKind::Hard);
    state.engine().bounce(tenant.id, contact, kind).await?;
    Ok(Json(SignalRecorded {
        contact_id: contact.0,
        signal: "bounce",
    }))
}

/// The contact unsubscribed: nothing more is sent to it in any sequence of the tenant.
#[utoipa::path(post, path = "/api/v1/signals/unsubscribe", tag = "signals",
    request_body = SignalBody,
    responses((status = 200, body = SignalRecorded), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn unsubscribe(
    State(state): State<AppState>,
    tenant: Tenant,
    JsonBody(body): JsonBody<SignalBody>,
) -> Result<Json<SignalRecorded>, ApiError> {
    let contact = contact_of(&state, &tenant, &body).await?;
    state.engine().unsubscribe(tenant.id, contact).await?;
    Ok(Json(SignalRecorded {
        contact_id: contact.0,
        signal: "unsubscribe",
    }))
}
