//! The simulation: the real [`Engine`] on a real store, a [`VirtualClock`] and a recording
//! transport that injects the scenario's faults, driven through the scenario's span in
//! event-driven virtual time.
//!
//! The clock jumps straight to the next instant at which something can happen: a planned
//! send, an enrollment's `not_before` (which covers windows opening and capacity coming
//! back), a scripted enrollment or event. A quiet week costs nothing.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use sequence_simulator::{scenario, simulate};
//! let scenario = scenario::parse(r#"{
//!   "start": "2026-03-09T00:00:00Z", "days": 2,
//!   "mailboxes": [{"id": "mb", "email": "ana@sender.example", "timezone": "UTC", "daily_limit": 5}],
//!   "sequences": [{"id": "s", "mailboxes": ["mb"], "steps": [
//!       {"delay": {"amount": 0, "unit": "days"}, "subject": "Hi {{first_name}}", "body": "."}]}],
//!   "contacts": [{"id": "c", "email": "bo@acme.example", "first_name": "Bo",
//!                 "enroll": [{"sequence": "s", "at": "2026-03-09T00:00:00Z"}]}]
//! }"#).unwrap();
//! let run = simulate::run(&scenario, &simulate::Options::default()).await.unwrap();
//! assert_eq!(run.attempts.len(), 1);
//! assert_eq!(run.attempts[0].subject, "Hi Bo");
//! assert_eq!(run.summary.enrollments[0].status, "completed");
//! # });
//! ```

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use backend_postgres::PostgresStore;
use sequence_core::condition::{Condition, OnConditionFail, StepCondition};
use sequence_core::contact::Contact;
use sequence_core::enrollment::{Enrollment, EnrollmentStatus};
use sequence_core::ids::{ContactId, MailboxId, SequenceId, TenantId};
use sequence_core::mailbox::Mailbox;
use sequence_core::ports::Clock;
use sequence_core::sequence::{Sequence, SequenceStatus, Step};
use sequence_core::store::StoreError;
use sequence_core::store::{EnrollOutcome, Store};
use sequence_core::transport::{Delivery, FailureCategory, OutgoingEmail, SendError, Transport};
use sequence_scheduler::{Engine, EngineConfig, EngineError, RetryPolicy, VirtualClock};

use crate::scenario::{EventKind, Scenario};

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The transport accepted it.
    Sent,
    /// It failed and may be retried (like SMTP 421).
    TransientFailure,
    /// It failed for good (like SMTP 550).
    PermanentFailure,
}

/// One line of `sends.jsonl`: one call of the transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// The virtual instant of the call.
    pub at: DateTime<Utc>,
    /// The mailbox's scenario id.
    pub mailbox: String,
    /// The contact's scenario id.
    pub contact: String,
    /// The sequence's scenario id.
    pub sequence: String,
    /// The step.
    pub step: u32,
    /// The attempt number of this step (1 for the first).
    pub attempt: u32,
    /// What it came to.
    pub outcome: Outcome,
    /// The rendered subject.
    pub subject: String,
}

/// One enrollment in `summary.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnrollmentSummary {
    /// The contact's scenario id.
    pub contact: String,
    /// The sequence's scenario id.
    pub sequence: String,
    /// `active`, `completed`, `exited` or `paused`.
    pub status: String,
    /// Why it exited, if it did.
    pub exit_reason: Option<String>,
    /// Steps sent successfully.
    pub steps_sent: u32,
    /// When it completed or exited (not in `summary.json`; used by the forecast).
    #[serde(skip)]
    pub ended_at: Option<DateTime<Utc>>,
}

/// One mailbox in `summary.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxSummary {
    /// The mailbox's scenario id.
    pub id: String,
    /// Attempts it made.
    pub attempts: u64,
}

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Every enrollment of the scenario, in the order the scenario lists them.
    pub enrollments: Vec<EnrollmentSummary>,
    /// Every mailbox, in scenario order.
    pub mailboxes: Vec<MailboxSummary>,
    /// Wall-clock seconds the simulation took.
    pub wall_seconds: f64,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Run {
    /// Every attempt, in the order they happened.
    pub attempts: Vec<Attempt>,
    /// The summary.
    pub summary: Summary,
}

/// Which store the engine runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// `backend-memory`.
    #[default]
    Memory,
    /// `backend-postgres` at this URL.
    Postgres(String),
}

/// How a run reports progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// Nothing.
    #[default]
    Quiet,
    /// On stderr: a bar on a terminal, a line per simulated day otherwise.
    Stderr,
}

