//! The service started on a loopback port for a test, with two tenants (`acme` with key
//! `KEY1`, `globex` with `KEY2`), a known tracking secret, and a real HTTP client.
#![allow(
    dead_code,
    reason = "each test file uses a part of this module; `expect` would fail in the others"
)]

pub(crate) mod smtp;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use reqwest::{Method, RequestBuilder, StatusCode};
use sequence_engine::domain::ids::TenantId;
use sequence_engine::domain::{Clock, Store, Transport};
use sequence_engine::memory::MemoryStore;
use sequence_engine::prelude::VirtualClock;
use sequence_engine::smtp::Tracker;
use sequence_engine::{Engine, EngineConfig};
use sequence_service::config::{
    ApiKeyConfig, Limits, MailboxSmtpConfig, Secret, SmtpConfig, SmtpSecurity,
};
use sequence_service::{smtp_transport, ApiKeys, LogTransport, Service};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) use smtp::SmtpSink;

/// The tracking secret of the test services.
pub(crate) const SECRET: &str = "the test services' tracking secret";

/// A Monday, 08:00 UTC.
pub(crate) fn monday() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 9, 8, 0, 0).unwrap()
}

/// A running service.
pub(crate) struct TestService {
    pub(crate) base: String,
    pub(crate) engine: Engine,
    pub(crate) tracker: Tracker,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// How to start one.
pub(crate) struct Options {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Run the engine loop (else the test drives the engine).
    pub(crate) background: bool,
    pub(crate) limits: Limits,
}

/// The SMTP transport to `sink`, signing links for a service at `base`.
pub(crate) fn smtp_to(sink: &SmtpSink, tracker: &Tracker) -> Arc<dyn Transport> {
    smtp_with(sink, tracker, BTreeMap::new(), Arc::new(MemoryStore::new()))
}

/// The SMTP transport to `sink`, and to their own servers for the mailboxes of `own`
/// (their addresses read from `store`).
pub(crate) fn smtp_with(
    sink: &SmtpSink,
    tracker: &Tracker,
    own: BTreeMap<String, MailboxSmtpConfig>,
    store: Arc<dyn Store>,
) -> Arc<dyn Transport> {
    let config = SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(sink.port),
        security: SmtpSecurity::Plain,
        allow_plain: true,
        username: None,
        password: None,
        unsubscribe_mailto: None,
        mailboxes: own,
    };
    let tenants = vec![TenantId::from_name("acme"), TenantId::from_name("globex")];
    smtp_transport(&config, tracker.clone(), store, tenants).unwrap()
}

/// A virtual clock at [`monday`].
pub(crate) fn virtual_clock() -> VirtualClock {
    VirtualClock::new(monday())
}

