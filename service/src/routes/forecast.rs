//! `GET /api/v1/sequences/{id}/forecast`: when will the open enrollments of a sequence be
//! done? The simulator (`simulate`) runs the real engine in virtual time on a scenario made
//! from the live data: the pool's mailboxes (limits, windows, gaps, warm-up, paused), the
//! steps each active enrollment has left, each starting when it is due. It answers the
//! dates and `simulate`'s text forecast and chart (`?format=svg` for the chart alone).
//!
//! A what-if, not a promise: the sequence is simulated alone on fresh mailboxes (what they
//! already sent today and other sequences sharing them are not counted), contacts' time
//! zones and step conditions are left out, and paused enrollments are not forecast.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use sequence_engine::domain::enrollment::EnrollmentStatus;
use sequence_engine::domain::ids::SequenceId;
use sequence_engine::domain::sequence::{Sequence, SequenceStatus};
use sequence_engine::domain::time::Delay;
use sequence_engine::EngineError;
use sequence_simulator::scenario::{
    ContactSpec, EnrollSpec, MailboxSpec, Retry, Scenario, SequenceSpec, StepSpec,
};
use sequence_simulator::{report, simulate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::sequences::load;
use crate::auth::Tenant;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

/// The most open enrollments forecast online (beyond, run `simulate` offline).
pub const MAX_FORECAST: usize = 20_000;

/// The forecast's query.
#[derive(Debug, Clone, Deserialize, IntoParams)]
pub struct ForecastQuery {
    /// Days to simulate, 1 to 120 (30 when absent).
    #[serde(default)]
    pub days: Option<u32>,
    /// `json` (the default) or `svg` (the chart alone).
    #[serde(default)]
    pub format: Option<String>,
}

/// When the open enrollments are expected to be done.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Forecast {
    /// The instant simulated from (now).
    pub from: DateTime<Utc>,
    /// Days simulated.
    pub days: u32,
    /// Active enrollments forecast.
    pub enrollments: usize,
    /// Paused enrollments (not forecast: they wait for a resume).
    pub paused: usize,
    /// Sends the simulation made.
    pub sends: usize,
    /// The day half of them are done (completed or exited), if within the days.
    pub half_done: Option<DateTime<Utc>>,
    /// The day 90% are done.
    pub ninety_percent_done: Option<DateTime<Utc>>,
    /// The day all are done.
    pub all_done: Option<DateTime<Utc>>,
    /// `simulate`'s forecast text.
    pub text: String,
    /// `simulate`'s chart (SVG): sends per day by step, and the share done.
    pub svg: String,
}

/// The scenario of the live data: sequence `s{k}` holds the steps from `k` on, for the
/// enrollments whose current step is `k`.
fn scenario_of(
    sequence: &Sequence,
    mailboxes: &[sequence_engine::domain::mailbox::Mailbox],
    open: &[sequence_engine::domain::enrollment::Enrollment],
    now: DateTime<Utc>,
    days: u32,
) -> Scenario {
    let mailbox_ids: Vec<String> = mailboxes.iter().map(|m| m.id.to_string()).collect();
    let mut by_step: BTreeMap<u32, SequenceSpec> = BTreeMap::new();
    let mut contacts = Vec::with_capacity(open.len());
    for (i, e) in open.iter().enumerate() {
        let k = e.current_step();
        let spec = by_step.entry(k).or_insert_with(|| SequenceSpec {
            id: format!("s{k}"),
            mailboxes: mailbox_ids.clone(),
            exit_on_reply: sequence.exit_on_reply,
            recipient_windows: sequence.recipient_windows.clone(),
            steps: sequence
                .steps()
                .iter()
                .skip(k as usize)
                .enumerate()
                .map(|(j, st)| StepSpec {
                    // The first step left starts when it is due: the enrollment is put in
                    // then, with no delay.
                    delay: if j == 0 { Delay::ZERO } else { st.delay },
                    subject: "forecast".into(),
                    body: "forecast".into(),
                    condition_tag: None,
                    exit_on_condition_fail: false,
                })
                .collect(),
        });
        if spec.steps.is_empty() {
            continue;
        }
        contacts.push(ContactSpec {
            id: format!("c{i}"),
            email: format!("c{i}@forecast.invalid"),
            first_name: None,
            last_name: None,
            company: None,
            timezone: None,
            tags: std::collections::BTreeSet::new(),
            enroll: vec![EnrollSpec {
                sequence: spec.id.clone(),
                at: e.due_at().or(e.next_due_at()).unwrap_or(now).max(now),
            }],
        });
    }
    Scenario {
        name: sequence.name.clone(),
        start: now,
        days,
        seed: 7,
        retry: Retry::default(),
        mailboxes: mailboxes
            .iter()
            .map(|m| MailboxSpec {
                id: m.id.to_string(),
                email: m.address.clone(),
                timezone: m.timezone,
                daily_limit: m.daily_limit,
                windows: m.schedule.clone(),
                min_gap_seconds: m.min_gap_seconds,
                warmup: m.warmup,
                paused: !m.is_active(),
            })
            .collect(),
        sequences: by_step
            .into_values()
            .filter(|s| !s.steps.is_empty())
            .collect(),
        contacts,
        events: Vec::new(),
        failures: Vec::new(),
    }
}

