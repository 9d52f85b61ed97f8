//! Contacts into a sequence in bulk (an answer per row), a sequence's enrollments a page at
//! a time (keyset cursor), and one enrollment with why it is (not) sending.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use sequence_engine::domain::contact::FieldValue;
use sequence_engine::domain::enrollment::{Enrollment, EnrollmentStatus};
use sequence_engine::domain::ids::{ContactId, EnrollmentId, SequenceId};
use sequence_engine::domain::import::{ContactRow, ImportOutcome};
use sequence_engine::domain::sequence::SequenceStatus;
use sequence_engine::domain::store::{EnrollOutcome, EnrollmentCursor};
use sequence_engine::EngineError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::reports::ExplanationView;
use super::sequences::load;
use crate::auth::Tenant;
use crate::problem::{ApiError, FieldError, JsonBody, Problem};
use crate::state::AppState;

/// The most rows one call takes.
pub const MAX_ROWS: usize = 10_000;

/// One contact to add (the original service's fields, and more).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ContactBody {
    /// The address; contacts are unique by it (trimmed, case-insensitive).
    pub email: String,
    /// Given name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Company.
    #[serde(default)]
    pub company: Option<String>,
    /// Phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// IANA zone, e.g. `Europe/Berlin`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeSet<String>,
    /// Custom fields (strings, numbers, booleans).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub custom_fields: BTreeMap<String, FieldValue>,
}

/// Contacts to enroll: `{"contacts": [...]}`, at most 10,000.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct ContactsBody {
    /// The rows.
    pub contacts: Vec<ContactBody>,
}

/// What became of one row.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowResult {
    /// The row's index in the request.
    pub row: usize,
    /// Its address.
    pub email: String,
    /// `enrolled`, `already_enrolled`, `suppressed` or `invalid`.
    pub status: String,
    /// The stored contact (unless invalid).
    pub contact_id: Option<Uuid>,
    /// The enrollment (new or existing).
    pub enrollment_id: Option<Uuid>,
    /// Why it was not enrolled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The row's problems, each with its field (`contacts[3].email`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// The answer of a bulk add: `contacts_added` as the original service answered, and a
/// result per row.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContactsAdded {
    /// Rows enrolled now.
    pub contacts_added: usize,
    /// One per row, in order.
    pub results: Vec<RowResult>,
}

impl From<ContactBody> for ContactRow {
    fn from(b: ContactBody) -> Self {
        let mut row = ContactRow::new(b.email);
        row.first_name = b.first_name;
        row.last_name = b.last_name;
        row.company = b.company;
        row.phone = b.phone;
        row.timezone = b.timezone;
        row.tags = b.tags;
        row.custom_fields = b.custom_fields;
        row
    }
}

