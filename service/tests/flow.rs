//! A whole sequence through the HTTP API on a virtual clock, with mail delivered to a real
//! SMTP server on loopback, and the tracking links of the mail it received.

#![expect(
    clippy::unwrap_used,
    reason = "a test's unwrap is its assertion; the helpers here are only for tests"
)]

mod support;

use std::sync::Arc;

use chrono::Duration;
use mail_parser::MessageParser;
use reqwest::{Method, StatusCode};
use sequence_engine::memory::MemoryStore;
use serde_json::{json, Value};
use support::{monday, smtp_to, text, virtual_clock, Options, SmtpSink, TestService};

/// The token of the first `/t/{kind}/` link in `source`.
fn token(source: &str, kind: char) -> String {
    let marker = format!("/t/{kind}/");
    let at = source
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker} link in {source}"));
    source[at + marker.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

fn html_of(data: &str) -> String {
    let message = MessageParser::default()
        .parse(data.as_bytes())
        .expect("a MIME message");
    message.body_html(0).expect("an HTML part").into_owned()
}

async fn stats(service: &TestService, sequence: &str) -> Value {
    let (status, stats) = service
        .get(&format!("/api/v1/sequences/{sequence}/stats"), "KEY1")
        .await;
    assert_eq!(status, StatusCode::OK);
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_sequence_over_http_smtp_and_tracking_links() {
    let sink = SmtpSink::start().await;
    let (listener, tracker) = TestService::bind().await;
    let clock = virtual_clock();
    let service = TestService::start(
        listener,
        tracker.clone(),
        Options {
            store: Arc::new(MemoryStore::new()),
            transport: smtp_to(&sink, &tracker),
            clock: Arc::new(clock.clone()),
            background: false,
            limits: Default::default(),
        },
    );

    let (status, mailbox) = service
        .post(
            "/api/v1/mailboxes",
            "KEY1",
            json!({"address": "ana@sender.example", "display_name": "Ana", "daily_limit": 50}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{mailbox}");
    let (status, sequence) = service
        .post(
            "/api/v1/sequences",
            "KEY1",
            json!({
                "name": "Onboarding",
                "track_opens": true,
                "track_clicks": true,
                "mailbox_pool": [mailbox["id"]],
                "steps": [
                    {"subject": "Hi {{ first_name }}", "body": "Hello {{ first_name }}",
                     "html_body": "<p>Hello {{ first_name }}, see <a href=\"https://example.com/pricing\">pricing</a>.</p>",
                     "delay": {"amount": 0, "unit": "minutes"}},
                    {"subject": "Following up", "body": "Any thoughts?",
                     "delay": {"amount": 2, "unit": "days"}, "reply_in_thread": true}
                ]
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sequence}");
    assert_eq!(sequence["status"], "draft");
    let id = text(&sequence, "id");
    let (status, active) = service
        .post(
            &format!("/api/v1/sequences/{id}/activate"),
            "KEY1",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, &active["status"]),
        (StatusCode::OK, &json!("active"))
    );

    let (status, added) = service
        .post(
            &format!("/api/v1/sequences/{id}/contacts"),
            "KEY1",
            json!({"contacts": [
                {"email": "bo@client.example", "first_name": "Bo"},
                {"email": "cy@client.example", "first_name": "Cy"}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["contacts_added"], 2);
    let bo_enrollment = text(&added["results"][0], "enrollment_id");

    // Step 0 goes out to both; step 1 is two days after it, so not yet.
    service
        .engine
        .run_until(monday() + Duration::hours(36))
        .await
        .unwrap();
    assert_eq!(sink.messages().len(), 2);
    let to_bo = sink.to("bo@client.example");
    assert_eq!(to_bo.len(), 1);
    assert!(
        to_bo[0].data.contains("Subject: Hi Bo"),
        "{}",
        to_bo[0].data
    );
    let (status, why) = service
        .get(&format!("/api/v1/enrollments/{bo_enrollment}"), "KEY1")
        .await;
    assert_eq!(status, StatusCode::OK, "{why}");
    assert_eq!(
        (why["status"].as_str(), why["current_step"].as_u64()),
        (Some("active"), Some(1))
    );
    assert!(!text(&why, "summary").is_empty());
    assert!(why["next_due_at"].is_string(), "{why}");

    // Bo replies; only Cy gets the follow-up, in the thread of the first email.
    let (status, signal) = service
        .post(
            "/api/v1/signals/reply",
            "KEY1",
            json!({"email": "BO@client.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signal}");
    service
        .engine
        .run_until(monday() + Duration::days(6))
        .await
        .unwrap();
    assert_eq!(sink.to("bo@client.example").len(), 1);
    let to_cy = sink.to("cy@client.example");
    assert_eq!(to_cy.len(), 2);
    assert!(to_cy[1].data.contains("In-Reply-To:"), "{}", to_cy[1].data);

    let s = stats(&service, &id).await;
    assert_eq!(
        (s["sent"].as_u64(), s["replied"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(
        (s["completed"].as_u64(), s["exited"]["replied"].as_u64()),
        (Some(1), Some(1))
    );
    let (_, exited) = service
        .get(
            &format!("/api/v1/sequences/{id}/enrollments?status=exited"),
            "KEY1",
        )
        .await;
    assert_eq!(exited["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(exited["items"][0]["id"], json!(bo_enrollment));
    assert_eq!(exited["items"][0]["exit_reason"], "replied");

    // The links in Bo's email: the pixel records an open, the link a click and redirects.
    let html = html_of(&to_bo[0].data);
    let pixel = service
        .request(Method::GET, &format!("/t/o/{}", token(&html, 'o')), None)
        .send()
        .await
        .unwrap();
    assert_eq!(pixel.status(), StatusCode::OK);
    assert_eq!(pixel.headers()["content-type"], "image/gif");
    assert_eq!(&pixel.bytes().await.unwrap()[..6], b"GIF89a");
    let click = service
        .request(Method::GET, &format!("/t/c/{}", token(&html, 'c')), None)
        .send()
        .await
        .unwrap();
    assert_eq!(click.status(), StatusCode::FOUND);
    assert_eq!(click.headers()["location"], "https://example.com/pricing");
    let s = stats(&service, &id).await;
    assert_eq!(
        (s["opened"].as_u64(), s["clicked"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(s["steps"][0]["opened"].as_u64(), Some(1));

    // Cy unsubscribes from the link in List-Unsubscribe: the page's form posts back, and
    // the POST unsubscribes; a copy of the sequence then refuses Cy.
    let unsubscribe = format!("/t/u/{}", token(&to_cy[0].data, 'u'));
    let page = service
        .request(Method::GET, &unsubscribe, None)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("<form method=\"post\""), "{page}");
    let done = service
        .request(Method::POST, &unsubscribe, None)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    let (status, copy) = service
        .post(
            &format!("/api/v1/sequences/{id}/clone"),
            "KEY1",
            json!({"name": "Again"}),
        )
        .await;
    assert_eq!(
        (status, copy["step_count"].as_u64()),
        (StatusCode::CREATED, Some(2))
    );
    let copy_id = text(&copy, "id");
    service
        .post(
            &format!("/api/v1/sequences/{copy_id}/activate"),
            "KEY1",
            json!({}),
        )
        .await;
    let (_, again) = service
        .post(
            &format!("/api/v1/sequences/{copy_id}/contacts"),
            "KEY1",
            json!({"contacts": [{"email": "cy@client.example"}, {"email": "di@client.example"}]}),
        )
        .await;
    assert_eq!(again["results"][0]["status"], "suppressed", "{again}");
    assert_eq!(again["results"][1]["status"], "enrolled", "{again}");
    assert_eq!(again["contacts_added"], 1);

    service.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_named_in_the_configuration_sends_through_its_own_server() {
    let relay = SmtpSink::start().await;
    let own = SmtpSink::start().await;
    let (listener, tracker) = TestService::bind().await;
    let store: Arc<dyn sequence_engine::domain::Store> = Arc::new(MemoryStore::new());
    let servers = std::collections::BTreeMap::from([(
        "Bea@Sender.example".to_owned(),
        sequence_service::config::MailboxSmtpConfig {
            host: "127.0.0.1".into(),
            port: Some(own.port),
            security: sequence_service::config::SmtpSecurity::Plain,
            allow_plain: true,
            username: None,
            password: None,
        },
    )]);
    let service = TestService::start(
        listener,
        tracker.clone(),
        Options {
            store: Arc::clone(&store),
            transport: support::smtp_with(&relay, &tracker, servers, Arc::clone(&store)),
            clock: Arc::new(virtual_clock()),
            background: false,
            limits: Default::default(),
        },
    );
    let mut pool = Vec::new();
    for address in ["ana@sender.example", "bea@sender.example"] {
        let (_, m) = service
            .post("/api/v1/mailboxes", "KEY1", json!({"address": address}))
            .await;
        pool.push(m["id"].clone());
    }
    let (_, sequence) = service
        .post(
            "/api/v1/sequences",
            "KEY1",
            json!({"name": "Two", "mailbox_pool": pool, "steps": [{"subject": "Hi", "body": "Hello"}]}),
        )
        .await;
    let id = text(&sequence, "id");
    service
        .post(
            &format!("/api/v1/sequences/{id}/activate"),
            "KEY1",
            json!({}),
        )
        .await;
    service.add_contacts("KEY1", &id, 6).await;
    service
        .engine
        .run_until(monday() + Duration::days(1))
        .await
        .unwrap();
    let (through_relay, through_own) = (relay.messages(), own.messages());
    assert_eq!(through_relay.len() + through_own.len(), 6);
    assert!(!through_relay.is_empty() && !through_own.is_empty());
    assert!(through_relay
        .iter()
        .all(|m| m.data.contains("From: ana@sender.example")
            || m.data.contains("<ana@sender.example>")));
    assert!(through_own
        .iter()
        .all(|m| m.data.contains("From: bea@sender.example")
            || m.data.contains("<bea@sender.example>")));
    service.shutdown().await.unwrap();
}