/// The instant by which `share` of `total` were done.
fn done_by(ended: &[DateTime<Utc>], total: usize, share: f64) -> Option<DateTime<Utc>> {
    if total == 0 {
        return None;
    }
    let k = ((share * total as f64).ceil() as usize).max(1);
    ended.get(k - 1).copied()
}

/// Forecast when the sequence's open enrollments will be done, by simulating the engine on
/// the live data (see the module docs for what it leaves out).
#[utoipa::path(get, path = "/api/v1/sequences/{id}/forecast", tag = "sequences",
    params(("id" = Uuid, Path, description = "The sequence"), ForecastQuery),
    responses((status = 200, body = Forecast), (status = 200, content_type = "image/svg+xml", description = "with format=svg"),
        (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn forecast(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<Uuid>,
    query: Result<Query<ForecastQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let days = q.days.unwrap_or(30);
    if !(1..=120).contains(&days) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "days: between 1 and 120",
        ));
    }
    let svg_only = match q.format.as_deref() {
        None | Some("json") => false,
        Some("svg") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("format: {other:?} is not json or svg"),
            ))
        }
    };
    let sequence = load(&state, &tenant, id).await?;
    if matches!(
        sequence.status(),
        SequenceStatus::Draft | SequenceStatus::Archived
    ) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "only an active or paused sequence has enrollments to forecast",
        ));
    }
    let store = state.engine().store();
    let db = |e| ApiError::from(EngineError::from(e));
    let mut open = store
        .list_enrollments(tenant.id, SequenceId(id))
        .await
        .map_err(db)?;
    let paused = open
        .iter()
        .filter(|e| e.status() == EnrollmentStatus::Paused)
        .count();
    open.retain(|e| e.status() == EnrollmentStatus::Active);
    if open.len() > MAX_FORECAST {
        return Err(ApiError::invalid(
            "enrollments",
            format!(
                "{} open enrollments: at most {MAX_FORECAST} are forecast online; run `simulate`",
                open.len()
            ),
        ));
    }
    open.sort_by_key(|e| (e.enrolled_at, e.id));
    let mut mailboxes = Vec::new();
    for m in &sequence.mailbox_pool {
        if let Some(mailbox) = store.get_mailbox(tenant.id, *m).await.map_err(db)? {
            mailboxes.push(mailbox);
        }
    }
    let now = state.now();
    let scenario = scenario_of(&sequence, &mailboxes, &open, now, days);
    let run = simulate::run(&scenario, &simulate::Options::default())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "forecast simulation failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the forecast failed")
        })?;
    let svg = report::volume_svg(&scenario, &run).map_err(|e| {
        tracing::error!(error = %e, "forecast chart failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the forecast chart failed",
        )
    })?;
    if svg_only {
        return Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response());
    }
    let mut ended: Vec<DateTime<Utc>> = run
        .summary
        .enrollments
        .iter()
        .filter_map(|e| e.ended_at)
        .collect();
    ended.sort_unstable();
    let total = run.summary.enrollments.len();
    Ok(Json(Forecast {
        from: now,
        days,
        enrollments: total,
        paused,
        sends: run.attempts.len(),
        half_done: done_by(&ended, total, 0.5),
        ninety_percent_done: done_by(&ended, total, 0.9),
        all_done: done_by(&ended, total, 1.0),
        text: report::forecast(&scenario, &run),
        svg,
    })
    .into_response())
}