/// Add contacts to a sequence and enroll them (the sequence must be active or paused).
/// Valid rows are stored even when others are refused; each row gets its answer.
#[utoipa::path(post, path = "/api/v1/sequences/{id}/contacts", tag = "contacts",
    params(("id" = Uuid, Path, description = "The sequence")),
    request_body = ContactsBody,
    responses((status = 201, body = ContactsAdded), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "The sequence is a draft or archived"),
        (status = 413, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn add_contacts(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<Uuid>,
    JsonBody(body): JsonBody<ContactsBody>,
) -> Result<Response, ApiError> {
    if body.contacts.len() > MAX_ROWS {
        return Err(ApiError::invalid(
            "contacts",
            format!(
                "at most {MAX_ROWS} rows a call, got {}",
                body.contacts.len()
            ),
        ));
    }
    let sequence = load(&state, &tenant, id).await?;
    if matches!(
        sequence.status(),
        SequenceStatus::Draft | SequenceStatus::Archived
    ) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "contacts are enrolled in an active or paused sequence: activate it first",
        ));
    }
    let emails: Vec<String> = body.contacts.iter().map(|c| c.email.clone()).collect();
    let rows: Vec<ContactRow> = body.contacts.into_iter().map(ContactRow::from).collect();
    let engine = state.engine();
    let started = std::time::Instant::now();
    let imported = engine.import_contacts(tenant.id, &rows).await?;
    let import_ms = started.elapsed().as_millis();
    let ids: Vec<ContactId> = imported.iter().filter_map(ImportOutcome::contact).collect();
    let mut enrolled = engine
        .enroll(tenant.id, SequenceId(id), &ids)
        .await?
        .into_iter();
    tracing::debug!(
        rows = rows.len(),
        import_ms,
        enroll_ms = started.elapsed().as_millis() - import_ms,
        "contacts added"
    );
    let mut results = Vec::with_capacity(imported.len());
    let mut added = 0;
    for (row, (outcome, email)) in imported.into_iter().zip(emails).enumerate() {
        let mut result = RowResult {
            row,
            email,
            status: String::new(),
            contact_id: outcome.contact().map(|c| c.0),
            enrollment_id: None,
            reason: None,
            errors: Vec::new(),
        };
        if let ImportOutcome::Invalid { problems } = &outcome {
            "invalid".clone_into(&mut result.status);
            result.errors = ApiError::validation(&format!("contacts[{row}]"), problems)
                .problem()
                .errors;
        } else {
            match enrolled.next() {
                Some(EnrollOutcome::Enrolled { enrollment }) => {
                    added += 1;
                    "enrolled".clone_into(&mut result.status);
                    result.enrollment_id = Some(enrollment.0);
                }
                Some(EnrollOutcome::AlreadyEnrolled { enrollment }) => {
                    "already_enrolled".clone_into(&mut result.status);
                    result.enrollment_id = Some(enrollment.0);
                }
                Some(EnrollOutcome::Suppressed { reason }) => {
                    "suppressed".clone_into(&mut result.status);
                    result.reason = Some(reason);
                }
                Some(EnrollOutcome::Invalid { reason }) => {
                    "invalid".clone_into(&mut result.status);
                    result.reason = Some(reason);
                }
                Some(other) => {
                    "invalid".clone_into(&mut result.status);
                    result.reason = Some(format!("{other:?}"));
                }
                None => {
                    "invalid".clone_into(&mut result.status);
                    result.reason = Some("not enrolled".into());
                }
            }
        }
        results.push(result);
    }
    if added > 0 {
        state.wake_engine();
    }
    Ok((
        StatusCode::CREATED,
        Json(ContactsAdded {
            contacts_added: added,
            results,
        }),
    )
        .into_response())
}

/// The query of an enrollments page.
#[derive(Debug, Clone, Deserialize, IntoParams)]
pub struct EnrollmentQuery {
    /// Only this status: `active`, `paused`, `completed` or `exited`.
    #[serde(default)]
    pub status: Option<String>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Page size, 1 to 1000 (100 when absent).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// An enrollment as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnrollmentView {
    /// Id.
    #[schema(value_type = Uuid)]
    pub id: EnrollmentId,
    /// The sequence.
    #[schema(value_type = Uuid)]
    pub sequence_id: SequenceId,
    /// The contact.
    #[schema(value_type = Uuid)]
    pub contact_id: ContactId,
    /// `active`, `paused`, `completed` or `exited`.
    #[schema(value_type = String)]
    pub status: EnrollmentStatus,
    /// Why it exited.
    #[schema(value_type = Option<String>)]
    pub exit_reason: Option<sequence_engine::domain::enrollment::ExitReason>,
    /// The step it waits to send.
    pub current_step: u32,
    /// Steps sent so far.
    pub steps_sent: u32,
    /// When it was enrolled.
    pub enrolled_at: DateTime<Utc>,
    /// When the engine looks at it next.
    pub next_due_at: Option<DateTime<Utc>>,
}

impl From<&Enrollment> for EnrollmentView {
    fn from(e: &Enrollment) -> Self {
        Self {
            id: e.id,
            sequence_id: e.sequence,
            contact_id: e.contact,
            status: e.status(),
            exit_reason: e.exit_reason(),
            current_step: e.current_step(),
            steps_sent: e.steps_sent(),
            enrolled_at: e.enrolled_at,
            next_due_at: e.next_due_at(),
        }
    }
}

/// A page of enrollments.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnrollmentPage {
    /// The enrollments, by (enrolled instant, id).
    pub items: Vec<EnrollmentView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// The keyset cursor: the last row's (enrolled instant as `seconds.nanoseconds`, id).
fn parse_cursor(cursor: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (at, id) = cursor.split_once('_')?;
    let (secs, nanos) = at.split_once('.')?;
    let at = DateTime::<Utc>::from_timestamp(secs.parse().ok()?, nanos.parse().ok()?)?;
    Some((at, Uuid::parse_str(id).ok()?))
}

fn cursor_of(e: &Enrollment) -> String {
    format!(
        "{}.{:09}_{}",
        e.enrolled_at.timestamp(),
        e.enrolled_at.timestamp_subsec_nanos(),
        e.id.0
    )
}

