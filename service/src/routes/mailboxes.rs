//! `/api/v1/mailboxes`: the sending mailboxes, their limits and windows, pause and resume.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sequence_engine::domain::ids::MailboxId;
use sequence_engine::domain::mailbox::{Mailbox, MailboxStatus};
use sequence_engine::domain::time::{parse_time_zone, SendWindow, WeeklySchedule};
use sequence_engine::EngineError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::reports::MailboxUsageView;
use crate::auth::Tenant;
use crate::problem::{ApiError, JsonBody, Problem};
use crate::state::AppState;

/// A mailbox's settings as a client writes them. On update, absent fields are kept.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailboxBody {
    /// The sending address (required on create; fixed after).
    #[serde(default)]
    pub address: Option<String>,
    /// The name in `From`.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Most sends a local day (30 when absent).
    #[serde(default)]
    pub daily_limit: Option<u32>,
    /// IANA zone of its days and windows (`UTC` when absent).
    #[serde(default)]
    pub timezone: Option<String>,
    /// Least seconds between two sends.
    #[serde(default)]
    pub min_gap_seconds: Option<u32>,
    /// Weekly sending windows, e.g. `[{"days": ["mon","tue"], "start": "09:00", "end":
    /// "17:00"}]`; absent: always open.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub windows: Option<Vec<SendWindow>>,
}

/// A mailbox as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MailboxView {
    /// Id.
    #[schema(value_type = Uuid)]
    pub id: MailboxId,
    /// Address.
    pub address: String,
    /// Name in `From`.
    pub display_name: Option<String>,
    /// Daily limit.
    pub daily_limit: u32,
    /// Zone.
    pub timezone: String,
    /// `active`, `paused` or `suspended`.
    #[schema(value_type = String)]
    pub status: MailboxStatus,
    /// Least seconds between sends.
    pub min_gap_seconds: u32,
    /// Sending windows (absent: always open).
    #[schema(value_type = Option<Vec<Object>>)]
    pub windows: Option<Vec<SendWindow>>,
}

impl From<&Mailbox> for MailboxView {
    fn from(m: &Mailbox) -> Self {
        Self {
            id: m.id,
            address: m.address.clone(),
            display_name: m.display_name.clone(),
            daily_limit: m.daily_limit,
            timezone: m.timezone.name().to_owned(),
            status: m.status(),
            min_gap_seconds: m.min_gap_seconds,
            windows: m.schedule.window_list().map(<[SendWindow]>::to_vec),
        }
    }
}

/// A mailbox with its use today.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MailboxDetail {
    /// The mailbox.
    #[serde(flatten)]
    pub mailbox: MailboxView,
    /// Its use today and this week, and its next opening.
    pub usage: MailboxUsageView,
}

/// A list of mailboxes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MailboxList {
    /// The tenant's mailboxes, by address.
    pub items: Vec<MailboxView>,
}

fn zone(name: &str) -> Result<sequence_engine::chrono_tz::Tz, ApiError> {
    parse_time_zone(name).map_err(|e| ApiError::invalid("timezone", e.to_string()))
}

/// Apply the settings of `body` to `m`.
fn apply(m: &mut Mailbox, body: MailboxBody) -> Result<(), ApiError> {
    if let Some(name) = body.display_name {
        m.display_name = Some(name);
    }
    if let Some(limit) = body.daily_limit {
        m.daily_limit = limit;
    }
    if let Some(tz) = body.timezone {
        m.timezone = zone(&tz)?;
    }
    if let Some(gap) = body.min_gap_seconds {
        m.min_gap_seconds = gap;
    }
    if let Some(windows) = body.windows {
        m.schedule = WeeklySchedule::windows(windows);
    }
    m.validate().map_err(|e| ApiError::validation("", &e))
}

/// Add a sending mailbox.
#[utoipa::path(post, path = "/api/v1/mailboxes", tag = "mailboxes",
    request_body = MailboxBody,
    responses((status = 201, body = MailboxView), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    tenant: Tenant,
    JsonBody(mut body): JsonBody<MailboxBody>,
) -> Result<Response, ApiError> {
    let address = body
        .address
        .take()
        .ok_or_else(|| ApiError::invalid("address", "required"))?;
    let tz = zone(body.timezone.as_deref().unwrap_or("UTC"))?;
    let mut mailbox =
        Mailbox::new(tenant.id, address, tz).map_err(|e| ApiError::validation("", &e))?;
    apply(&mut mailbox, body)?;
    let mailbox = state.engine().create_mailbox(mailbox).await?;
    let view = MailboxView::from(&mailbox);
    let location = format!("/api/v1/mailboxes/{}", view.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response())
}

