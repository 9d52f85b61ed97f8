//! The routes that move things: a sequence through its life, a mailbox's settings, pause
//! and resume, and the inbound signals, over real HTTP on the in-memory store.

#![expect(
    clippy::unwrap_used,
    reason = "a test's unwrap is its assertion; the helpers here are only for tests"
)]

mod support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{fields, monday, text, TestService};

async fn start() -> TestService {
    TestService::in_memory(Default::default()).await
}

#[tokio::test]
async fn a_sequence_moves_through_its_life_and_refuses_what_its_status_forbids() {
    let service = start().await;
    service.add_mailbox("KEY1").await;
    let (_, created) = service
        .post(
            "/api/v1/sequences",
            "KEY1",
            json!({"name": "Life", "steps": [{"subject": "a", "body": "a"}]}),
        )
        .await;
    let id = text(&created, "id");
    let at = |action: &str| format!("/api/v1/sequences/{id}/{action}");
    let (status, _) = service.post(&at("pause"), "KEY1", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a draft cannot pause");
    let (status, _) = service
        .post(
            &at("contacts"),
            "KEY1",
            json!({"contacts": [{"email": "a@b.example"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a draft enrolls nobody");
    for (action, expected) in [
        ("activate", "active"),
        ("pause", "paused"),
        ("resume", "active"),
        ("archive", "archived"),
    ] {
        let (status, s) = service.post(&at(action), "KEY1", json!({})).await;
        assert_eq!(
            (status, s["status"].as_str()),
            (StatusCode::OK, Some(expected)),
            "{action}"
        );
    }
    let (status, _) = service.post(&at("activate"), "KEY1", json!({})).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an archived sequence stays archived"
    );
    let (_, listed) = service.get("/api/v1/sequences", "KEY1").await;
    assert_eq!(listed["items"][0]["status"], "archived");
    // Without a mailbox anywhere, activation names the pool.
    let other = start().await;
    let (_, created) = other
        .post(
            "/api/v1/sequences",
            "KEY1",
            json!({"name": "x", "steps": [{"subject": "a", "body": "a"}]}),
        )
        .await;
    let (status, problem) = other
        .post(
            &format!("/api/v1/sequences/{}/activate", text(&created, "id")),
            "KEY1",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["mailbox_pool".to_owned()]
        )
    );
}

#[tokio::test]
async fn a_mailbox_is_changed_paused_and_resumed() {
    let service = start().await;
    let (status, created) = service
        .post(
            "/api/v1/mailboxes",
            "KEY1",
            json!({"address": "ana@sender.example", "timezone": "Europe/Berlin",
                   "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["daily_limit"], 30);
    assert_eq!(created["windows"][0]["start"], "09:00");
    let id = text(&created, "id");
    let path = format!("/api/v1/mailboxes/{id}");
    let (status, changed) = service
        .call(
            Method::PUT,
            &path,
            "KEY1",
            Some(json!({"daily_limit": 80, "display_name": "Ana"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (
            changed["daily_limit"].as_u64(),
            changed["timezone"].as_str()
        ),
        (Some(80), Some("Europe/Berlin"))
    );
    let (status, problem) = service
        .call(
            Method::PUT,
            &path,
            "KEY1",
            Some(json!({"address": "other@sender.example"})),
        )
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (StatusCode::UNPROCESSABLE_ENTITY, vec!["address".to_owned()])
    );
    let (status, problem) = service
        .call(
            Method::PUT,
            &path,
            "KEY1",
            Some(json!({"windows": [{"days": ["mon"], "start": "25:00", "end": "26:00"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(fields(&problem)[0].starts_with("windows"), "{problem}");
    let (_, paused) = service
        .post(&format!("{path}/pause"), "KEY1", json!({}))
        .await;
    assert_eq!(paused["status"], "paused");
    let (status, _) = service
        .post(&format!("{path}/pause"), "KEY1", json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, detail) = service.get(&path, "KEY1").await;
    assert_eq!(
        (
            detail["status"].as_str(),
            detail["usage"]["status"].as_str()
        ),
        (Some("paused"), Some("paused"))
    );
    assert_eq!(detail["usage"]["limit_today"], 80);
    let (_, resumed) = service
        .post(&format!("{path}/resume"), "KEY1", json!({}))
        .await;
    assert_eq!(resumed["status"], "active");
    let (_, all) = service.get("/api/v1/mailboxes", "KEY1").await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn bounces_and_unsubscribes_end_enrollments_for_good() {
    let service = start().await;
    service.add_mailbox("KEY1").await;
    let id = service
        .active_sequence(
            "KEY1",
            "Sig",
            json!([{"subject": "a", "body": "a"}, {"subject": "b", "body": "b", "wait_days": 2}]),
        )
        .await;
    let (_, added) = service
        .post(
            &format!("/api/v1/sequences/{id}/contacts"),
            "KEY1",
            json!({"contacts": [{"email": "hard@client.example"}, {"email": "gone@client.example"}]}),
        )
        .await;
    service
        .engine
        .run_until(monday() + chrono::Duration::days(1))
        .await
        .unwrap();
    let (status, signal) = service
        .post(
            "/api/v1/signals/bounce",
            "KEY1",
            json!({"contact_id": added["results"][0]["contact_id"], "kind": "hard"}),
        )
        .await;
    assert_eq!(
        (status, signal["signal"].as_str()),
        (StatusCode::OK, Some("bounce"))
    );
    let (status, _) = service
        .post(
            "/api/v1/signals/unsubscribe",
            "KEY1",
            json!({"email": "gone@client.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for (row, reason) in [(0, "bounced"), (1, "unsubscribed")] {
        let enrollment = text(&added["results"][row], "enrollment_id");
        let (_, e) = service
            .get(&format!("/api/v1/enrollments/{enrollment}"), "KEY1")
            .await;
        assert_eq!(
            (e["status"].as_str(), e["exit_reason"].as_str()),
            (Some("exited"), Some(reason))
        );
    }
    service
        .engine
        .run_until(monday() + chrono::Duration::days(5))
        .await
        .unwrap();
    let (_, stats) = service
        .get(&format!("/api/v1/sequences/{id}/stats"), "KEY1")
        .await;
    assert_eq!(
        stats["sent"].as_u64(),
        Some(2),
        "no follow-up went out: {stats}"
    );
    let (status, _) = service
        .post(
            "/api/v1/signals/reply",
            "KEY1",
            json!({"email": "nobody@client.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, problem) = service
        .post("/api/v1/signals/reply", "KEY1", json!({}))
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["contact_id".to_owned()]
        )
    );
    let (status, _) = service
        .post(
            "/api/v1/signals/bounce",
            "KEY1",
            json!({"email": "gone@client.example", "kind": "sideways"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