/// Up to `limit + 1` enrollments of a sequence after `after`, by (enrolled instant, id),
/// only those in `status` when it is given: one bounded page read from the store's keyset
/// (the extra row says whether a next page exists), never the sequence's whole list.
async fn page_of(
    state: &AppState,
    tenant: &Tenant,
    sequence: SequenceId,
    status: Option<EnrollmentStatus>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: usize,
) -> Result<Vec<Enrollment>, ApiError> {
    let cursor = after.map(|(enrolled_at, id)| EnrollmentCursor {
        enrolled_at,
        id: EnrollmentId(id),
    });
    state
        .engine()
        .store()
        .enrollments_page(tenant.id, sequence, status, cursor, limit + 1)
        .await
        .map_err(|e| ApiError::from(EngineError::from(e)))
}

fn status_named(name: &str) -> Option<EnrollmentStatus> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

/// A sequence's enrollments, a page at a time, by (enrolled instant, id).
#[utoipa::path(get, path = "/api/v1/sequences/{id}/enrollments", tag = "contacts",
    params(("id" = Uuid, Path, description = "The sequence"), EnrollmentQuery),
    responses((status = 200, body = EnrollmentPage), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn enrollments(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<Uuid>,
    query: Result<Query<EnrollmentQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EnrollmentPage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            status_named(s).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("status: {s:?} is not active, paused, completed or exited"),
                )
            })
        })
        .transpose()?;
    let after = q
        .cursor
        .as_deref()
        .map(|c| {
            parse_cursor(c).ok_or_else(|| {
                ApiError::new(StatusCode::BAD_REQUEST, "cursor: not a cursor of this API")
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "limit: between 1 and 1000",
        ));
    }
    load(&state, &tenant, id).await?;
    let mut all = page_of(&state, &tenant, SequenceId(id), status, after, limit).await?;
    let more = all.len() > limit;
    all.truncate(limit);
    Ok(Json(EnrollmentPage {
        next_cursor: more.then(|| all.last().map(cursor_of)).flatten(),
        items: all.iter().map(EnrollmentView::from).collect(),
    }))
}

/// An enrollment with why it is (not) sending.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnrollmentDetail {
    /// The enrollment.
    #[serde(flatten)]
    pub enrollment: EnrollmentView,
    /// The planner's last deferral reason while it waits (`no_capacity_today`,
    /// `outside_window`, `mailbox_paused`, ...).
    pub deferral_reason: Option<String>,
    /// When planning again could change that answer.
    pub deferral_not_before: Option<DateTime<Utc>>,
    /// One sentence for people: why it is (not) sending.
    pub summary: String,
    /// The engine's whole explanation (pending send, each mailbox's outlook).
    pub explanation: ExplanationView,
}

/// One enrollment, with its deferral reason: "why isn't it sending?".
#[utoipa::path(get, path = "/api/v1/enrollments/{id}", tag = "contacts",
    params(("id" = Uuid, Path, description = "The enrollment")),
    responses((status = 200, body = EnrollmentDetail), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn enrollment(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<Uuid>,
) -> Result<Json<EnrollmentDetail>, ApiError> {
    let engine = state.engine();
    let e = engine
        .store()
        .get_enrollment(tenant.id, EnrollmentId(id))
        .await
        .map_err(|e| ApiError::from(EngineError::from(e)))?
        .ok_or_else(|| ApiError::not_found("enrollment", id))?;
    let why = engine.why_not_sending(tenant.id, EnrollmentId(id)).await?;
    let deferral = why.deferral;
    Ok(Json(EnrollmentDetail {
        enrollment: EnrollmentView::from(&e),
        deferral_reason: deferral.and_then(|d| {
            serde_json::to_value(d.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
        }),
        deferral_not_before: deferral.and_then(|d| d.not_before),
        summary: why.summary.clone(),
        explanation: ExplanationView::from(&why),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_to_the_nanosecond() {
        use sequence_engine::domain::ids::{ContactId, TenantId};
        let at = DateTime::<Utc>::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        let e = Enrollment::new(TenantId::new(), SequenceId::new(), ContactId::new(), at, at);
        assert_eq!(parse_cursor(&cursor_of(&e)), Some((at, e.id.0)));
        assert_eq!(parse_cursor("garbage"), None);
        assert_eq!(status_named("exited"), Some(EnrollmentStatus::Exited));
        assert_eq!(status_named("nope"), None);
    }
}
