//! The service on the real PostgreSQL store, in a schema of its own: a sequence from the
//! original service's body to sent mail on a loopback SMTP server, a reply, statistics, the
//! deferral view, and tenants kept apart.
//!
//! The server is `DATABASE_URL`, or `postgres://postgres@127.0.0.1:5432/test`.

#![expect(
    clippy::unwrap_used,
    reason = "a test's unwrap is its assertion; the helpers here are only for tests"
)]

mod support;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use sequence_engine::postgres::PostgresStore;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Executor, PgConnection};
use support::{monday, smtp_to, text, virtual_clock, Options, SmtpSink, TestService};

/// The prefix of this suite's schemas.
const PREFIX: &str = "svctest_";

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A connection, or a panic that says how to get a server.
async fn connect() -> PgConnection {
    let url = database_url();
    let options = PgConnectOptions::from_str(&url)
        .unwrap_or_else(|e| panic!("DATABASE_URL {url:?} is not a PostgreSQL URL: {e}"));
    match tokio::time::timeout(Duration::from_secs(10), options.connect()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "no PostgreSQL server answers at {url}: {e}\n\
             Start one (on Debian: `pg_ctlcluster 15 main start`), or point DATABASE_URL at \
             one (trust auth, a database the tests may create schemas in)."
        ),
        Err(_) => panic!("no PostgreSQL server answered at {url} within 10 s; start one"),
    }
}

/// A fresh schema with the store's migrations, and its name (drop it with [`drop_schema`]).
/// Schemas of this suite older than an hour (killed runs) are dropped first.
async fn store_in_fresh_schema() -> (PostgresStore, String) {
    let mut admin = connect().await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let old: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'svctest\\_%'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    for name in old {
        let born = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if born.is_some_and(|b| b + 3_600 < now) {
            let _ = admin
                .execute(format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE").as_str())
                .await;
        }
    }
    let schema = format!("{PREFIX}{now}_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute(format!("CREATE SCHEMA \"{schema}\"").as_str())
        .await
        .unwrap();
    let options = PgConnectOptions::from_str(&database_url())
        .unwrap()
        .options([("search_path", schema.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(5)
        .connect_with(options)
        .await
        .unwrap();
    let store = PostgresStore::from_pool(pool);
    store.migrate().await.unwrap();
    (store, schema)
}

async fn drop_schema(store: PostgresStore, schema: &str) {
    store.pool().close().await;
    let mut admin = connect().await;
    admin
        .execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_on_postgresql_from_the_original_body_to_sent_mail() {
    let (store, schema) = store_in_fresh_schema().await;
    let sink = SmtpSink::start().await;
    let (listener, tracker) = TestService::bind().await;
    let service = TestService::start(
        listener,
        tracker.clone(),
        Options {
            store: Arc::new(store.clone()),
            transport: smtp_to(&sink, &tracker),
            clock: Arc::new(virtual_clock()),
            background: false,
            limits: Default::default(),
        },
    );
    let response = service
        .request(reqwest::Method::GET, "/api/v1/health", None)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let health: serde_json::Value = response.json().await.unwrap();
    assert_eq!(health["database"]["reachable"], true, "{health}");
    // The test drives the engine itself, so the loop is not running: degraded.
    assert_eq!(
        (status, &health["engine"]["running"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!(false))
    );

    let (status, _) = service
        .post(
            "/api/v1/mailboxes",
            "KEY1",
            json!({"address": "ana@sender.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, created) = service
        .post(
            "/api/v1/sequences",
            "KEY1",
            json!({"name": "Welcome Sequence", "open_tracking_enabled": true,
                   "click_tracking_enabled": true,
                   "steps": [{"step_order": 0, "subject": "Welcome!",
                              "content": "Hi {name}, welcome!", "wait_days": 0},
                             {"step_order": 1, "subject": "Checking in",
                              "content": "Hi {name}", "wait_days": 2}]}),
        )
        .await;
    assert_eq!(
        (status, created["step_count"].as_u64()),
        (StatusCode::CREATED, Some(2))
    );
    let id = text(&created, "id");
    let (status, _) = service
        .post(
            &format!("/api/v1/sequences/{id}/activate"),
            "KEY1",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, added) = service
        .post(
            &format!("/api/v1/sequences/{id}/contacts"),
            "KEY1",
            json!({"contacts": [
                {"email": "bo@client.example", "first_name": "Bo", "last_name": "B", "company": "C"},
                {"email": "cy@client.example", "first_name": "Cy", "last_name": "C", "company": "C"},
                {"email": "not an address"}
            ]}),
        )
        .await;
    assert_eq!(
        (status, added["contacts_added"].as_u64()),
        (StatusCode::CREATED, Some(2))
    );
    assert_eq!(
        added["results"][2]["errors"][0]["field"],
        "contacts[2].email"
    );
    let bo = text(&added["results"][0], "enrollment_id");

    service
        .engine
        .run_until(monday() + chrono::Duration::hours(36))
        .await
        .unwrap();
    let to_bo = sink.to("bo@client.example");
    assert_eq!((to_bo.len(), sink.messages().len()), (1, 2));
    assert!(
        to_bo[0].data.contains("Hi Bo, welcome!"),
        "{}",
        to_bo[0].data
    );
    let (status, why) = service
        .get(&format!("/api/v1/enrollments/{bo}"), "KEY1")
        .await;
    assert_eq!(
        (status, why["current_step"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    let (status, _) = service
        .get(&format!("/api/v1/enrollments/{bo}"), "KEY2")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = service
        .post(
            "/api/v1/signals/reply",
            "KEY1",
            json!({"email": "bo@client.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    service
        .engine
        .run_until(monday() + chrono::Duration::days(5))
        .await
        .unwrap();
    assert_eq!(sink.to("bo@client.example").len(), 1);
    assert_eq!(sink.to("cy@client.example").len(), 2);
    let (_, stats) = service
        .get(&format!("/api/v1/sequences/{id}/stats"), "KEY1")
        .await;
    assert_eq!(
        (stats["sent"].as_u64(), stats["replied"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(stats["completed"].as_u64(), Some(1));
    let (_, page) = service
        .get(
            &format!("/api/v1/sequences/{id}/enrollments?limit=1"),
            "KEY1",
        )
        .await;
    let cursor = text(&page, "next_cursor");
    let (_, next) = service
        .get(
            &format!("/api/v1/sequences/{id}/enrollments?limit=1&cursor={cursor}"),
            "KEY1",
        )
        .await;
    assert_ne!(page["items"][0]["id"], next["items"][0]["id"]);
    assert!(next["next_cursor"].is_null());

    service.shutdown().await.unwrap();
    drop_schema(store, &schema).await;
}
