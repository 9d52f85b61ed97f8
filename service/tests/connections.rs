//! Connections that misbehave: a client that sends a request's head slowly (slowloris) is
//! cut off after the header-read timeout, while others are served, and a shutdown does not
//! wait on it.

#![expect(
    clippy::unwrap_used,
    reason = "a test's unwrap is its assertion; the helpers here are only for tests"
)]

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sequence_service::config::Limits;
use support::TestService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A service whose clients have one second to send a request's head.
async fn start() -> TestService {
    TestService::in_memory(Limits {
        header_read_timeout_secs: 1,
        ..Limits::default()
    })
    .await
}

/// A connection that has sent half a request line and then nothing.
async fn half_a_request(service: &TestService) -> TcpStream {
    let addr = service.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /api/v1/openapi.js").await.unwrap();
    stream
}

/// How long until the server closes `stream` (end of stream or reset), waiting at most
/// `within`; `None` when it is still open then. Whatever the server sends is kept in
/// `answer`.
async fn closed_after(
    stream: &mut TcpStream,
    within: Duration,
    answer: &mut Vec<u8>,
) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        let left = within.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_client_that_sends_its_head_slowly_is_cut_off_and_others_are_served() {
    let service = start().await;
    let mut slow = half_a_request(&service).await;

    // Meanwhile, an ordinary request is answered at once.
    let started = Instant::now();
    let (status, _) = service.get("/api/v1/sequences", "KEY1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(900));

    // The slow one is closed, at about the timeout and not before, without an answer.
    let mut answer = Vec::new();
    let closed = closed_after(&mut slow, Duration::from_secs(5), &mut answer).await;
    let Some(after) = closed else {
        panic!("a client that sent half a request line was still connected after 5 s");
    };
    assert!(
        after >= Duration::from_millis(800) && after < Duration::from_secs(3),
        "closed after {after:?}, not at about the one-second timeout"
    );
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // A client that finishes its head in time is answered on the same kind of connection.
    let mut prompt = half_a_request(&service).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    prompt
        .write_all(b"on HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    closed_after(&mut prompt, Duration::from_secs(5), &mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    service.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_shutdown_does_not_wait_on_a_slow_client() {
    let service = start().await;
    let mut slow = half_a_request(&service).await;
    let (status, _) = service.get("/api/v1/sequences", "KEY1").await;
    assert_eq!(status, StatusCode::OK);
    let started = Instant::now();
    service.shutdown().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the shutdown took {:?}",
        started.elapsed()
    );
    let mut answer = Vec::new();
    assert!(
        closed_after(&mut slow, Duration::from_secs(1), &mut answer)
            .await
            .is_some(),
        "the slow client's connection is closed by the shutdown"
    );
}
