//! The unsubscribe page in a real browser: headless Chromium (Debian's `chromium`), driven
//! over WebDriver by Debian's `chromedriver`, loads the page of a genuine link, clicks its
//! button once, and the contact's enrollment exits as unsubscribed.
//!
//! Ignored by default so that `cargo test --workspace` passes on a machine without a
//! browser; run it with `cargo test -p sequence-service --test browser -- --ignored`.

#![expect(
    clippy::unwrap_used,
    reason = "a test's unwrap is its assertion; the helpers here are only for tests"
)]

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use sequence_engine::domain::ids::{ContactId, EnrollmentId, TenantId};
use sequence_engine::smtp::{TokenKind, TrackedSend};
use serde_json::{json, Value};
use support::{monday, text, TestService};

/// chromedriver's process group: chromedriver and the browser it starts are ended when the
/// test ends, passed or failed.
struct ProcessGroup(u32);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0)])
            .status();
    }
}

/// The WebDriver element key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

async fn webdriver(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Value,
) -> Value {
    let mut request = client.request(method, url);
    if !body.is_null() {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let value: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {value}");
    value["value"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver); .ci/run installs them and runs it with --ignored"]
async fn the_unsubscribe_page_is_loaded_and_its_button_clicked_in_headless_chromium() {
    let service = TestService::in_memory(Default::default()).await;
    service.add_mailbox("KEY1").await;
    let id = service
        .active_sequence(
            "KEY1",
            "B",
            json!([{"subject": "a", "body": "a"},
                   {"subject": "b", "body": "b", "wait_days": 3}]),
        )
        .await;
    let (_, added) = service.add_contact("KEY1", &id, "bo@client.example").await;
    let enrollment = text(&added["results"][0], "enrollment_id");
    let contact = text(&added["results"][0], "contact_id");
    service
        .engine
        .run_until(monday() + chrono::Duration::days(1))
        .await
        .unwrap();
    let send = TrackedSend::new(
        TenantId::from_name("acme"),
        EnrollmentId(enrollment.parse().unwrap()),
        ContactId(contact.parse().unwrap()),
        0,
    );
    let page = format!(
        "{}/t/u/{}",
        service.base,
        service.tracker.token(TokenKind::Unsubscribe, &send, None)
    );

    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let chromedriver = tokio::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver (Debian's chromium-driver package) is installed");
    let _browser = ProcessGroup(chromedriver.id().unwrap());
    let driver = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{driver}/status")).send().await {
            ready = r.status() == StatusCode::OK;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "chromedriver did not start");
    let profile = std::env::temp_dir().join(format!("svc-chromium-{}", uuid::Uuid::new_v4()));
    let session = webdriver(
        &client,
        reqwest::Method::POST,
        &format!("{driver}/session"),
        json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", format!("--user-data-dir={}", profile.display())]
        }}}}),
    )
    .await;
    let session = format!("{driver}/session/{}", text(&session, "sessionId"));
    let post = reqwest::Method::POST;
    // Finding an element waits for it (up to 10 s): after the click, the confirmation is a
    // new page that may still be loading when the test looks for it.
    webdriver(
        &client,
        post.clone(),
        &format!("{session}/timeouts"),
        json!({"implicit": 10_000}),
    )
    .await;
    webdriver(
        &client,
        post.clone(),
        &format!("{session}/url"),
        json!({"url": page}),
    )
    .await;
    let button = webdriver(
        &client,
        post.clone(),
        &format!("{session}/element"),
        json!({"using": "css selector", "value": "#unsubscribe"}),
    )
    .await;
    // Loading the page unsubscribed nobody.
    let (_, before) = service
        .get(&format!("/api/v1/enrollments/{enrollment}"), "KEY1")
        .await;
    assert_eq!(before["status"], "active");
    let button = text(&button, ELEMENT);
    webdriver(
        &client,
        post.clone(),
        &format!("{session}/element/{button}/click"),
        json!({}),
    )
    .await;
    let done = webdriver(
        &client,
        post.clone(),
        &format!("{session}/element"),
        json!({"using": "css selector", "value": "#done"}),
    )
    .await;
    let said = webdriver(
        &client,
        reqwest::Method::GET,
        &format!("{session}/element/{}/text", text(&done, ELEMENT)),
        Value::Null,
    )
    .await;
    assert_eq!(said, "You are unsubscribed");
    let _ = client.delete(&session).send().await;
    let _ = std::fs::remove_dir_all(&profile);

    let (_, after) = service
        .get(&format!("/api/v1/enrollments/{enrollment}"), "KEY1")
        .await;
    assert_eq!(
        (after["status"].as_str(), after["exit_reason"].as_str()),
        (Some("exited"), Some("unsubscribed"))
    );
    service.shutdown().await.unwrap();
}
