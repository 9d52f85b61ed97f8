//! `/t/...`: the links in sent mail. `o` answers a 1x1 GIF and records an open, `c` records
//! a click and redirects to the signed target only, `u` unsubscribes (GET shows a page whose
//! button POSTs; POST, as mail clients send it for RFC 8058 one-click, unsubscribes at
//! once). A token that does not verify (forged, altered, another kind) gets 404 and
//! nothing is recorded.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use sequence_engine::smtp::{TokenKind, VerifiedToken};

use crate::state::AppState;

/// The smallest transparent GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

fn verify(state: &AppState, token: &str, kind: TokenKind) -> Option<VerifiedToken> {
    match state.tracker().verify_kind(token, kind) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::debug!(error = %e, %kind, "tracking token refused");
            None
        }
    }
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, private"),
    );
    response
}

/// The open pixel: a 1x1 GIF; records an open when the token verifies.
#[utoipa::path(get, path = "/t/o/{token}", tag = "tracking",
    params(("token" = String, Path, description = "A signed open token")),
    responses((status = 200, content_type = "image/gif", description = "The pixel"),
        (status = 404, description = "A token that does not verify; nothing recorded")))]
pub(crate) async fn open(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let Some(v) = verify(&state, &token, TokenKind::Open) else {
        return not_found();
    };
    if let Err(e) = state.engine().open(v.tenant, v.enrollment, v.step).await {
        tracing::warn!(error = %e, "open not recorded");
    }
    no_store(([(header::CONTENT_TYPE, "image/gif")], PIXEL).into_response())
}

/// `target` as a `Location` value: bytes outside visible ASCII percent-encoded.
fn location(target: &str) -> Option<HeaderValue> {
    let lower = target.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return None;
    }
    let mut out = String::with_capacity(target.len());
    for b in target.bytes() {
        if b.is_ascii_graphic() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&out).ok()
}

/// A tracked link: record the click, redirect to the target the token signs.
#[utoipa::path(get, path = "/t/c/{token}", tag = "tracking",
    params(("token" = String, Path, description = "A signed click token")),
    responses((status = 302, description = "To the signed target"),
        (status = 404, description = "A token that does not verify; nothing recorded")))]
pub(crate) async fn click(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let Some(v) = verify(&state, &token, TokenKind::Click) else {
        return not_found();
    };
    let Some(to) = v.target.as_deref().and_then(location) else {
        return not_found();
    };
    if let Err(e) = state.engine().click(v.tenant, v.enrollment, v.step).await {
        tracing::warn!(error = %e, "click not recorded");
    }
    no_store((StatusCode::FOUND, [(header::LOCATION, to)]).into_response())
}

const PAGE_STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}button{font-size:1rem;padding:.6rem 1.2rem;cursor:pointer}";

/// The confirmation page: its button POSTs the one-click body to this same URL.
#[utoipa::path(get, path = "/t/u/{token}", tag = "tracking",
    params(("token" = String, Path, description = "A signed unsubscribe token")),
    responses((status = 200, content_type = "text/html", description = "The confirmation page"),
        (status = 404, description = "A token that does not verify")))]
pub(crate) async fn unsubscribe_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Response {
    if verify(&state, &token, TokenKind::Unsubscribe).is_none() {
        return not_found();
    }
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <meta name=\"robots\" content=\"noindex\"><title>Unsubscribe</title>\
         <style>{PAGE_STYLE}</style></head><body><h1>Unsubscribe</h1>\
         <p>Stop receiving these emails?</p>\
         <form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
         <button type=\"submit\" id=\"unsubscribe\">Unsubscribe</button></form></body></html>"
    );
    no_store(Html(page).into_response())
}

/// Unsubscribe at once (RFC 8058 one-click, or the page's button).
#[utoipa::path(post, path = "/t/u/{token}", tag = "tracking",
    params(("token" = String, Path, description = "A signed unsubscribe token")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`List-Unsubscribe=One-Click`"),
    responses((status = 200, content_type = "text/html", description = "Unsubscribed"),
        (status = 404, description = "A token that does not verify; nothing recorded")))]
pub(crate) async fn unsubscribe(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Response {
    let Some(v) = verify(&state, &token, TokenKind::Unsubscribe) else {
        return not_found();
    };
    if let Err(e) = state.engine().unsubscribe(v.tenant, v.contact).await {
        tracing::warn!(error = %e, "unsubscribe not recorded");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "please try again in a moment",
        )
            .into_response();
    }
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Unsubscribed</title>\
         <style>{PAGE_STYLE}</style></head><body><h1 id=\"done\">You are unsubscribed</h1>\
         <p>You will receive no more of these emails.</p></body></html>"
    );
    no_store(Html(page).into_response())
}
