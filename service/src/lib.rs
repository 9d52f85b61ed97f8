//! # sequence-service
//!
//! `sequence_service`, the REST service of the original requirements, built on the
//! [`sequence_engine`] facade: sequences and their steps, contacts and enrollments,
//! mailboxes, inbound signals, open/click/unsubscribe tracking, health and an OpenAPI 3.1
//! document, over PostgreSQL or, for a try-out, in memory.
//!
//! Run it: `sequence_service --memory --listen 127.0.0.1:8080 --api-key acme=KEY1`. To embed
//! it, or to test it against a store and clock of your own:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use sequence_engine::memory::MemoryStore;
//! use sequence_engine::scheduler::SystemClock;
//! use sequence_engine::smtp::Tracker;
//! use sequence_engine::EngineConfig;
//! use sequence_service::config::{ApiKeyConfig, Limits, Secret};
//! use sequence_service::{ApiKeys, LogTransport, Service};
//!
//! let tracker = Tracker::new("http://127.0.0.1:8080/t", "at least sixteen bytes of secret")?;
//! let keys = ApiKeys::new(&[ApiKeyConfig { tenant: "acme".into(), key: Secret::new("KEY1") }]);
//! let service = Service::new(
//!     Arc::new(MemoryStore::new()),
//!     Arc::new(LogTransport::new(tracker.clone())),
//!     Arc::new(SystemClock),
//!     EngineConfig::default(),
//!     keys,
//!     tracker,
//!     Limits::default(),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! service.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! The routes, one module per resource, are in [`routes`]; errors are RFC 9457 problem
//! details ([`problem`]); configuration is in [`config`].

mod app;
pub mod auth;
pub mod config;
pub mod problem;
pub mod routes;
pub mod state;
mod transport;

pub use app::{Service, StartError};
pub use auth::{ApiKeys, Tenant};
pub use routes::ApiDoc;
pub use transport::{smtp_transport, LogTransport};