/// Settings of a run.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Options {
    /// The store.
    pub backend: Backend,
    /// Progress reporting.
    pub progress: Progress,
}

impl Options {
    /// Set the backend (builder style).
    #[must_use]
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }
    /// Set the progress reporting (builder style).
    #[must_use]
    pub fn progress(mut self, progress: Progress) -> Self {
        self.progress = progress;
        self
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimulateError {
    /// The engine failed.
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    /// The domain refused a value of the scenario.
    #[error("scenario value refused by the domain: {0}")]
    Domain(String),
    /// The backend asked for is not available.
    #[error("backend unavailable: {0}")]
    Backend(String),
}

/// The tenant every scenario record belongs to.
fn tenant() -> TenantId {
    TenantId::from_name("simulate")
}

/// Scenario ids and engine ids, both ways.
#[derive(Debug, Default)]
struct Names {
    mailboxes: HashMap<MailboxId, String>,
    contacts: HashMap<ContactId, String>,
    sequences: HashMap<SequenceId, String>,
}

/// One injected fault, with the attempts it still fails per sequence.
#[derive(Debug)]
struct Fault {
    step: u32,
    permanent: bool,
    count: u32,
    sequence: Option<SequenceId>,
    used: HashMap<SequenceId, u32>,
}

/// The transport of the simulation: records each call at the virtual instant and fails
/// the calls the scenario says fail.
#[derive(Debug, Clone)]
struct Recorder {
    clock: VirtualClock,
    names: Arc<Names>,
    faults: Arc<Mutex<HashMap<ContactId, Vec<Fault>>>>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
}

impl Recorder {
    fn fault_for(&self, email: &OutgoingEmail) -> Option<bool> {
        let mut faults = self
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = faults.get_mut(&email.contact)?;
        // A fault naming the sequence wins over one for every sequence.
        let index = list
            .iter()
            .position(|f| f.step == email.step && f.sequence == Some(email.sequence))
            .or_else(|| {
                list.iter()
                    .position(|f| f.step == email.step && f.sequence.is_none())
            })?;
        let fault = &mut list[index];
        if fault.permanent {
            return Some(true);
        }
        let used = fault.used.entry(email.sequence).or_insert(0);
        if *used < fault.count {
            *used += 1;
            Some(false)
        } else {
            None
        }
    }
}

fn name<K: std::hash::Hash + Eq>(map: &HashMap<K, String>, key: &K) -> String {
    map.get(key).cloned().unwrap_or_default()
}

#[async_trait]
impl Transport for Recorder {
    async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, SendError> {
        let fault = self.fault_for(email);
        let outcome = match fault {
            None => Outcome::Sent,
            Some(false) => Outcome::TransientFailure,
            Some(true) => Outcome::PermanentFailure,
        };
        self.attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Attempt {
                at: self.clock.now(),
                mailbox: name(&self.names.mailboxes, &email.mailbox),
                contact: name(&self.names.contacts, &email.contact),
                sequence: name(&self.names.sequences, &email.sequence),
                step: email.step,
                attempt: email.attempt,
                outcome,
                subject: email.subject.clone(),
            });
        match fault {
            None => Ok(Delivery::with_response("250 2.0.0 Ok: queued")),
            Some(false) => Err(SendError::transient(
                FailureCategory::Other,
                "421 4.3.0 service not available, try again later",
            )
            .with_codes(Some(421), Some("4.3.0".into()))),
            Some(true) => Err(SendError::permanent(
                FailureCategory::InvalidRecipient,
                "550 5.1.1 no such user",
            )
            .with_codes(Some(550), Some("5.1.1".into()))),
        }
    }
}

/// Something the scenario makes happen at an instant.
#[derive(Debug)]
enum Action<'a> {
    Enroll(SequenceId, Vec<ContactId>),
    Event(&'a EventKind),
}

/// Reports progress on stderr.
struct Reporter {
    bar: Option<indicatif::ProgressBar>,
    start: DateTime<Utc>,
    last_day: i64,
    days: u32,
}

impl Reporter {
    fn new(progress: Progress, scenario: &Scenario) -> Self {
        let bar = (progress == Progress::Stderr && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(u64::from(scenario.days) * 86_400);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} simulating {msg} [{bar:40}] {percent}% ({elapsed})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Self {
            bar,
            start: scenario.start,
            last_day: if progress == Progress::Stderr {
                -1
            } else {
                i64::MAX
            },
            days: scenario.days,
        }
    }

