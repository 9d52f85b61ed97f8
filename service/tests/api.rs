//! The API's contract over real HTTP on the in-memory store: the original service's bodies,
//! keyset pages, every class of bad input, tenants kept apart, forged tracking tokens, and
//! the forecast. The OpenAPI document is checked in `openapi.rs`.

#![expect(
    clippy::unwrap_used,
    reason = "a test's unwrap is its assertion; the helpers here are only for tests"
)]

mod support;

use reqwest::{Method, StatusCode};
use sequence_engine::domain::ids::{ContactId, EnrollmentId, TenantId};
use sequence_engine::smtp::{TokenKind, TrackedSend, Tracker};
use sequence_service::config::Limits;
use serde_json::{json, Value};
use support::{fields, monday, read, text, TestService};

async fn start_with(limits: Limits) -> TestService {
    TestService::in_memory(limits).await
}

async fn start() -> TestService {
    start_with(Limits::default()).await
}

/// A mailbox and an active one-step sequence of `key`'s tenant; answers the sequence id.
async fn active_sequence(service: &TestService, key: &str) -> String {
    service.add_mailbox(key).await;
    let steps = json!([{"subject": "Hi", "content": "Hello", "wait_days": 0}]);
    service.active_sequence(key, "S", steps).await
}

#[tokio::test]
async fn clients_of_the_original_service_work_unchanged() {
    let service = start().await;
    service.add_mailbox("KEY1").await;
    let (status, created) = service
        .post(
            "/api/v1/sequences",
            "KEY1",
            json!({"name": "Welcome Sequence", "open_tracking_enabled": true,
                   "click_tracking_enabled": true,
                   "steps": [{"step_order": 0, "subject": "Welcome!",
                              "content": "Hi {name}, welcome!", "wait_days": 0},
                             {"step_order": 1, "subject": "Day 3",
                              "content": "Still there, {first_name}?", "wait_days": 3}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "Welcome Sequence");
    assert_eq!(created["step_count"], 2);
    assert!(uuid::Uuid::parse_str(&text(&created, "id")).is_ok());
    assert_eq!(
        (
            created["track_opens"].as_bool(),
            created["track_clicks"].as_bool()
        ),
        (Some(true), Some(true))
    );
    assert_eq!(created["steps"][0]["body"], "Hi {{ first_name }}, welcome!");
    assert_eq!(
        created["steps"][1]["delay"],
        json!({"amount": 3, "unit": "days"})
    );
    let id = text(&created, "id");
    // No pool given: activation takes the tenant's mailboxes.
    let (status, active) = service
        .post(
            &format!("/api/v1/sequences/{id}/activate"),
            "KEY1",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{active}");
    assert_eq!(active["mailbox_pool"].as_array().map(Vec::len), Some(1));

    let (status, added) = service
        .post(
            &format!("/api/v1/sequences/{id}/contacts"),
            "KEY1",
            json!({"contacts": [
                {"email": "a@client.example", "first_name": "A", "last_name": "One", "company": "Co"},
                {"email": "b@client.example", "first_name": "B", "last_name": "Two", "company": "Co"},
                {"email": "c@client.example", "first_name": "C", "last_name": "Three", "company": "Co"}
            ]}),
        )
        .await;
    assert_eq!(
        (status, added["contacts_added"].as_u64()),
        (StatusCode::CREATED, Some(3))
    );

    // Keyset pages of two: two, then one, then no cursor.
    let path = format!("/api/v1/sequences/{id}/enrollments?status=active&limit=2");
    let (status, first) = service.get(&path, "KEY1").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
    let cursor = text(&first, "next_cursor");
    let (_, second) = service
        .get(&format!("{path}&cursor={cursor}"), "KEY1")
        .await;
    assert_eq!(second["items"].as_array().map(Vec::len), Some(1));
    assert!(second["next_cursor"].is_null());
    let mut seen: Vec<Value> = first["items"].as_array().unwrap().clone();
    seen.extend(second["items"].as_array().unwrap().iter().cloned());
    let ids: std::collections::HashSet<String> = seen.iter().map(|e| text(e, "id")).collect();
    assert_eq!(ids.len(), 3);
    let (_, none) = service
        .get(
            &format!("/api/v1/sequences/{id}/enrollments?status=completed"),
            "KEY1",
        )
        .await;
    assert_eq!(none["items"], json!([]));
}

#[tokio::test]
async fn bad_input_is_400_413_or_422_naming_the_field_never_500() {
    let service = start_with(Limits {
        body_bytes: 64 * 1024,
        ..Limits::default()
    })
    .await;
    let post_raw = |path: &str, body: &str| {
        service
            .request(Method::POST, path, Some("KEY1"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    };
    // Not JSON.
    let (status, problem) = read(post_raw("/api/v1/sequences", "{\"name\": ").await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    // The wrong shape: the field is named.
    let (status, problem) = service
        .post(
            "/api/v1/sequences",
            "KEY1",
            json!({"name": "x", "steps": [{"subject": "a", "content": "b"},
                                          {"subject": "a", "content": "b", "wait_days": -1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&problem), ["steps[1].wait_days"]);
    let (status, problem) = service
        .post("/api/v1/sequences", "KEY1", json!({"steps": []}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem["detail"].as_str().unwrap().contains("name"),
        "{problem}"
    );
    // Domain rules: every problem at once, each with its path.
    let (status, problem) = service
        .post(
            "/api/v1/sequences",
            "KEY1",
            json!({"name": "x", "steps": [{"subject": "ok", "content": "ok"},
                                          {"subject": "{{ first_name", "content": "b"},
                                          {"subject": "a", "content": "b", "wait_days": 1,
                                           "delay": {"amount": 1, "unit": "hours"}}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let named = fields(&problem);
    assert!(
        named.iter().any(|f| f.starts_with("steps[1].subject")),
        "{named:?}"
    );
    assert!(named.contains(&"steps[2].delay".to_owned()), "{named:?}");
    let (status, problem) = service
        .post("/api/v1/sequences", "KEY1", json!({"name": ""}))
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (StatusCode::UNPROCESSABLE_ENTITY, vec!["name".to_owned()])
    );
    let (status, problem) = service
        .post(
            "/api/v1/mailboxes",
            "KEY1",
            json!({"address": "ana@x.example", "timezone": "Mars/Base"}),
        )
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["timezone".to_owned()]
        )
    );
    // Over the size limit: 413.
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(100 * 1024));
    let (status, _) = read(post_raw("/api/v1/sequences", &big).await.unwrap()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // More than 10,000 rows: 422 on `contacts`.
    let id = active_sequence(&service, "KEY1").await;
    let rows: Vec<Value> = (0..10_001).map(|_| json!({"email": "a@b.c"})).collect();
    let big_ok = start().await;
    let id2 = active_sequence(&big_ok, "KEY1").await;
    let (status, problem) = big_ok
        .post(
            &format!("/api/v1/sequences/{id2}/contacts"),
            "KEY1",
            json!({"contacts": rows}),
        )
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["contacts".to_owned()]
        )
    );
    // Paths, queries and methods axum refuses are problems too.
    for (method, path, expected) in [
        (
            Method::GET,
            "/api/v1/sequences/not-a-uuid".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            format!("/api/v1/sequences/{id}/enrollments?status=sleeping"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            format!("/api/v1/sequences/{id}/enrollments?cursor=zzz"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            format!("/api/v1/sequences/{id}/enrollments?limit=0"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PATCH,
            format!("/api/v1/sequences/{id}"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            "/api/v1/nothing-here".to_owned(),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (status, problem) = service.call(method.clone(), &path, "KEY1", None).await;
        assert_eq!(status, expected, "{method} {path}: {problem}");
    }
    // State conflicts are 409: steps of an active sequence, deleting it.
    let (status, _) = service
        .call(
            Method::PUT,
            &format!("/api/v1/sequences/{id}/steps/0"),
            "KEY1",
            Some(json!({"subject": "s", "body": "b"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = service
        .call(
            Method::DELETE,
            &format!("/api/v1/sequences/{id}"),
            "KEY1",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // No key, a wrong key: 401 with the Bearer challenge.
    for key in [None, Some("nope")] {
        let response = service
            .request(Method::GET, "/api/v1/sequences", key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .map(reqwest::header::HeaderValue::as_bytes),
            Some(&b"Bearer"[..])
        );
        let (status, _) = read(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn steps_are_edited_in_a_draft_and_a_draft_can_be_deleted() {
    let service = start().await;
    let (_, created) = service
        .post("/api/v1/sequences", "KEY1",
              json!({"name": "D", "steps": [{"subject": "one", "body": "1"}, {"subject": "two", "body": "2"}]}))
        .await;
    let id = text(&created, "id");
    let (status, changed) = service
        .call(Method::PUT, &format!("/api/v1/sequences/{id}/steps/1"), "KEY1",
              Some(json!({"subject": "TWO", "body": "2", "delay": {"amount": 3, "unit": "business_days"}})))
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["steps"][1]["subject"], "TWO");
    assert_eq!(changed["steps"][1]["delay"]["unit"], "business_days");
    let (status, _) = service
        .call(
            Method::PUT,
            &format!("/api/v1/sequences/{id}/steps/9"),
            "KEY1",
            Some(json!({"subject": "x", "body": "y"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, removed) = service
        .call(
            Method::DELETE,
            &format!("/api/v1/sequences/{id}/steps/0"),
            "KEY1",
            None,
        )
        .await;
    assert_eq!(
        (status, removed["step_count"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    assert_eq!(removed["steps"][0]["subject"], "TWO");
    let (status, renamed) = service
        .call(
            Method::PUT,
            &format!("/api/v1/sequences/{id}"),
            "KEY1",
            Some(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(
        (status, renamed["name"].as_str()),
        (StatusCode::OK, Some("Renamed"))
    );
    let (status, _) = service
        .call(
            Method::DELETE,
            &format!("/api/v1/sequences/{id}"),
            "KEY1",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = service
        .get(&format!("/api/v1/sequences/{id}"), "KEY1")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a deleted draft is gone");
}

#[tokio::test]
async fn delete_removes_only_a_draft_of_the_callers_tenant() {
    let service = start().await;
    let steps = json!([{"subject": "one", "body": "1"}]);
    let draft = service.draft_sequence("KEY1", "Draft", steps).await;
    let active = active_sequence(&service, "KEY1").await;
    let delete = |id: &str, key: &'static str| {
        let path = format!("/api/v1/sequences/{id}");
        let service = &service;
        async move { service.call(Method::DELETE, &path, key, None).await }
    };

    // Another tenant's key finds nothing to delete, and the draft stays.
    let (status, _) = delete(&draft, "KEY2").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = service
        .get(&format!("/api/v1/sequences/{draft}"), "KEY1")
        .await;
    assert_eq!(status, StatusCode::OK, "another tenant's delete left it");

    // Not a draft: 409, and the sequence is as it was.
    let (_, before) = service
        .get(&format!("/api/v1/sequences/{active}"), "KEY1")
        .await;
    let (status, problem) = delete(&active, "KEY1").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        text(&problem, "detail").contains("this sequence is active"),
        "{problem}"
    );
    let (status, after) = service
        .get(&format!("/api/v1/sequences/{active}"), "KEY1")
        .await;
    assert_eq!((status, &after), (StatusCode::OK, &before));

    // The draft: 204, then gone from the sequence and from the list.
    let (status, _) = delete(&draft, "KEY1").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = service
        .get(&format!("/api/v1/sequences/{draft}"), "KEY1")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = service.get("/api/v1/sequences", "KEY1").await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, vec![active.as_str()]);
    let (status, _) = delete(&draft, "KEY1").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a second delete finds nothing"
    );
}

#[tokio::test]
async fn a_key_never_reaches_another_tenants_records() {
    let service = start().await;
    let id = active_sequence(&service, "KEY1").await;
    let (_, added) = service.add_contact("KEY1", &id, "bo@client.example").await;
    let enrollment = text(&added["results"][0], "enrollment_id");
    let (_, mailboxes) = service.get("/api/v1/mailboxes", "KEY1").await;
    let mailbox = text(&mailboxes["items"][0], "id");

    for (method, path, body) in [
        (Method::GET, format!("/api/v1/sequences/{id}"), None),
        (
            Method::PUT,
            format!("/api/v1/sequences/{id}"),
            Some(json!({"name": "mine"})),
        ),
        (Method::DELETE, format!("/api/v1/sequences/{id}"), None),
        (Method::POST, format!("/api/v1/sequences/{id}/pause"), None),
        (
            Method::POST,
            format!("/api/v1/sequences/{id}/archive"),
            None,
        ),
        (Method::POST, format!("/api/v1/sequences/{id}/clone"), None),
        (Method::GET, format!("/api/v1/sequences/{id}/stats"), None),
        (
            Method::GET,
            format!("/api/v1/sequences/{id}/enrollments"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/sequences/{id}/contacts"),
            Some(json!({"contacts": []})),
        ),
        (
            Method::GET,
            format!("/api/v1/enrollments/{enrollment}"),
            None,
        ),
        (Method::GET, format!("/api/v1/mailboxes/{mailbox}"), None),
        (
            Method::PUT,
            format!("/api/v1/mailboxes/{mailbox}"),
            Some(json!({"daily_limit": 1})),
        ),
        (
            Method::POST,
            format!("/api/v1/mailboxes/{mailbox}/pause"),
            None,
        ),
        (
            Method::POST,
            "/api/v1/signals/reply".to_owned(),
            Some(json!({"email": "bo@client.example"})),
        ),
        (
            Method::POST,
            "/api/v1/signals/unsubscribe".to_owned(),
            Some(json!({"email": "bo@client.example"})),
        ),
    ] {
        let (status, problem) = service.call(method.clone(), &path, "KEY2", body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {problem}");
    }
    let (_, theirs) = service.get("/api/v1/sequences", "KEY2").await;
    assert_eq!(theirs["items"], json!([]));
    // Another tenant's mailbox in a pool is refused, named.
    let (status, problem) = service
        .post(
            "/api/v1/sequences",
            "KEY2",
            json!({"name": "x", "mailbox_pool": [mailbox]}),
        )
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["mailbox_pool[0]".to_owned()]
        )
    );
    // Nothing of acme's changed.
    let (_, mine) = service
        .get(&format!("/api/v1/sequences/{id}"), "KEY1")
        .await;
    assert_eq!(
        (mine["name"].as_str(), mine["status"].as_str()),
        (Some("S"), Some("active"))
    );
    let (_, why) = service
        .get(&format!("/api/v1/enrollments/{enrollment}"), "KEY1")
        .await;
    assert_eq!(why["status"], "active");
}

#[tokio::test]
async fn forged_tracking_tokens_get_404_and_record_nothing() {
    let service = start().await;
    let id = active_sequence(&service, "KEY1").await;
    let (_, added) = service.add_contact("KEY1", &id, "bo@client.example").await;
    service
        .engine
        .run_until(monday() + chrono::Duration::days(2))
        .await
        .unwrap();
    let enrollment =
        EnrollmentId(uuid::Uuid::parse_str(&text(&added["results"][0], "enrollment_id")).unwrap());
    let contact =
        ContactId(uuid::Uuid::parse_str(&text(&added["results"][0], "contact_id")).unwrap());
    let send = TrackedSend::new(TenantId::from_name("acme"), enrollment, contact, 0);
    let other = Tracker::new("http://127.0.0.1/t", "another secret of enough bytes").unwrap();
    let genuine = service.tracker.token(TokenKind::Open, &send, None);
    let mut altered: Vec<char> = genuine.chars().collect();
    altered[10] = if altered[10] == 'A' { 'B' } else { 'A' };
    let altered: String = altered.into_iter().collect();
    let forged = [
        ("o", other.token(TokenKind::Open, &send, None)),
        ("o", altered),
        ("o", "garbage".to_owned()),
        (
            "c",
            other.token(TokenKind::Click, &send, Some("https://evil.example/")),
        ),
        ("c", genuine.clone()),
        ("u", other.token(TokenKind::Unsubscribe, &send, None)),
        ("u", service.tracker.token(TokenKind::Open, &send, None)),
    ];
    for (kind, token) in &forged {
        for method in [Method::GET, Method::POST] {
            if *kind != "u" && method == Method::POST {
                continue;
            }
            let response = service
                .request(method.clone(), &format!("/t/{kind}/{token}"), None)
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::NOT_FOUND,
                "{method} /t/{kind}/{token}"
            );
            assert!(response.headers().get("location").is_none());
        }
    }
    let (_, stats) = service
        .get(&format!("/api/v1/sequences/{id}/stats"), "KEY1")
        .await;
    assert_eq!(
        (
            stats["sent"].as_u64(),
            stats["opened"].as_u64(),
            stats["clicked"].as_u64()
        ),
        (Some(1), Some(0), Some(0))
    );
    // Still subscribed: a second sequence enrolls Bo.
    let (_, copy) = service
        .post(&format!("/api/v1/sequences/{id}/clone"), "KEY1", json!({}))
        .await;
    let copy_id = text(&copy, "id");
    assert_eq!(copy["name"], "S (copy)");
    service
        .post(
            &format!("/api/v1/sequences/{copy_id}/activate"),
            "KEY1",
            json!({}),
        )
        .await;
    let (_, again) = service
        .add_contact("KEY1", &copy_id, "bo@client.example")
        .await;
    assert_eq!(again["results"][0]["status"], "enrolled", "{again}");
    // The genuine token does record.
    let ok = service
        .request(Method::GET, &format!("/t/o/{genuine}"), None)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let (_, stats) = service
        .get(&format!("/api/v1/sequences/{id}/stats"), "KEY1")
        .await;
    assert_eq!(stats["opened"].as_u64(), Some(1));
}

#[tokio::test]
async fn the_forecast_simulates_the_open_enrollments_on_the_live_mailboxes() {
    let service = start().await;
    let (_, mailbox) = service
        .post(
            "/api/v1/mailboxes",
            "KEY1",
            json!({"address": "ana@sender.example", "daily_limit": 2}),
        )
        .await;
    let (_, created) = service
        .post(
            "/api/v1/sequences",
            "KEY1",
            json!({"name": "F", "mailbox_pool": [mailbox["id"]], "steps": [
                {"subject": "a", "body": "a"}, {"subject": "b", "body": "b", "wait_days": 1}]}),
        )
        .await;
    let id = text(&created, "id");
    let (status, _) = service
        .get(&format!("/api/v1/sequences/{id}/forecast"), "KEY1")
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a draft has nothing to forecast"
    );
    service
        .post(
            &format!("/api/v1/sequences/{id}/activate"),
            "KEY1",
            json!({}),
        )
        .await;
    service.add_contacts("KEY1", &id, 5).await;

    let (status, forecast) = service
        .get(&format!("/api/v1/sequences/{id}/forecast?days=30"), "KEY1")
        .await;
    assert_eq!(status, StatusCode::OK, "{forecast}");
    assert_eq!(
        (forecast["enrollments"].as_u64(), forecast["sends"].as_u64()),
        (Some(5), Some(10))
    );
    let from = chrono::DateTime::parse_from_rfc3339(&text(&forecast, "from")).unwrap();
    let all = chrono::DateTime::parse_from_rfc3339(&text(&forecast, "all_done")).unwrap();
    let half = chrono::DateTime::parse_from_rfc3339(&text(&forecast, "half_done")).unwrap();
    // Two sends a day for ten sends: at least four days, and half done before all.
    assert!(all - from >= chrono::Duration::days(4), "{from} .. {all}");
    assert!(half <= all);
    assert!(text(&forecast, "svg").starts_with("<svg"));
    assert!(text(&forecast, "text").contains("Forecast"));
    let svg = service
        .request(
            Method::GET,
            &format!("/api/v1/sequences/{id}/forecast?format=svg"),
            Some("KEY1"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    let (status, _) = service
        .get(&format!("/api/v1/sequences/{id}/forecast?days=0"), "KEY1")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = service
        .get(&format!("/api/v1/sequences/{id}/forecast"), "KEY2")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn enrollment_pages_cover_every_enrollment_once_in_order() {
    let service = start().await;
    let id = active_sequence(&service, "KEY1").await;
    let contacts: Vec<Value> = (0..25)
        .map(|i| json!({"email": format!("p{i}@client.example")}))
        .collect();
    let (_, added) = service
        .post(
            &format!("/api/v1/sequences/{id}/contacts"),
            "KEY1",
            json!({"contacts": contacts}),
        )
        .await;
    assert_eq!(added["contacts_added"], 25);
    for filter in ["status=active&", ""] {
        let (items, pages) = walk_enrollments(&service, &id, filter, 7).await;
        let seen: Vec<String> = items.iter().map(|e| text(e, "id")).collect();
        assert_eq!((pages, seen.len()), (4, 25), "{filter}");
        let unique: std::collections::HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), 25, "{filter}");
    }
}

/// Every page of `/enrollments?{filter}` of sequence `id`, `limit` at a time: the items in
/// the order given, and how many pages it took.
async fn walk_enrollments(
    service: &TestService,
    id: &str,
    filter: &str,
    limit: usize,
) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut cursor = String::new();
    for pages in 1..=20 {
        let (status, page) = service
            .get(
                &format!("/api/v1/sequences/{id}/enrollments?{filter}limit={limit}{cursor}"),
                "KEY1",
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let got = page["items"].as_array().unwrap();
        assert!(got.len() <= limit, "{page}");
        items.extend(got.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return (items, pages),
        }
    }
    panic!("the pages of {filter} never ended");
}

#[tokio::test]
async fn pages_walk_a_sequence_of_mixed_statuses_unfiltered_and_by_a_final_status() {
    let service = start().await;
    let id = active_sequence(&service, "KEY1").await;
    let add = |emails: Vec<String>| {
        let service = &service;
        let path = format!("/api/v1/sequences/{id}/contacts");
        async move {
            let contacts: Vec<Value> = emails.iter().map(|e| json!({"email": e})).collect();
            let (status, added) = service
                .post(&path, "KEY1", json!({"contacts": contacts}))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{added}");
        }
    };
    // Three get the one step and complete; four come later, two of whom unsubscribe.
    add((0..3).map(|i| format!("done{i}@client.example")).collect()).await;
    service
        .engine
        .run_until(monday() + chrono::Duration::days(3))
        .await
        .unwrap();
    add((0..4).map(|i| format!("new{i}@client.example")).collect()).await;
    for i in 0..2 {
        let (status, signal) = service
            .post(
                "/api/v1/signals/unsubscribe",
                "KEY1",
                json!({"email": format!("new{i}@client.example")}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{signal}");
    }

    let key = |e: &Value| {
        (
            chrono::DateTime::parse_from_rfc3339(&text(e, "enrolled_at")).unwrap(),
            uuid::Uuid::parse_str(&text(e, "id")).unwrap(),
        )
    };
    let (all, pages) = walk_enrollments(&service, &id, "", 2).await;
    assert_eq!((all.len(), pages), (7, 4));
    let keys: Vec<_> = all.iter().map(key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted, "once each, by (enrolled instant, id)");
    let of = |status: &str| -> Vec<Value> {
        all.iter()
            .filter(|e| e["status"] == status)
            .cloned()
            .collect()
    };
    assert_eq!(
        (
            of("completed").len(),
            of("exited").len(),
            of("active").len()
        ),
        (3, 2, 2),
        "{all:?}"
    );
    for (status, limit, pages) in [("completed", 2, 2), ("exited", 1, 2), ("active", 5, 1)] {
        let (items, walked) =
            walk_enrollments(&service, &id, &format!("status={status}&"), limit).await;
        assert_eq!(
            (items, walked),
            (of(status), pages),
            "{status}: its enrollments only, in the same order"
        );
    }
    let (none, _) = walk_enrollments(&service, &id, "status=paused&", 3).await;
    assert!(none.is_empty());
}
