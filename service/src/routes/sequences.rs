//! `/api/v1/sequences`: create, read, change, delete (drafts), steps, the lifecycle
//! (activate, pause, resume, archive, clone) and statistics.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sequence_engine::domain::ids::SequenceId;
use sequence_engine::domain::sequence::{Sequence, SequenceStatus};
use sequence_engine::domain::TransitionError;
use sequence_engine::EngineError;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::reports::SequenceStatsView;
use super::sequence_body::{
    pool_from, steps_from, CloneBody, NewSequence, SequenceChanges, SequenceView, StepBody,
};
use crate::auth::Tenant;
use crate::problem::{ApiError, JsonBody, Problem};
use crate::state::AppState;

/// A list of sequences.
#[derive(Debug, Serialize, ToSchema)]
pub struct SequenceList {
    /// The tenant's sequences, oldest first.
    pub items: Vec<SequenceView>,
}

/// The sequence `id` of `tenant`, or 404 (also when it is another tenant's).
pub(crate) async fn load(
    state: &AppState,
    tenant: &Tenant,
    id: Uuid,
) -> Result<Sequence, ApiError> {
    state
        .engine()
        .store()
        .get_sequence(tenant.id, SequenceId(id))
        .await
        .map_err(|e| ApiError::from(sequence_engine::EngineError::from(e)))?
        .ok_or_else(|| ApiError::not_found("sequence", id))
}

fn created(view: SequenceView) -> Response {
    let location = format!("/api/v1/sequences/{}", view.id);
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response()
}

/// Create a sequence (a draft), with its steps.
#[utoipa::path(post, path = "/api/v1/sequences", tag = "sequences",
    request_body = NewSequence,
    responses((status = 201, body = SequenceView), (status = 422, body = Problem), (status = 400, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    tenant: Tenant,
    JsonBody(body): JsonBody<NewSequence>,
) -> Result<Response, ApiError> {
    let steps = steps_from(&body.steps)?;
    let mut sequence = Sequence::new(tenant.id, body.name, state.now())
        .map_err(|e| ApiError::validation("", &e))?;
    sequence.description = body.description.unwrap_or_default();
    sequence.track_opens = body.track_opens;
    sequence.track_clicks = body.track_clicks;
    if let Some(exit) = body.exit_on_reply {
        sequence.exit_on_reply = exit;
    }
    sequence.set_mailbox_pool(pool_from(&body.mailbox_pool))?;
    for step in steps {
        sequence.add_step(step)?;
    }
    let sequence = state.engine().create_sequence(sequence).await?;
    Ok(created(SequenceView::from(&sequence)))
}

/// The tenant's sequences.
#[utoipa::path(get, path = "/api/v1/sequences", tag = "sequences",
    responses((status = 200, body = SequenceList)), security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
) -> Result<Json<SequenceList>, ApiError> {
    let mut sequences = state
        .engine()
        .store()
        .list_sequences(tenant.id)
        .await
        .map_err(|e| ApiError::from(sequence_engine::EngineError::from(e)))?;
    sequences.sort_by_key(|s| (s.created_at, s.id));
    Ok(Json(SequenceList {
        items: sequences.iter().map(SequenceView::from).collect(),
    }))
}

/// One sequence.
#[utoipa::path(get, path = "/api/v1/sequences/{id}", tag = "sequences",
    params(("id" = Uuid, Path, description = "The sequence")),
    responses((status = 200, body = SequenceView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn get(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<Uuid>,
) -> Result<Json<SequenceView>, ApiError> {
    Ok(Json(SequenceView::from(&load(&state, &tenant, id).await?)))
}

/// Change a sequence: name, description, tracking, exit on reply, pool; `steps` replaces
/// every step (draft only).
#[utoipa::path(put, path = "/api/v1/sequences/{id}", tag = "sequences",
    params(("id" = Uuid, Path, description = "The sequence")),
    request_body = SequenceChanges,
    responses((status = 200, body = SequenceView), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<Uuid>,
    JsonBody(body): JsonBody<SequenceChanges>,
) -> Result<Json<SequenceView>, ApiError> {
    let steps = body.steps.as_deref().map(steps_from).transpose()?;
    let sequence = state
        .engine()
        .update_sequence(tenant.id, SequenceId(id), move |s| {
            if let Some(name) = body.name {
                s.name = name;
            }
            if let Some(d) = body.description {
                s.description = d;
            }
            if let Some(v) = body.track_opens {
                s.track_opens = v;
            }
            if let Some(v) = body.track_clicks {
                s.track_clicks = v;
            }
            if let Some(v) = body.exit_on_reply {
                s.exit_on_reply = v;
            }
            if let Some(pool) = body.mailbox_pool {
                s.set_mailbox_pool(pool_from(&pool))?;
            }
            if let Some(steps) = steps {
                while !s.steps().is_empty() {
                    s.remove_step(0)?;
                }
                for step in steps {
                    s.add_step(step)?;
                }
            }
            Ok(())
        })
        .await?;
    Ok(Json(SequenceView::from(&sequence)))
}

/// Delete a draft for good: afterwards it is not found (404). Only a draft is deleted,
/// checked by the store in the same unit of work as the delete; any other sequence answers
/// 409 and is left as it is (archive it instead).
#[utoipa::path(delete, path = "/api/v1/sequences/{id}", tag = "sequences",
    params(("id" = Uuid, Path, description = "The sequence")),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "Not a draft")),
    security(("bearer" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    match state
        .engine()
        .delete_draft_sequence(tenant.id, SequenceId(id))
        .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(EngineError::Transition(TransitionError::InvalidStatus { status, .. })) => {
            Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "only a draft can be deleted; this sequence is {status}; archive it instead"
                ),
            ))
        }
        Err(EngineError::NotFound { .. }) => Err(ApiError::not_found("sequence", id)),
        Err(e) => Err(e.into()),
    }
}

