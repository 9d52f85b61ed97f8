//! The routes, one module per resource, and the OpenAPI document generated from their
//! annotations.

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::state::AppState;

pub mod contacts;
pub mod forecast;
pub mod health;
pub mod mailboxes;
pub mod reports;
pub mod sequence_body;
pub mod sequences;
pub mod signals;
pub mod tracking;

/// The OpenAPI 3.1 document of the API.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "sequence_service", description = "Multi-step email sequences over the sequence engine. Every /api/v1 route but health takes `Authorization: Bearer <tenant key>`; errors are RFC 9457 problem details."),
    paths(
        health::health,
        sequences::create, sequences::list, sequences::get, sequences::update, sequences::delete,
        sequences::add_step, sequences::update_step, sequences::delete_step,
        sequences::activate, sequences::pause, sequences::resume, sequences::archive,
        sequences::clone, sequences::stats, forecast::forecast,
        contacts::add_contacts, contacts::enrollments, contacts::enrollment,
        mailboxes::create, mailboxes::list, mailboxes::get, mailboxes::update,
        mailboxes::pause, mailboxes::resume,
        signals::reply, signals::bounce, signals::unsubscribe,
        tracking::open, tracking::click, tracking::unsubscribe_page, tracking::unsubscribe,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "sequences", description = "Sequences and their steps"),
        (name = "contacts", description = "Contacts and enrollments"),
        (name = "mailboxes", description = "Sending mailboxes"),
        (name = "signals", description = "Replies, bounces and unsubscribes from inbound mail"),
        (name = "tracking", description = "The links in sent mail (no API key: the token is signed)"),
        (name = "health", description = "Liveness"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer scheme the paths name.
#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

async fn openapi_json() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

/// A page that presents the OpenAPI document (self-contained: no script from elsewhere).
async fn docs_page() -> impl IntoResponse {
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
        )],
        Html(include_str!("docs.html")),
    )
}

/// Every route, without state or limits (see [`crate::Service::router`]).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/health", get(health::health))
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/api/v1/docs", get(docs_page))
        .route(
            "/api/v1/sequences",
            post(sequences::create).get(sequences::list),
        )
        .route(
            "/api/v1/sequences/{id}",
            get(sequences::get)
                .put(sequences::update)
                .delete(sequences::delete),
        )
        .route("/api/v1/sequences/{id}/steps", post(sequences::add_step))
        .route(
            "/api/v1/sequences/{id}/steps/{step_id}",
            put(sequences::update_step).delete(sequences::delete_step),
        )
        .route("/api/v1/sequences/{id}/activate", post(sequences::activate))
        .route("/api/v1/sequences/{id}/pause", post(sequences::pause))
        .route("/api/v1/sequences/{id}/resume", post(sequences::resume))
        .route("/api/v1/sequences/{id}/archive", post(sequences::archive))
        .route("/api/v1/sequences/{id}/clone", post(sequences::clone))
        .route("/api/v1/sequences/{id}/stats", get(sequences::stats))
        .route("/api/v1/sequences/{id}/forecast", get(forecast::forecast))
        .route(
            "/api/v1/sequences/{id}/contacts",
            post(contacts::add_contacts),
        )
        .route(
            "/api/v1/sequences/{id}/enrollments",
            get(contacts::enrollments),
        )
        .route("/api/v1/enrollments/{id}", get(contacts::enrollment))
        .route(
            "/api/v1/mailboxes",
            post(mailboxes::create).get(mailboxes::list),
        )
        .route(
            "/api/v1/mailboxes/{id}",
            get(mailboxes::get).put(mailboxes::update),
        )
        .route("/api/v1/mailboxes/{id}/pause", post(mailboxes::pause))
        .route("/api/v1/mailboxes/{id}/resume", post(mailboxes::resume))
        .route("/api/v1/signals/reply", post(signals::reply))
        .route("/api/v1/signals/bounce", post(signals::bounce))
        .route("/api/v1/signals/unsubscribe", post(signals::unsubscribe))
        .route("/t/o/{token}", get(tracking::open))
        .route("/t/c/{token}", get(tracking::click))
        .route(
            "/t/u/{token}",
            get(tracking::unsubscribe_page).post(tracking::unsubscribe),
        )
        .fallback(|| async {
            crate::problem::ApiError::new(axum::http::StatusCode::NOT_FOUND, "no such route")
        })
}
