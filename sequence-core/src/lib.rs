//! # sequence-core
//!
//! The domain of the sequence engine, with no I/O: sequences and their steps, sending
//! mailboxes, contacts, enrollments, the outbox of sends, the time rules that decide when a
//! mailbox may send (weekly windows in IANA zones across DST, local days, delays, warm-up),
//! templates, step conditions, validation, and the ports ([`Store`], [`Transport`],
//! [`Clock`], [`EventSink`]) that backends and transports implement.
//!
//! Every state change is a method that checks its invariant and returns a typed error;
//! every domain type is `serde`-serializable; no function here reads a clock.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use sequence_core::prelude::*;
//!
//! let tenant = TenantId::new();
//! let now = Utc.with_ymd_and_hms(2026, 3, 9, 8, 0, 0).unwrap();
//!
//! // A mailbox in New York that sends on weekdays from 09:00 to 17:00, 40 a day.
//! let hours = SendWindow::new(WeekdaySet::WEEKDAYS, "09:00".parse()?, "17:00".parse()?)?;
//! let mailbox = Mailbox::new(tenant, "ana@sender.example", chrono_tz::America::New_York)?
//!     .with_daily_limit(40)
//!     .with_schedule(WeeklySchedule::windows(vec![hours]));
//! assert!(!mailbox.schedule.contains(mailbox.timezone, now)); // 04:00 in New York
//! let opens = mailbox.schedule.next_open(mailbox.timezone, now).unwrap();
//! assert_eq!(opens, Utc.with_ymd_and_hms(2026, 3, 9, 13, 0, 0).unwrap()); // 09:00 EDT
//!
//! // A two-step sequence sent from that mailbox.
//! let mut sequence = Sequence::new(tenant, "Welcome", now)?;
//! sequence.add_step(Step::new(Delay::ZERO, "Hi {{ first_name | default('there') }}", "Hello!"))?;
//! sequence.add_step(Step::new(Delay::new(2, DelayUnit::Days), "Re: Hi", "Following up.").in_thread())?;
//! sequence.set_mailbox_pool(vec![mailbox.id])?;
//! sequence.activate()?;
//! assert_eq!(sequence.status(), SequenceStatus::Active);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod condition;
pub mod contact;
pub mod enrollment;
pub mod error;
pub mod event;
pub mod ids;
pub mod import;
pub mod mailbox;
pub mod ports;
pub mod send;
pub mod sequence;
pub mod store;
pub mod template;
pub mod time;
pub mod transport;
pub mod validate;

pub use error::{TransitionError, ValidationErrors};
pub use ports::{Clock, EventSink, NoopEventSink};
pub use store::Store;
pub use transport::Transport;

/// The names most programs need, in one import.
pub mod prelude {
    pub use crate::condition::{Condition, FieldOp, LastActivity, OnConditionFail, StepCondition};
    pub use crate::contact::{BounceKind, Contact, ContactStatus, FieldValue};
    pub use crate::enrollment::{
        Deferral, DeferralReason, Enrollment, EnrollmentStatus, ExitReason,
    };
    pub use crate::error::{Problem, TransitionError, ValidationErrors};
    pub use crate::event::DomainEvent;
    pub use crate::ids::{ContactId, EnrollmentId, MailboxId, SendId, SequenceId, TenantId};
    pub use crate::import::{ContactRow, ImportOutcome};
    pub use crate::mailbox::{Mailbox, MailboxStatus};
    pub use crate::ports::{Clock, EventSink, NoopEventSink};
    pub use crate::send::{Lease, ScheduledSend, SendStatus};
    pub use crate::sequence::{ReenrollmentRule, Sequence, SequenceStatus, Step, Trigger, Variant};
    pub use crate::store::{Catalog, Outbox, Store, StoreError};
    pub use crate::template::{Escape, Renderer, TemplateError};
    pub use crate::time::{
        Delay, DelayUnit, HolidayCalendar, LocalTime, SendWindow, WarmUp, WeekdaySet,
        WeeklySchedule,
    };
    pub use crate::transport::{Delivery, FailureCategory, OutgoingEmail, SendError, Transport};
}