    fn at(&mut self, t: DateTime<Utc>, attempts: usize) {
        let elapsed = (t - self.start).num_seconds().max(0);
        let day = elapsed / 86_400;
        if let Some(bar) = &self.bar {
            bar.set_position(u64::try_from(elapsed).unwrap_or(0));
            bar.set_message(format!(
                "day {}/{}, {attempts} attempts",
                day + 1,
                self.days
            ));
        } else if day > self.last_day {
            self.last_day = day;
            eprintln!(
                "simulate: day {}/{} ({}), {attempts} attempts so far",
                day + 1,
                self.days,
                t.date_naive()
            );
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Run a scenario to its end.
///
/// # Errors
/// The engine or the backend failed, or the domain refused a scenario value that the
/// scenario check let through.
pub async fn run(scenario: &Scenario, options: &Options) -> Result<Run, SimulateError> {
    match &options.backend {
        Backend::Memory => {
            let store = Arc::new(backend_memory::MemoryStore::new());
            run_on(scenario, store, options.progress).await
        }
        Backend::Postgres(url) => run_on_postgres(scenario, url, options.progress).await,
    }
}

/// Run a scenario on PostgreSQL at `url`, in a schema of its own (fresh and empty), dropped
/// at the end whether the run succeeded or not.
async fn run_on_postgres(
    scenario: &Scenario,
    url: &str,
    progress: Progress,
) -> Result<Run, SimulateError> {
    let unavailable = |e: StoreError| {
        // The whole chain: a backend error's cause (sqlx's) is what says what went wrong.
        let mut message = format!("PostgreSQL at {url}: {e}");
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            message.push_str(&format!(": {c}"));
            cause = c.source();
        }
        SimulateError::Backend(message)
    };
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let schema = format!("simulate_{}_{since_epoch}", std::process::id());
    let store = PostgresStore::connect_in_schema(url, &schema)
        .await
        .map_err(unavailable)?;
    let ran = match store.migrate().await {
        Ok(()) => run_on(scenario, Arc::new(store.clone()), progress).await,
        Err(e) => Err(unavailable(e)),
    };
    store.drop_schema(&schema).await.map_err(unavailable)?;
    ran
}

/// Run a scenario on `store` (fresh and empty).
///
/// # Errors
/// As [`run`].
pub async fn run_on(
    scenario: &Scenario,
    store: Arc<dyn Store>,
    progress: Progress,
) -> Result<Run, SimulateError> {
    let wall = Instant::now();
    let tenant = tenant();
    let start = scenario.start;
    let end = scenario.end();
    let clock = VirtualClock::new(start);
    let domain = |e: &dyn std::fmt::Display| SimulateError::Domain(e.to_string());

    let mut names = Names::default();
    let mailbox_id = |id: &str| MailboxId::from_name(id);
    let sequence_id = |id: &str| SequenceId::from_name(id);
    let contact_id = |id: &str| ContactId::from_name(id);
    for m in &scenario.mailboxes {
        names.mailboxes.insert(mailbox_id(&m.id), m.id.clone());
    }
    for s in &scenario.sequences {
        names.sequences.insert(sequence_id(&s.id), s.id.clone());
    }
    for c in &scenario.contacts {
        names.contacts.insert(contact_id(&c.id), c.id.clone());
    }
    let mut faults: HashMap<ContactId, Vec<Fault>> = HashMap::new();
    for f in &scenario.failures {
        faults
            .entry(contact_id(&f.contact))
            .or_default()
            .push(Fault {
                step: f.step,
                permanent: f.permanent,
                count: f.count,
                sequence: f.sequence.as_deref().map(sequence_id),
                used: HashMap::new(),
            });
    }
    let recorder = Recorder {
        clock: clock.clone(),
        names: Arc::new(names),
        faults: Arc::new(Mutex::new(faults)),
        attempts: Arc::new(Mutex::new(Vec::new())),
    };
    let config = EngineConfig::with_seed(scenario.seed).retry(RetryPolicy {
        max_attempts: scenario.retry.max_attempts,
        base: Duration::seconds(i64::from(scenario.retry.base_seconds)),
    });
    let engine = Engine::builder(store, recorder.clone())
        .clock(clock.clone())
        .config(config)
        .build();

    // The world as the scenario sets it up at `start`.
    for m in &scenario.mailboxes {
        let mut mailbox = Mailbox::new(tenant, &m.email, m.timezone)
            .map_err(|e| domain(&e))?
            .with_id(mailbox_id(&m.id))
            .with_daily_limit(m.daily_limit)
            .with_schedule(m.windows.clone())
            .with_min_gap_seconds(m.min_gap_seconds);
        if let Some(w) = m.warmup {
            mailbox = mailbox.with_warmup(w);
        }
        engine.create_mailbox(mailbox).await?;
        if m.paused {
            engine.pause_mailbox(tenant, mailbox_id(&m.id)).await?;
        }
    }
    for s in &scenario.sequences {
        let mut sequence = Sequence::new(tenant, &s.id, start)
            .map_err(|e| domain(&e))?
            .with_id(sequence_id(&s.id));
        sequence.exit_on_reply = s.exit_on_reply;
        sequence.recipient_windows.clone_from(&s.recipient_windows);
        for step in &s.steps {
            let mut domain_step = Step::new(step.delay, &step.subject, &step.body);
            if let Some(tag) = &step.condition_tag {
                let on_fail = if step.exit_on_condition_fail {
                    OnConditionFail::Exit
                } else {
                    OnConditionFail::Skip
                };
                domain_step = domain_step
                    .with_condition(StepCondition::new(Condition::HasTag(tag.clone()), on_fail));
            }
            sequence.add_step(domain_step).map_err(|e| domain(&e))?;
        }
        sequence
            .set_mailbox_pool(s.mailboxes.iter().map(|m| mailbox_id(m)).collect())
            .map_err(|e| domain(&e))?;
        engine.create_sequence(sequence).await?;
        engine.activate_sequence(tenant, sequence_id(&s.id)).await?;
    }
    let contacts: Vec<Contact> = scenario
        .contacts
        .iter()
        .map(|c| {
            let mut contact = Contact::new(tenant, &c.email)
                .map_err(|e| domain(&e))?
                .with_id(contact_id(&c.id));
            contact.first_name.clone_from(&c.first_name);
            contact.last_name.clone_from(&c.last_name);
            contact.company.clone_from(&c.company);
            contact.timezone = c.timezone;
            contact.tags = c.tags.clone();
            Ok(contact)
        })
        .collect::<Result<_, SimulateError>>()?;
    engine.upsert_contacts(tenant, &contacts).await?;

    // The timeline of scripted things: enrollments grouped per (instant, sequence), events.
    let mut enrollments: BTreeMap<(DateTime<Utc>, String), Vec<ContactId>> = BTreeMap::new();
    for c in &scenario.contacts {
        for e in &c.enroll {
            enrollments
                .entry((e.at.max(start), e.sequence.clone()))
                .or_default()
                .push(contact_id(&c.id));
        }
    }
    let mut timeline: Vec<(DateTime<Utc>, usize, Action<'_>)> = Vec::new();
    for ((at, seq), ids) in enrollments {
        timeline.push((at, 0, Action::Enroll(sequence_id(&seq), ids)));
    }
    for (i, e) in scenario.events.iter().enumerate() {
        // Events at one instant apply in scenario order, after that instant's enrollments.
        timeline.push((e.at.max(start), 1 + i, Action::Event(&e.kind)));
    }
    timeline.sort_by_key(|(at, order, _)| (*at, *order));
    let mut suppressed: HashMap<(ContactId, SequenceId), String> = HashMap::new();

    let mut reporter = Reporter::new(progress, scenario);
    let mut next_item = 0usize;
    let mut t = start;
    while t < end {
        clock.set(t);
        while let Some((at, _, action)) = timeline.get(next_item) {
            if *at > t {
                break;
            }
            match action {
                Action::Enroll(seq, ids) => {
                    let outcomes = engine.enroll(tenant, *seq, ids).await?;
                    for (id, outcome) in ids.iter().zip(outcomes) {
                        match outcome {
                            EnrollOutcome::Suppressed { reason } => {
                                suppressed.insert((*id, *seq), reason);
                            }
                            EnrollOutcome::Invalid { reason } => {
                                return Err(SimulateError::Domain(reason));
                            }
                            _ => {}
                        }
                    }
                }
                Action::Event(kind) => apply_event(&engine, tenant, kind).await?,
            }
            next_item += 1;
        }
        engine.tick().await?;
        reporter.at(t, recorder.attempts.lock().map_or(0, |a| a.len()));
        let wake = engine.next_wakeup().await?;
        let scripted = timeline.get(next_item).map(|(at, _, _)| *at);
        let next = match (wake, scripted) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(x) => x,
                None => break,
            },
        };
        // Never stand still: whatever is due at `t` was handled by this tick.
        t = next.max(t + Duration::seconds(1));
    }
    reporter.done();

    // The summary.
    let store = engine.store();
    let mut by_pair: HashMap<(ContactId, SequenceId), Enrollment> = HashMap::new();
    let mut sequence_status: HashMap<SequenceId, SequenceStatus> = HashMap::new();
    for s in &scenario.sequences {
        let id = sequence_id(&s.id);
        if let Some(seq) = store
            .get_sequence(tenant, id)
            .await
            .map_err(EngineError::from)?
        {
            sequence_status.insert(id, seq.status());
        }
        for e in store
            .list_enrollments(tenant, id)
            .await
            .map_err(EngineError::from)?
        {
            by_pair.insert((e.contact, e.sequence), e);
        }
    }
    let attempts = recorder
        .attempts
        .lock()
        .map(|a| a.clone())
        .unwrap_or_default();
    let mut summary = Summary {
        enrollments: Vec::new(),
        mailboxes: Vec::new(),
        wall_seconds: 0.0,
    };
    for c in &scenario.contacts {
        for e in &c.enroll {
            let key = (contact_id(&c.id), sequence_id(&e.sequence));
            let row = match by_pair.get(&key) {
                Some(en) => {
                    let paused = en.status() == EnrollmentStatus::Paused
                        || (en.status() == EnrollmentStatus::Active
                            && sequence_status.get(&key.1) == Some(&SequenceStatus::Paused));
                    let status = match en.status() {
                        EnrollmentStatus::Completed => "completed",
                        EnrollmentStatus::Exited => "exited",
                        _ if paused => "paused",
                        _ => "active",
                    };
                    EnrollmentSummary {
                        contact: c.id.clone(),
                        sequence: e.sequence.clone(),
                        status: status.to_owned(),
                        exit_reason: en.exit_reason().map(|r| r.as_str().to_owned()),
                        steps_sent: en.steps_sent(),
                        ended_at: en.ended_at(),
                    }
                }
                None => {
                    // Never stored: refused at enrollment (the contact had bounced,
                    // unsubscribed or replied), or enrolled after the end.
                    // The store answers with the exit reason's name (bounced, unsubscribed,
                    // replied).
                    let reason = suppressed.get(&key).cloned();
                    EnrollmentSummary {
                        contact: c.id.clone(),
                        sequence: e.sequence.clone(),
                        status: if reason.is_some() { "exited" } else { "active" }.to_owned(),
                        ended_at: reason.as_ref().map(|_| e.at.max(start)),
                        exit_reason: reason,
                        steps_sent: 0,
                    }
                }
            };
            summary.enrollments.push(row);
        }
    }
    let mut per_mailbox: HashMap<&str, u64> = HashMap::new();
    for a in &attempts {
        *per_mailbox.entry(a.mailbox.as_str()).or_insert(0) += 1;
    }
    summary.mailboxes = scenario
        .mailboxes
        .iter()
        .map(|m| MailboxSummary {
            id: m.id.clone(),
            attempts: per_mailbox.get(m.id.as_str()).copied().unwrap_or(0),
        })
        .collect();
    summary.wall_seconds = wall.elapsed().as_secs_f64();
    Ok(Run { attempts, summary })
}

async fn apply_event(
    engine: &Engine,
    tenant: TenantId,
    kind: &EventKind,
) -> Result<(), SimulateError> {
    let result = match kind {
        EventKind::Reply(c) => engine.reply(tenant, ContactId::from_name(c)).await,
        EventKind::Unsubscribe(c) => engine.unsubscribe(tenant, ContactId::from_name(c)).await,
        EventKind::Bounce(c) => {
            engine
                .bounce(
                    tenant,
                    ContactId::from_name(c),
                    sequence_core::contact::BounceKind::Hard,
                )
                .await
        }
        EventKind::PauseMailbox(m) => engine.pause_mailbox(tenant, MailboxId::from_name(m)).await,
        EventKind::ResumeMailbox(m) => engine.resume_mailbox(tenant, MailboxId::from_name(m)).await,
        EventKind::PauseSequence(s) => engine
            .pause_sequence(tenant, SequenceId::from_name(s))
            .await
            .map(|_| ()),
        EventKind::ResumeSequence(s) => engine
            .resume_sequence(tenant, SequenceId::from_name(s))
            .await
            .map(|_| ()),
    };
    match result {
        // Pausing what is paused, resuming what runs: nothing to do.
        Err(EngineError::Transition(_)) | Ok(()) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