impl TestService {
    /// Reserve a loopback port and the tracker for links to it.
    pub(crate) async fn bind() -> (tokio::net::TcpListener, Tracker) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tracker = Tracker::new(format!("http://{addr}/t"), SECRET).unwrap();
        (listener, tracker)
    }

    /// A service on a fresh in-memory store with a logging transport, a virtual clock at
    /// [`monday`] and no engine loop (the test drives the engine), under `limits`.
    pub(crate) async fn in_memory(limits: Limits) -> Self {
        let (listener, tracker) = Self::bind().await;
        Self::start(
            listener,
            tracker.clone(),
            Options {
                store: Arc::new(MemoryStore::new()),
                transport: Arc::new(LogTransport::new(tracker)),
                clock: Arc::new(virtual_clock()),
                background: false,
                limits,
            },
        )
    }

    /// Start a service on `listener` with `options`.
    pub(crate) fn start(
        listener: tokio::net::TcpListener,
        tracker: Tracker,
        options: Options,
    ) -> Self {
        Self::start_polling(
            listener,
            tracker,
            options,
            chrono::Duration::milliseconds(200),
        )
    }

    /// [`TestService::start`] with the engine loop sleeping up to `poll` between ticks.
    pub(crate) fn start_polling(
        listener: tokio::net::TcpListener,
        tracker: Tracker,
        options: Options,
        poll: chrono::Duration,
    ) -> Self {
        let addr = listener.local_addr().unwrap();
        let keys = ApiKeys::new(&[
            ApiKeyConfig {
                tenant: "acme".into(),
                key: Secret::new("KEY1"),
            },
            ApiKeyConfig {
                tenant: "globex".into(),
                key: Secret::new("KEY2"),
            },
        ]);
        let config = EngineConfig::with_seed(7).poll_interval(poll);
        let mut service = Service::new(
            options.store,
            options.transport,
            options.clock,
            config,
            keys,
            tracker.clone(),
            options.limits,
        );
        if !options.background {
            service = service.without_background_engine();
        }
        let engine = service.engine().clone();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(service.serve(listener, async move {
            let _ = stopped.await;
        }));
        Self {
            base: format!("http://{addr}"),
            engine,
            tracker,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A request as tenant `key` (or none).
    pub(crate) fn request(&self, method: Method, path: &str, key: Option<&str>) -> RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let builder = self.client.request(method, url);
        match key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    /// Send `body` (JSON) as `key` and answer the status and the JSON body (`Null` when
    /// there is none).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.request(method, path, Some(key));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        read(response).await
    }

    /// GET as `key`.
    pub(crate) async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, key, None).await
    }

    /// POST `body` as `key`.
    pub(crate) async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, key, Some(body)).await
    }

    /// Add the mailbox `ana@sender.example` to `key`'s tenant.
    pub(crate) async fn add_mailbox(&self, key: &str) {
        let (status, body) = self
            .post(
                "/api/v1/mailboxes",
                key,
                json!({"address": "ana@sender.example"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Create the draft sequence `name` of `steps` as `key`; answers its id.
    pub(crate) async fn draft_sequence(&self, key: &str, name: &str, steps: Value) -> String {
        let (status, sequence) = self
            .post(
                "/api/v1/sequences",
                key,
                json!({"name": name, "steps": steps}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{sequence}");
        text(&sequence, "id")
    }

    /// Create the sequence `name` of `steps` as `key` and activate it (its pool: the
    /// tenant's mailboxes); answers its id.
    pub(crate) async fn active_sequence(&self, key: &str, name: &str, steps: Value) -> String {
        let id = self.draft_sequence(key, name, steps).await;
        let (status, activated) = self
            .post(&format!("/api/v1/sequences/{id}/activate"), key, json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{activated}");
        id
    }

    /// Add `count` contacts `c{i}@client.example` to sequence `id` as `key`; the answer.
    pub(crate) async fn add_contacts(
        &self,
        key: &str,
        id: &str,
        count: usize,
    ) -> (StatusCode, Value) {
        let contacts: Vec<Value> = (0..count)
            .map(|i| json!({"email": format!("c{i}@client.example")}))
            .collect();
        self.post_contacts(key, id, contacts).await
    }

    /// Add the contact `email` to sequence `id` as `key`; the answer.
    pub(crate) async fn add_contact(
        &self,
        key: &str,
        id: &str,
        email: &str,
    ) -> (StatusCode, Value) {
        self.post_contacts(key, id, vec![json!({"email": email})])
            .await
    }

    async fn post_contacts(
        &self,
        key: &str,
        id: &str,
        contacts: Vec<Value>,
    ) -> (StatusCode, Value) {
        self.post(
            &format!("/api/v1/sequences/{id}/contacts"),
            key,
            json!({"contacts": contacts}),
        )
        .await
    }

    /// Stop: the listener closes, the engine loop ends; answers how `serve` ended.
    pub(crate) async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("the service stops within 20 s")
            .unwrap()
    }
}

/// The status and JSON body of `response`; a problem's content type is checked.
pub(crate) async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let problem = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    let text = response.text().await.unwrap();
    if status.is_client_error() || status.is_server_error() {
        assert!(problem, "{status} is not a problem document: {text}");
    }
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// The fields a problem names.
pub(crate) fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A string field of `value`.
pub(crate) fn text(value: &Value, field: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {value}"))
        .to_owned()
}
