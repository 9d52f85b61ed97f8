//! The service's life: health while the engine loop runs, a shutdown while sends are in
//! flight (they finish and are recorded; nothing is left `sending`), and the binary itself
//! stopping cleanly on SIGTERM.

#![expect(
    clippy::unwrap_used,
    reason = "a test's unwrap is its assertion; the helpers here are only for tests"
)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use sequence_engine::domain::ids::{SequenceId, TenantId};
use sequence_engine::domain::send::SendStatus;
use sequence_engine::domain::transport::{Delivery, OutgoingEmail, SendError, Transport};
use sequence_engine::domain::Store;
use sequence_engine::memory::MemoryStore;
use serde_json::json;
use support::{monday, text, virtual_clock, Options, TestService};

/// A transport whose every send takes 400 ms: long enough to stop the service mid-send.
#[derive(Default)]
struct Slow {
    started: AtomicUsize,
    finished: AtomicUsize,
}

#[sequence_engine::async_trait]
impl Transport for Slow {
    async fn send(&self, _email: &OutgoingEmail) -> Result<Delivery, SendError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(400)).await;
        self.finished.fetch_add(1, Ordering::SeqCst);
        Ok(Delivery::with_response("250 ok"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_while_sending_lets_the_sends_finish_and_records_them() {
    let (listener, tracker) = TestService::bind().await;
    let clock = virtual_clock();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let slow = Arc::new(Slow::default());
    let service = TestService::start(
        listener,
        tracker,
        Options {
            store: Arc::clone(&store),
            transport: Arc::clone(&slow) as Arc<dyn Transport>,
            clock: Arc::new(clock.clone()),
            background: true,
            limits: Default::default(),
        },
    );
    // The engine loop ticks: health says so.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, health) = service.get("/api/v1/health", "unused").await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["engine"]["running"], true);
    assert_eq!(health["database"]["reachable"], true);
    assert!(
        health["engine"]["last_tick_age_seconds"].as_f64().unwrap() < 5.0,
        "{health}"
    );

    service.add_mailbox("KEY1").await;
    let id = service
        .active_sequence("KEY1", "S", json!([{"subject": "Hi", "body": "Hello"}]))
        .await;
    let (status, added) = service.add_contacts("KEY1", &id, 4).await;
    assert_eq!(
        (status, added["contacts_added"].as_u64()),
        (StatusCode::CREATED, Some(4))
    );
    // Once the loop has planned them (over the rest of Monday), jump the virtual clock past
    // the planned instants, to 23:59: the loop claims and sends.
    let last = text(&added["results"][3], "enrollment_id");
    let waited = tokio::time::Instant::now();
    loop {
        let (_, why) = service
            .get(&format!("/api/v1/enrollments/{last}"), "KEY1")
            .await;
        if !why["explanation"]["pending_send"].is_null() {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "never planned: {why}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // (Still on Monday: a send planned for one local day is not sent on the next.)
    clock.set(monday() + chrono::Duration::minutes(15 * 60 + 59));
    let waited = tokio::time::Instant::now();
    while slow.started.load(Ordering::SeqCst) == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "nothing was sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(slow.finished.load(Ordering::SeqCst), 0, "stopped mid-send");
    service.shutdown().await.unwrap();

    let started = slow.started.load(Ordering::SeqCst);
    assert_eq!(slow.finished.load(Ordering::SeqCst), started);
    let sends = store
        .sends_of_sequence(TenantId::from_name("acme"), SequenceId(id.parse().unwrap()))
        .await
        .unwrap();
    assert!(!sends.is_empty());
    assert!(
        sends.iter().all(|s| s.status() != SendStatus::Sending),
        "{:?}",
        sends
            .iter()
            .map(sequence_engine::domain::send::ScheduledSend::status)
            .collect::<Vec<_>>()
    );
    let sent = sends
        .iter()
        .filter(|s| s.status() == SendStatus::Sent)
        .count();
    assert_eq!(sent, started, "every send started was recorded as sent");
}

#[cfg(unix)]
#[tokio::test]
async fn the_binary_starts_from_the_command_line_alone_and_stops_on_sigterm() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sequence_service"))
        .args(["--memory", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--api-key", "acme=KEY1", "--api-key", "globex=KEY2"])
        .env("RUST_LOG", "info")
        .env_remove("SEQUENCE_SERVICE_DATABASE_URL")
        .env_remove("SEQUENCE_SERVICE_API_KEYS")
        .env_remove("SEQUENCE_SERVICE_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v1/sequences");
    let mut answered = None;
    for _ in 0..100 {
        if let Ok(r) = client.get(&url).bearer_auth("KEY1").send().await {
            answered = Some(r.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answered, Some(StatusCode::OK));
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("stops within 20 s of SIGTERM")
        .unwrap();
    let log = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {log}", output.status);
    assert!(log.contains("engine stopped"), "{log}");
    assert!(!log.contains("KEY1"), "a key was logged: {log}");
}

#[tokio::test]
async fn the_binary_refuses_a_bad_configuration_with_every_problem_named() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sequence_service"))
        .args(["--listen", "nowhere", "--api-key", "no-equals-sign"])
        .env_remove("SEQUENCE_SERVICE_DATABASE_URL")
        .env_remove("SEQUENCE_SERVICE_API_KEYS")
        .env_remove("SEQUENCE_SERVICE_CONFIG")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    for field in ["listen", "database_url", "api_key[0]"] {
        assert!(err.contains(field), "{field} in {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolling_wakes_the_engine_loop_instead_of_waiting_out_its_sleep() {
    let (listener, tracker) = TestService::bind().await;
    let service = TestService::start_polling(
        listener,
        tracker.clone(),
        Options {
            store: Arc::new(MemoryStore::new()),
            transport: Arc::new(sequence_service::LogTransport::new(tracker)),
            clock: Arc::new(virtual_clock()),
            background: true,
            limits: Default::default(),
        },
        chrono::Duration::minutes(10),
    );
    service.add_mailbox("KEY1").await;
    let id = service
        .active_sequence("KEY1", "W", json!([{"subject": "Hi", "body": "Hello"}]))
        .await;
    // Let the loop's first tick pass and fall asleep for its ten minutes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, added) = service.add_contact("KEY1", &id, "bo@client.example").await;
    let enrollment = text(&added["results"][0], "enrollment_id");
    let waited = tokio::time::Instant::now();
    loop {
        let (_, why) = service
            .get(&format!("/api/v1/enrollments/{enrollment}"), "KEY1")
            .await;
        if !why["explanation"]["pending_send"].is_null() {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "not planned: {why}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    service.shutdown().await.unwrap();
}
