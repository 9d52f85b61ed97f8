//! The OpenAPI 3.1 document over real HTTP: generated from the code, presented on a page,
//! and every JSON answer described down to its fields.

#![expect(
    clippy::unwrap_used,
    reason = "a test's unwrap is its assertion; the helpers here are only for tests"
)]

mod support;

use reqwest::{Method, StatusCode};
use sequence_service::config::Limits;
use serde_json::Value;
use support::{text, TestService};

#[tokio::test]
async fn the_openapi_document_is_generated_and_presented() {
    let service = TestService::in_memory(Limits::default()).await;
    let response = service
        .request(Method::GET, "/api/v1/openapi.json", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.unwrap();
    assert!(
        text(&doc, "openapi").starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/api/v1/health",
        "/api/v1/sequences",
        "/api/v1/sequences/{id}/steps/{step_id}",
        "/api/v1/sequences/{id}/contacts",
        "/api/v1/sequences/{id}/enrollments",
        "/api/v1/enrollments/{id}",
        "/api/v1/mailboxes/{id}/pause",
        "/api/v1/signals/bounce",
        "/api/v1/sequences/{id}/forecast",
        "/t/c/{token}",
        "/t/u/{token}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["NewSequence"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    the_json_answers_have_schemas(&doc);
    let page = service
        .request(Method::GET, "/api/v1/docs", None)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("/api/v1/openapi.json") && !html.contains("<script src"),
        "self-contained"
    );
}

/// The schema `name` of the document's components.
fn component<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    schema
}

/// The name a `$ref` to a component names.
fn ref_name(schema: &Value) -> Option<&str> {
    schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
}

/// Property `name` of `schema`, looked for in its own properties and in those of the parts
/// of an `allOf` (a `#[serde(flatten)]` field), following `$ref`s.
fn property<'a>(doc: &'a Value, schema: &'a Value, name: &str) -> Option<&'a Value> {
    if let Some(target) = ref_name(schema) {
        return property(doc, component(doc, target), name);
    }
    if let Some(p) = schema["properties"].get(name) {
        return Some(p);
    }
    schema["allOf"]
        .as_array()?
        .iter()
        .find_map(|part| property(doc, part, name))
}

/// The component a property refers to, directly or as `oneOf [null, $ref]` (an `Option`).
fn referred(property: &Value) -> Option<&str> {
    ref_name(property).or_else(|| property["oneOf"].as_array()?.iter().find_map(ref_name))
}

/// Every `200` JSON answer names a component schema (no bare `object`), and the engine's
/// reports (statistics, "why isn't it sending?", a mailbox's usage) are described down to
/// their fields.
fn the_json_answers_have_schemas(doc: &Value) {
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let json = &operation["responses"]["200"]["content"]["application/json"];
            if json.is_object() {
                assert!(
                    ref_name(&json["schema"]).is_some(),
                    "{method} {path}: the 200 answer has no schema: {json}"
                );
            }
        }
    }
    let ok = |path: &str| {
        ref_name(
            &doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"],
        )
        .map(str::to_owned)
    };
    assert_eq!(
        ok("/api/v1/sequences/{id}/stats").as_deref(),
        Some("SequenceStatsView")
    );
    let stats = component(doc, "SequenceStatsView");
    for field in ["sent", "open_rate", "exited", "average_seconds_to_complete"] {
        assert!(property(doc, stats, field).is_some(), "stats: {field}");
    }
    let steps = property(doc, stats, "steps").unwrap();
    assert_eq!(ref_name(&steps["items"]), Some("StepStatsView"));

    assert_eq!(
        ok("/api/v1/enrollments/{id}").as_deref(),
        Some("EnrollmentDetail")
    );
    let detail = component(doc, "EnrollmentDetail");
    let explanation = property(doc, detail, "explanation").unwrap();
    assert_eq!(
        referred(explanation),
        Some("ExplanationView"),
        "{explanation}"
    );
    let explanation = component(doc, "ExplanationView");
    for field in ["pending_send", "summary", "deferral"] {
        assert!(
            property(doc, explanation, field).is_some(),
            "explanation: {field}"
        );
    }
    let outlooks = property(doc, explanation, "mailboxes").unwrap();
    assert_eq!(ref_name(&outlooks["items"]), Some("MailboxOutlookView"));
    assert!(property(doc, component(doc, "MailboxOutlookView"), "next_opening").is_some());

    assert_eq!(
        ok("/api/v1/mailboxes/{id}").as_deref(),
        Some("MailboxDetail")
    );
    let usage = property(doc, component(doc, "MailboxDetail"), "usage").unwrap();
    assert_eq!(referred(usage), Some("MailboxUsageView"), "{usage}");
    let usage = component(doc, "MailboxUsageView");
    assert_eq!(
        property(doc, usage, "today").and_then(referred),
        Some("MailboxDayView")
    );
    assert!(property(doc, usage, "limit_today").is_some());
}
