//! Putting it together: the store and transport a configuration asks for, the engine, the
//! router with its limits, the engine loop, and serving until shutdown.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::FutureExt as _;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use sequence_engine::domain::{Clock, Store, Transport};
use sequence_engine::memory::MemoryStore;
use sequence_engine::postgres::PostgresStore;
use sequence_engine::scheduler::SystemClock;
use sequence_engine::smtp::{SmtpError, Tracker};
use sequence_engine::{Engine, EngineBuilder, EngineConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::auth::ApiKeys;
use crate::config::{Config, Limits, StoreConfig};
use crate::problem::ApiError;
use crate::routes;
use crate::state::{AppState, SharedClock};
use crate::transport::{smtp_transport, LogTransport};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The store could not be reached or migrated.
    #[error("the store: {0}")]
    Store(#[source] sequence_engine::domain::store::StoreError),
    /// The SMTP or tracking settings were refused.
    #[error("the SMTP or tracking settings: {0}")]
    Smtp(#[from] SmtpError),
}

/// The service: an engine behind an HTTP API. Build it with [`Service::from_config`] or,
/// with parts of your own (a store in a test schema, a virtual clock), [`Service::new`].
#[derive(Debug)]
pub struct Service {
    state: AppState,
    background_engine: bool,
}

impl Service {
    /// The store, transport and engine `config` asks for (PostgreSQL is migrated).
    ///
    /// # Errors
    /// The store cannot be reached or migrated, or the SMTP or tracking settings are bad.
    pub async fn from_config(config: &Config) -> Result<Self, StartError> {
        let tracker = tracker_for(config)?;
        // On PostgreSQL, the work notices of other processes on the database (another
        // instance of this service enrolled contacts) wake this one's engine.
        let mut notices = None;
        let store: Arc<dyn Store> = match &config.store {
            StoreConfig::Memory => Arc::new(MemoryStore::new()),
            StoreConfig::Postgres(url) => {
                let store = PostgresStore::connect(url.expose())
                    .await
                    .map_err(StartError::Store)?;
                store.migrate().await.map_err(StartError::Store)?;
                notices = Some(store.listen_for_work().await.map_err(StartError::Store)?);
                info!("PostgreSQL store connected and migrated");
                Arc::new(store)
            }
        };
        let keys = ApiKeys::new(&config.api_keys);
        let transport: Arc<dyn Transport> = match &config.smtp {
            Some(smtp) => {
                smtp_transport(smtp, tracker.clone(), Arc::clone(&store), keys.tenants())?
            }
            None => {
                warn!("no SMTP settings: each message is logged instead of sent");
                Arc::new(LogTransport::new(tracker.clone()))
            }
        };
        let engine_config = EngineConfig::default().poll_interval(chrono::Duration::seconds(5));
        let service = Self::new(
            store,
            transport,
            Arc::new(SystemClock),
            engine_config,
            keys,
            tracker,
            config.limits,
        );
        if let Some(mut notices) = notices {
            let engine = service.engine().clone();
            tokio::spawn(async move {
                while notices.next().await.is_ok() {
                    engine.wake();
                }
                warn!("work notices stopped: the engine polls every 5 s");
            });
        }
        Ok(service)
    }

    /// A service on these parts. The engine loop runs in the background while serving
    /// unless [`Service::without_background_engine`] is called.
    #[must_use]
    pub fn new(
        store: Arc<dyn Store>,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
        engine_config: EngineConfig,
        keys: ApiKeys,
        tracker: Tracker,
        limits: Limits,
    ) -> Self {
        let clock = SharedClock(clock);
        let engine = EngineBuilder::new(store, transport)
            .clock(clock.clone())
            .config(engine_config)
            .build();
        Self {
            state: AppState::new(engine, clock, keys, tracker, limits),
            background_engine: true,
        }
    }

    /// Do not run the engine loop (a test drives the engine itself on a virtual clock).
    #[must_use]
    pub fn without_background_engine(mut self) -> Self {
        self.background_engine = false;
        self
    }

    /// The engine (shared with the handlers).
    #[must_use]
    pub fn engine(&self) -> &Engine {
        self.state.engine()
    }

    /// The HTTP routes with their limits.
    pub fn router(&self) -> Router {
        let limits = self.state.limits();
        routes::router()
            .layer(middleware::from_fn_with_state(self.state.clone(), observe))
            .layer(DefaultBodyLimit::max(limits.body_bytes))
            .with_state(self.state.clone())
    }

    /// Serve on `listener` until `shutdown` resolves, with the engine loop beside it. On
    /// shutdown the listener stops accepting, requests under way finish (idle connections
    /// close at once), and the engine finishes its tick (its in-flight sends complete and
    /// are recorded) and claims nothing more.
    ///
    /// Connections speak HTTP/1.1; a client must send each request's head within
    /// [`Limits::header_read_timeout`], or its connection is closed.
    ///
    /// # Errors
    /// None at present: a failed accept is logged and retried after a pause, as
    /// `axum::serve` does.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let engine_task = self.background_engine.then(|| {
            let state = self.state.clone();
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                engine_loop(state, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            })
        });
        let app = self.router();
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, "listening");
        }
        let signal = tokio::spawn(async move {
            shutdown.await;
            info!("shutting down");
            let _ = stop_tx.send(true);
        });
        let mut http_stop = stop_rx;
        serve_http(
            listener,
            app,
            self.state.limits().header_read_timeout(),
            async move {
                let _ = http_stop.wait_for(|s| *s).await;
            },
        )
        .await;
        signal.abort();
        if let Some(task) = engine_task {
            if let Err(e) = task.await {
                error!(error = %e, "engine loop ended abnormally");
            }
        }
        Ok(())
    }
}

