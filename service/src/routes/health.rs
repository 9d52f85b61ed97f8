//! `GET /api/v1/health`: the store answers, the engine loop runs, and how long ago it
//! last ticked. No API key needed.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use sequence_engine::domain::ids::{SequenceId, TenantId};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

/// The store's state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatabaseHealth {
    /// Whether a read succeeded within 2 s.
    pub reachable: bool,
    /// How long the read took.
    pub latency_ms: u64,
}

/// The engine loop's state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EngineHealthView {
    /// Whether it runs.
    pub running: bool,
    /// When it last ticked.
    pub last_tick_at: Option<DateTime<Utc>>,
    /// Seconds since then.
    pub last_tick_age_seconds: Option<f64>,
    /// The last tick's error, if it failed.
    pub last_error: Option<String>,
}

/// The service's health.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` (then the status is 503).
    pub status: &'static str,
    /// The store.
    pub database: DatabaseHealth,
    /// The engine.
    pub engine: EngineHealthView,
}

/// Health: 200 when the store answers and the engine runs, else 503.
#[utoipa::path(get, path = "/api/v1/health", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub(crate) async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let started = Instant::now();
    // A read of a record that does not exist: one round trip to the store.
    let probe = state
        .engine()
        .store()
        .get_sequence(TenantId::from_u128(0), SequenceId::from_u128(0));
    let reachable = matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Ok(_))
    );
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let engine = state.health();
    let age = engine
        .last_tick_at
        .map(|at| (Utc::now() - at).num_milliseconds() as f64 / 1000.0);
    let ok = reachable && engine.running;
    let body = Health {
        status: if ok { "ok" } else { "degraded" },
        database: DatabaseHealth {
            reachable,
            latency_ms,
        },
        engine: EngineHealthView {
            running: engine.running,
            last_tick_at: engine.last_tick_at,
            last_tick_age_seconds: age,
            last_error: engine.last_error,
        },
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