/// Add a step at the end (draft only).
#[utoipa::path(post, path = "/api/v1/sequences/{id}/steps", tag = "sequences",
    params(("id" = Uuid, Path, description = "The sequence")),
    request_body = StepBody,
    responses((status = 201, body = SequenceView), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn add_step(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<Uuid>,
    JsonBody(body): JsonBody<StepBody>,
) -> Result<Response, ApiError> {
    let step = single_step(body)?;
    let sequence = state
        .engine()
        .update_sequence(tenant.id, SequenceId(id), move |s| {
            s.add_step(step).map(|_| ())
        })
        .await?;
    Ok((StatusCode::CREATED, Json(SequenceView::from(&sequence))).into_response())
}

fn single_step(mut body: StepBody) -> Result<sequence_engine::domain::sequence::Step, ApiError> {
    body.step_order = None;
    let mut steps = steps_from(std::slice::from_ref(&body)).map_err(|e| {
        // One step: its problems are named without the list's index.
        let problem = e.problem();
        let errors = sequence_engine::domain::error::ValidationErrors {
            problems: problem
                .errors
                .iter()
                .map(|f| {
                    sequence_engine::domain::error::Problem::new(
                        f.field.trim_start_matches("steps[0].").to_owned(),
                        f.reason.clone(),
                    )
                })
                .collect(),
        };
        ApiError::validation("", &errors)
    })?;
    steps
        .pop()
        .ok_or_else(|| ApiError::invalid("", "a step is required"))
}

/// Replace step `step_id` (its position, from 0; draft only).
#[utoipa::path(put, path = "/api/v1/sequences/{id}/steps/{step_id}", tag = "sequences",
    params(("id" = Uuid, Path, description = "The sequence"), ("step_id" = u32, Path, description = "The step's position, from 0")),
    request_body = StepBody,
    responses((status = 200, body = SequenceView), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn update_step(
    State(state): State<AppState>,
    tenant: Tenant,
    Path((id, step_id)): Path<(Uuid, u32)>,
    JsonBody(body): JsonBody<StepBody>,
) -> Result<Json<SequenceView>, ApiError> {
    let step = single_step(body)?;
    ensure_step(&state, &tenant, id, step_id).await?;
    let sequence = state
        .engine()
        .update_sequence(tenant.id, SequenceId(id), move |s| {
            s.update_step(step_id, step)
        })
        .await?;
    Ok(Json(SequenceView::from(&sequence)))
}

/// 404 unless the sequence has step `step_id`.
async fn ensure_step(
    state: &AppState,
    tenant: &Tenant,
    id: Uuid,
    step_id: u32,
) -> Result<(), ApiError> {
    let sequence = load(state, tenant, id).await?;
    if sequence.step(step_id).is_none() {
        return Err(ApiError::not_found("step", format!("{id}/{step_id}")));
    }
    Ok(())
}

/// Remove step `step_id` (draft only); later steps move up.
#[utoipa::path(delete, path = "/api/v1/sequences/{id}/steps/{step_id}", tag = "sequences",
    params(("id" = Uuid, Path, description = "The sequence"), ("step_id" = u32, Path, description = "The step's position, from 0")),
    responses((status = 200, body = SequenceView), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn delete_step(
    State(state): State<AppState>,
    tenant: Tenant,
    Path((id, step_id)): Path<(Uuid, u32)>,
) -> Result<Json<SequenceView>, ApiError> {
    ensure_step(&state, &tenant, id, step_id).await?;
    let sequence = state
        .engine()
        .update_sequence(tenant.id, SequenceId(id), move |s| {
            s.remove_step(step_id).map(|_| ())
        })
        .await?;
    Ok(Json(SequenceView::from(&sequence)))
}

/// `draft -> active`. A sequence with an empty mailbox pool gets every active mailbox of
/// the tenant first (the original service had no pools).
#[utoipa::path(post, path = "/api/v1/sequences/{id}/activate", tag = "sequences",
    params(("id" = Uuid, Path, description = "The sequence")),
    responses((status = 200, body = SequenceView), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn activate(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<Uuid>,
) -> Result<Json<SequenceView>, ApiError> {
    let sequence = load(&state, &tenant, id).await?;
    let engine = state.engine();
    if sequence.mailbox_pool.is_empty() && sequence.status() == SequenceStatus::Draft {
        let mut mailboxes = engine
            .store()
            .list_mailboxes(tenant.id)
            .await
            .map_err(|e| ApiError::from(sequence_engine::EngineError::from(e)))?;
        mailboxes.retain(sequence_engine::domain::mailbox::Mailbox::is_active);
        mailboxes.sort_by(|a, b| a.address.cmp(&b.address));
        let pool: Vec<_> = mailboxes.iter().map(|m| m.id).collect();
        if !pool.is_empty() {
            engine
                .update_sequence(tenant.id, SequenceId(id), move |s| s.set_mailbox_pool(pool))
                .await?;
        }
    }
    let sequence = engine.activate_sequence(tenant.id, SequenceId(id)).await?;
    Ok(Json(SequenceView::from(&sequence)))
}

/// `active -> paused`: nothing more is sent until resumed.
#[utoipa::path(post, path = "/api/v1/sequences/{id}/pause", tag = "sequences",
    params(("id" = Uuid, Path, description = "The sequence")),
    responses((status = 200, body = SequenceView), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn pause(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<Uuid>,
) -> Result<Json<SequenceView>, ApiError> {
    let s = state
        .engine()
        .pause_sequence(tenant.id, SequenceId(id))
        .await?;
    Ok(Json(SequenceView::from(&s)))
}

/// `paused -> active`: enrollments carry on where they stopped.
#[utoipa::path(post, path = "/api/v1/sequences/{id}/resume", tag = "sequences",
    params(("id" = Uuid, Path, description = "The sequence")),
    responses((status = 200, body = SequenceView), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<Uuid>,
) -> Result<Json<SequenceView>, ApiError> {
    let s = state
        .engine()
        .resume_sequence(tenant.id, SequenceId(id))
        .await?;
    state.wake_engine();
    Ok(Json(SequenceView::from(&s)))
}

/// Any status `-> archived`: every open enrollment exits.
#[utoipa::path(post, path = "/api/v1/sequences/{id}/archive", tag = "sequences",
    params(("id" = Uuid, Path, description = "The sequence")),
    responses((status = 200, body = SequenceView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn archive(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<Uuid>,
) -> Result<Json<SequenceView>, ApiError> {
    let s = state
        .engine()
        .archive_sequence(tenant.id, SequenceId(id))
        .await?;
    Ok(Json(SequenceView::from(&s)))
}

/// A draft copy: same steps, pool and rules, no enrollments.
#[utoipa::path(post, path = "/api/v1/sequences/{id}/clone", tag = "sequences",
    params(("id" = Uuid, Path, description = "The sequence")),
    request_body(content = CloneBody, description = "Optional: the copy's name"),
    responses((status = 201, body = SequenceView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn clone(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: CloneBody = if body.iter().all(u8::is_ascii_whitespace) {
        CloneBody::default()
    } else {
        crate::problem::decode(&body)?
    };
    let original = load(&state, &tenant, id).await?;
    let name = body
        .name
        .unwrap_or_else(|| format!("{} (copy)", original.name));
    let copy = state
        .engine()
        .clone_sequence(tenant.id, SequenceId(id), name)
        .await?;
    Ok(created(SequenceView::from(&copy)))
}

/// Statistics: enrollments by status and exit reason, sends, opens, clicks, replies and
/// rates, per step and per A/B variant.
#[utoipa::path(get, path = "/api/v1/sequences/{id}/stats", tag = "sequences",
    params(("id" = Uuid, Path, description = "The sequence")),
    responses((status = 200, body = SequenceStatsView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn stats(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<Uuid>,
) -> Result<Json<SequenceStatsView>, ApiError> {
    load(&state, &tenant, id).await?;
    let stats = state.engine().stats(tenant.id, SequenceId(id)).await?;
    Ok(Json(SequenceStatsView::from(&stats)))
}