/// The tenant's mailboxes.
#[utoipa::path(get, path = "/api/v1/mailboxes", tag = "mailboxes",
    responses((status = 200, body = MailboxList)), security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
) -> Result<Json<MailboxList>, ApiError> {
    let mut all = state
        .engine()
        .store()
        .list_mailboxes(tenant.id)
        .await
        .map_err(|e| ApiError::from(EngineError::from(e)))?;
    all.sort_by(|a, b| a.address.cmp(&b.address));
    Ok(Json(MailboxList {
        items: all.iter().map(MailboxView::from).collect(),
    }))
}

/// One mailbox with its use today.
#[utoipa::path(get, path = "/api/v1/mailboxes/{id}", tag = "mailboxes",
    params(("id" = Uuid, Path, description = "The mailbox")),
    responses((status = 200, body = MailboxDetail), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<Uuid>,
) -> Result<Json<MailboxDetail>, ApiError> {
    let engine = state.engine();
    let mailbox = engine
        .store()
        .get_mailbox(tenant.id, MailboxId(id))
        .await
        .map_err(|e| ApiError::from(EngineError::from(e)))?
        .ok_or_else(|| ApiError::not_found("mailbox", id))?;
    let usage = engine.mailbox_usage(tenant.id, MailboxId(id)).await?;
    Ok(Json(MailboxDetail {
        mailbox: MailboxView::from(&mailbox),
        usage: MailboxUsageView::from(&usage),
    }))
}

/// Change a mailbox's settings (its address is fixed).
#[utoipa::path(put, path = "/api/v1/mailboxes/{id}", tag = "mailboxes",
    params(("id" = Uuid, Path, description = "The mailbox")),
    request_body = MailboxBody,
    responses((status = 200, body = MailboxView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<Uuid>,
    JsonBody(body): JsonBody<MailboxBody>,
) -> Result<Json<MailboxView>, ApiError> {
    let engine = state.engine();
    let mut current = engine
        .store()
        .get_mailbox(tenant.id, MailboxId(id))
        .await
        .map_err(|e| ApiError::from(EngineError::from(e)))?
        .ok_or_else(|| ApiError::not_found("mailbox", id))?;
    if body
        .address
        .as_ref()
        .is_some_and(|a| !a.eq_ignore_ascii_case(&current.address))
    {
        return Err(ApiError::invalid(
            "address",
            "cannot change; add a new mailbox",
        ));
    }
    // Checked here, on a copy, so that the engine's change cannot fail half-way.
    apply(&mut current, body)?;
    let changed = current.clone();
    let mailbox = engine
        .update_mailbox(tenant.id, MailboxId(id), move |m| {
            m.display_name = changed.display_name;
            m.daily_limit = changed.daily_limit;
            m.timezone = changed.timezone;
            m.min_gap_seconds = changed.min_gap_seconds;
            m.schedule = changed.schedule;
            Ok(())
        })
        .await?;
    Ok(Json(MailboxView::from(&mailbox)))
}

async fn reread(state: &AppState, tenant: &Tenant, id: Uuid) -> Result<MailboxView, ApiError> {
    state
        .engine()
        .store()
        .get_mailbox(tenant.id, MailboxId(id))
        .await
        .map_err(|e| ApiError::from(EngineError::from(e)))?
        .map(|m| MailboxView::from(&m))
        .ok_or_else(|| ApiError::not_found("mailbox", id))
}

/// Pause a mailbox: it sends nothing until resumed; its planned sends move elsewhere.
#[utoipa::path(post, path = "/api/v1/mailboxes/{id}/pause", tag = "mailboxes",
    params(("id" = Uuid, Path, description = "The mailbox")),
    responses((status = 200, body = MailboxView), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn pause(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<Uuid>,
) -> Result<Json<MailboxView>, ApiError> {
    state
        .engine()
        .pause_mailbox(tenant.id, MailboxId(id))
        .await?;
    Ok(Json(reread(&state, &tenant, id).await?))
}

/// Resume a paused or suspended mailbox.
#[utoipa::path(post, path = "/api/v1/mailboxes/{id}/resume", tag = "mailboxes",
    params(("id" = Uuid, Path, description = "The mailbox")),
    responses((status = 200, body = MailboxView), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<Uuid>,
) -> Result<Json<MailboxView>, ApiError> {
    state
        .engine()
        .resume_mailbox(tenant.id, MailboxId(id))
        .await?;
    state.wake_engine();
    Ok(Json(reread(&state, &tenant, id).await?))
}