/// Accept connections on `listener` and serve `app` on each (HTTP/1.1, hyper's own
/// connection) until `stop`; then stop accepting, tell every connection to finish its
/// request under way and close, and return once all have closed.
///
/// `axum::serve` does the same but has no header-read timeout: here hyper's timer closes a
/// connection whose request head is not read within `header_read_timeout` (from when the
/// connection opens, or from the end of the previous response on a kept-alive one), so a
/// client that trickles its headers (slowloris) cannot hold a connection for ever.
async fn serve_http(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    stop: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut stop = pin!(stop);
    loop {
        let stream = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(error = %e, "connection closed on an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// After a failed accept: nothing for a connection the peer gave up on; else (most likely
/// out of file descriptors) a log line and a pause of a second before accepting again.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
    ) {
        return;
    }
    error!(error = %e, "accept failed; accepting again in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The tracker of `config`: its secret, or a random one for a try-out.
fn tracker_for(config: &Config) -> Result<Tracker, SmtpError> {
    let base = config
        .tracking
        .base_url
        .clone()
        .unwrap_or_else(|| format!("http://{}/t", config.listen));
    let secret = match &config.tracking.secret {
        Some(secret) => secret.expose().as_bytes().to_vec(),
        None => {
            warn!("no tracking secret: a random one is used, links die with the process");
            let mut bytes = uuid::Uuid::new_v4().as_bytes().to_vec();
            bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
            bytes
        }
    };
    Tracker::new(base, secret)
}

/// The engine's own loop ([`Engine::run`], which records its latest tick for `/health`
/// and wakes when a route says there is new work) until `stop`.
async fn engine_loop(state: AppState, stop: impl Future<Output = ()>) {
    state.set_running(true);
    state.engine().run(stop).await;
    state.set_running(false);
}

/// Every request: a timeout (503 problem past it), a panic answered as a 500 problem
/// instead of a dropped connection, and one log line (method, route, status, duration;
/// never headers, so never a key).
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let timeout = state.limits().request_timeout();
    let run = std::panic::AssertUnwindSafe(next.run(request)).catch_unwind();
    let response = match tokio::time::timeout(timeout, run).await {
        Ok(Ok(response)) => response,
        Ok(Err(_)) => {
            error!(%method, %route, "handler panicked");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the request took longer than {} s", timeout.as_secs()),
        )
        .into_response(),
    };
    let response = as_problem(response).await;
    tracing::info!(
        %method,
        %route,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

/// An error answered by axum itself (a path that is not a UUID, a method not allowed, a
/// bad query string) as a problem too, so that every error has one shape.
async fn as_problem(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    if parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| !v.as_bytes().starts_with(b"text/plain"))
    {
        return Response::from_parts(parts, body);
    }
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let detail = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut problem = ApiError::new(status, detail).into_response();
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            problem.headers_mut().insert(name, value.clone());
        }
    }
    problem
}

#[cfg(test)]
mod tests {
    use axum::routing::get;

    use super::*;
    use crate::config::{ApiKeyConfig, Secret};

    /// A router of two bad handlers behind the request middleware, on loopback.
    async fn serve_bad_routes() -> String {
        let tracker = Tracker::new("http://127.0.0.1/t", "sixteen bytes and more").unwrap();
        let service = Service::new(
            Arc::new(MemoryStore::new()),
            Arc::new(LogTransport::new(tracker.clone())),
            Arc::new(SystemClock),
            EngineConfig::default(),
            ApiKeys::new(&[ApiKeyConfig {
                tenant: "acme".into(),
                key: Secret::new("KEY1"),
            }]),
            tracker,
            Limits {
                request_timeout_secs: 1,
                ..Limits::default()
            },
        );
        let app = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route(
                "/panics",
                get(|| async {
                    if std::hint::black_box(true) {
                        panic!("a handler bug");
                    }
                    "never"
                }),
            )
            .layer(middleware::from_fn_with_state(
                service.state.clone(),
                observe,
            ))
            .with_state(service.state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_slow_request_times_out_and_a_panic_is_a_500_problem() {
        let base = serve_bad_routes().await;
        let started = Instant::now();
        let slow = reqwest::get(format!("{base}/slow")).await.unwrap();
        assert_eq!(slow.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(started.elapsed() < std::time::Duration::from_secs(4));
        assert_eq!(slow.headers()["content-type"], "application/problem+json");
        let panicked = reqwest::get(format!("{base}/panics")).await.unwrap();
        assert_eq!(panicked.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let problem: serde_json::Value = panicked.json().await.unwrap();
        assert_eq!(problem["status"], 500);
        assert!(!problem["detail"].as_str().unwrap().contains("handler bug"));
    }
}
