//! The engine test world the suites share: an engine on the memory store with a virtual
//! clock and a recording transport, one tenant, and helpers to add mailboxes, sequences and
//! contacts and to let virtual time pass.

#![allow(dead_code, unreachable_pub)] // each test binary uses a part of the shared support

use backend_memory::MemoryStore;
use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use sequence_core::prelude::*;
use sequence_core::store::EnrollOutcome;
use sequence_scheduler::testing::RecordingTransport;
use sequence_scheduler::{Engine, EngineConfig, VirtualClock};

/// Monday 2026-03-09 00:00Z: where every world's clock starts.
pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 9, 0, 0, 0).unwrap()
}

/// An engine, its clock and transport, and one tenant.
pub struct World {
    pub engine: Engine,
    pub clock: VirtualClock,
    pub transport: RecordingTransport,
    pub tenant: TenantId,
}

impl World {
    /// A world with `config`, the clock at [`start`].
    pub fn new(config: EngineConfig) -> Self {
        let clock = VirtualClock::new(start());
        let recording = RecordingTransport::new(clock.clone());
        Self::with_transport(config, clock, recording.clone(), recording)
    }

    /// A world whose engine sends through `transport` (which wraps `recording`, the record
    /// the tests read), on `clock`.
    pub fn with_transport(
        config: EngineConfig,
        clock: VirtualClock,
        recording: RecordingTransport,
        transport: impl Transport + 'static,
    ) -> Self {
        let engine = Engine::builder(MemoryStore::new(), transport)
            .clock(clock.clone())
            .config(config)
            .build();
        Self {
            engine,
            clock,
            transport: recording,
            tenant: TenantId::from_u128(1),
        }
    }

    /// Store a mailbox at `address` in `zone` with `limit` a day (always open).
    pub async fn mailbox(&self, address: &str, zone: Tz, limit: u32) -> Mailbox {
        let m = Mailbox::new(self.tenant, address, zone)
            .unwrap()
            .with_daily_limit(limit);
        self.engine.create_mailbox(m).await.unwrap()
    }

    /// Store `n` mailboxes `sender{i}@fleet.example` in `zone` with `limit` a day.
    pub async fn mailboxes(&self, n: usize, zone: Tz, limit: u32) -> Vec<MailboxId> {
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let address = format!("sender{i}@fleet.example");
            ids.push(self.mailbox(&address, zone, limit).await.id);
        }
        ids
    }

    /// Store and activate a sequence named `name` (id derived from the name) of `steps`
    /// over `pool`, after `change`.
    pub async fn sequence(
        &self,
        name: &str,
        pool: &[MailboxId],
        steps: Vec<Step>,
        change: impl FnOnce(&mut Sequence),
    ) -> SequenceId {
        let mut seq = Sequence::new(self.tenant, name, start())
            .unwrap()
            .with_id(SequenceId::from_name(name));
        for step in steps {
            seq.add_step(step).unwrap();
        }
        seq.set_mailbox_pool(pool.to_vec()).unwrap();
        change(&mut seq);
        let seq = self.engine.create_sequence(seq).await.unwrap();
        self.engine
            .activate_sequence(self.tenant, seq.id)
            .await
            .unwrap();
        seq.id
    }

    /// Store `n` contacts `p{i}@client.example` (fixed ids) named `P{i} Doe`.
    pub async fn contacts(&self, n: usize) -> Vec<ContactId> {
        let people: Vec<Contact> = (0..n)
            .map(|i| {
                Contact::new(self.tenant, format!("p{i}@client.example"))
                    .unwrap()
                    .with_id(ContactId::from_u128(1000 + i as u128))
                    .with_name(format!("P{i}"), "Doe")
            })
            .collect();
        self.engine
            .upsert_contacts(self.tenant, &people)
            .await
            .unwrap()
    }

    /// Enroll `contacts` in `sequence`; the answers.
    pub async fn enroll(&self, sequence: SequenceId, contacts: &[ContactId]) -> Vec<EnrollOutcome> {
        self.engine
            .enroll(self.tenant, sequence, contacts)
            .await
            .unwrap()
    }

    /// Let virtual time pass until `until`, ticking at every wake-up.
    pub async fn run_until(&self, until: DateTime<Utc>) {
        self.engine.run_until(until).await.unwrap();
    }

    /// Let `by` pass from the clock's instant.
    pub async fn run_for(&self, by: Duration) {
        let until = self.clock.now() + by;
        self.run_until(until).await;
    }

    /// Every enrollment of `sequence`.
    pub async fn enrollments(&self, sequence: SequenceId) -> Vec<Enrollment> {
        self.engine
            .store()
            .list_enrollments(self.tenant, sequence)
            .await
            .unwrap()
    }
}

/// A three-step sequence: at once, a day later, two days after that (in thread).
pub fn three_steps() -> Vec<Step> {
    vec![
        Step::new(Delay::ZERO, "Hello {{ first_name }}", "Hi!"),
        Step::new(
            Delay::new(1, DelayUnit::Days),
            "Re: Hello {{ first_name }}",
            "Again.",
        )
        .in_thread(),
        Step::new(Delay::new(2, DelayUnit::Days), "Last note", "Bye.").in_thread(),
    ]
}

/// The shared world with one always-open UTC mailbox (a fixed id) of `limit` a day.
pub struct Features {
    pub world: World,
    pub mailbox: MailboxId,
}

impl std::ops::Deref for Features {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

pub async fn one_mailbox(config: EngineConfig, limit: u32) -> Features {
    let world = World::new(config);
    let m = Mailbox::new(world.tenant, "ana@sender.example", chrono_tz::UTC)
        .expect("fixture: a valid mailbox")
        .with_id(MailboxId::from_u128(1))
        .with_daily_limit(limit);
    let mailbox = world
        .engine
        .create_mailbox(m)
        .await
        .expect("fixture: the mailbox is stored")
        .id;
    Features { world, mailbox }
}

impl Features {
    /// An active one-step sequence named `name` on the mailbox, after `change` (fixed ids:
    /// the variant drawn for an enrollment follows from the seed and its id).
    pub async fn sequence(&self, name: &str, change: impl FnOnce(&mut Sequence)) -> SequenceId {
        let step = Step::new(Delay::ZERO, "Hello {{ first_name }}", "Hi!");
        self.world
            .sequence(name, &[self.mailbox], vec![step], change)
            .await
    }
}
