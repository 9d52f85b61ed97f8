//! # sequence-engine
//!
//! A scheduling engine for multi-step email sequences, in one dependency. A host
//! application links it to run drip and cold-outreach campaigns from a fleet of sending
//! mailboxes: the engine decides which mailbox sends which step to which contact at which
//! instant, keeps every mailbox inside its daily limit, its sending windows and its pace,
//! follows each contact's time zone through DST, stops on replies, bounces and unsubscribes,
//! retries what failed, and never sends twice.
//!
//! ```toml
//! [dependencies]
//! sequence-engine = { version = "0.1", features = ["postgres", "smtp"] }
//! ```
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `memory` (default) | [`memory::MemoryStore`]: the embedded store, and the test double |
//! | `postgres` | `postgres`: the PostgreSQL store (sqlx) |
//! | `smtp` | `smtp`: the SMTP transport (lettre on rustls) |
//! | `test-util` | `test_util`: a recording transport and a fault-injecting one for your tests |
//!
//! [`chrono`], [`chrono_tz`] and [`async_trait`](mod@async_trait) are re-exported, so a host needs no other
//! dependency for its first program; [`prelude`] has the names it uses.
//!
//! ## A first program
//!
//! A mailbox, a two-step sequence, one contact, and two virtual weeks in a blink: the
//! engine runs on the in-memory store with a [`VirtualClock`](prelude::VirtualClock), and
//! the transport is yours (here, one that accepts everything).
//!
//! ```
//! use sequence_engine::prelude::*;
//!
//! struct Accept;
//!
//! #[async_trait]
//! impl Transport for Accept {
//!     async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, SendError> {
//!         println!("step {} to {}", email.step, email.to_address);
//!         Ok(Delivery::with_response("250 ok"))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let start = Utc.with_ymd_and_hms(2026, 3, 9, 0, 0, 0).unwrap(); // a Monday
//! let clock = VirtualClock::new(start);
//! let engine = Engine::builder(MemoryStore::new(), Accept)
//!     .clock(clock.clone())
//!     .config(EngineConfig::with_seed(7))
//!     .build();
//!
//! let tenant = TenantId::new();
//! let hours = SendWindow::new(WeekdaySet::WEEKDAYS, "09:00".parse()?, "17:00".parse()?)?;
//! let mailbox = Mailbox::new(tenant, "ana@sender.example", parse_time_zone("America/New_York")?)?
//!     .with_daily_limit(40)
//!     .with_schedule(WeeklySchedule::windows(vec![hours]));
//! let mailbox = engine.create_mailbox(mailbox).await?;
//!
//! let mut sequence = Sequence::new(tenant, "Welcome", start)?;
//! sequence.add_step(Step::new(Delay::ZERO, "Hi {{ first_name | default('there') }}", "Hello!"))?;
//! sequence.add_step(
//!     Step::new(Delay::new(2, DelayUnit::BusinessDays), "Re: Hi", "Following up.").in_thread(),
//! )?;
//! sequence.set_mailbox_pool(vec![mailbox.id])?;
//! let sequence = engine.create_sequence(sequence).await?;
//! engine.activate_sequence(tenant, sequence.id).await?;
//!
//! let bo = Contact::new(tenant, "bo@client.example")?.with_name("Bo", "Berg");
//! let ids = engine.upsert_contacts(tenant, &[bo]).await?;
//! let answers = engine.enroll(tenant, sequence.id, &ids).await?;
//! assert!(matches!(answers[0], EnrollOutcome::Enrolled { .. }));
//!
//! // Two weeks of virtual time, from one instant with work to the next.
//! let report = engine.run_until(start + Duration::days(14)).await?;
//! assert_eq!(report.sent, 2);
//! # Ok(())
//! # }
//! ```
//!
//! On a real clock, [`Engine::run`](prelude::Engine::run) ticks until a shutdown signal.
//!
//! ## Defaults a team would not guess
//!
//! * A mailbox without windows is **always open**; give it a
//!   [`WeeklySchedule`](prelude::WeeklySchedule) to send in business hours.
//! * A sequence without recipient windows sends at **any hour of the contact's day**.
//! * Contacts are unique by normalized address: upserting a known address updates that
//!   contact, and a host update never lifts a suppression (only
//!   [`Engine::lift_suppression`](prelude::Engine::lift_suppression) does).
//! * A send whose outcome is unknown (the process died during the SMTP call) is never sent
//!   again unless [`DeliverySemantics::AtLeastOnce`](prelude::DeliverySemantics) is chosen.
//!
//! ## The crates behind it
//!
//! [`core`](mod@domain) (the domain and the ports), [`scheduler`] (the planner and the
//! engine), and by feature the stores and the transport. Each is usable alone; this crate
//! is the one a host adds.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use ::async_trait;
pub use ::async_trait::async_trait;
pub use chrono;
pub use chrono_tz;

/// The domain and the ports (`sequence-core`): sequences, steps, mailboxes, contacts,
/// enrollments, sends, time rules, templates, validation, and the `Store`, `Transport`,
/// `Clock` and `EventSink` traits.
pub use sequence_core as domain;

/// The planner and the engine (`sequence-scheduler`).
pub use sequence_scheduler as scheduler;

pub use sequence_core::{Clock, Store, Transport};
pub use sequence_scheduler::{Engine, EngineBuilder, EngineConfig, EngineError};

#[doc(inline)]
#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub use backend_memory as memory;

#[doc(inline)]
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use backend_postgres as postgres;

#[doc(inline)]
#[cfg(feature = "smtp")]
#[cfg_attr(docsrs, doc(cfg(feature = "smtp")))]
pub use transport_smtp as smtp;

/// Transports for hosts' own tests: they send nothing.
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util {
    pub use sequence_scheduler::testing::*;
}

/// The names a host's first program needs, in one import.
pub mod prelude {
    pub use async_trait::async_trait;
    pub use chrono::{DateTime, Duration, TimeZone, Utc};
    pub use sequence_core::prelude::*;
    pub use sequence_core::store::EnrollOutcome;
    pub use sequence_core::time::parse_time_zone;
    pub use sequence_scheduler::{
        DeliverySemantics, Engine, EngineBuilder, EngineConfig, EngineError, Explanation,
        MailboxUsage, RetryPolicy, SequenceStats, SystemClock, TickReport, VirtualClock,
    };

    #[cfg(feature = "memory")]
    pub use backend_memory::MemoryStore;
    #[cfg(feature = "smtp")]
    pub use transport_smtp::{SmtpSettings, SmtpTransport};
}

/// The README's code blocks, compiled as doctests so that they cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
