//! Engine processes for the multi-process tests: a test binary runs again as a worker (a
//! test of its own that does nothing unless [`WORKER_ENV`] is set), builds an engine on a
//! [`PostgresStore`] on the coordinator's schema with its own virtual clock, and ticks at
//! the instants the coordinator sends it, one line each on its standard input:
//!
//! * coordinator to worker: `tick <unix microseconds>`, or `quit`;
//! * worker to coordinator: `@worker done <sent> <expired>` when the tick is over, or
//!   `@worker error <message>` when it failed (lines without the mark, such as the test
//!   harness's own, are passed over).
//!
//! The worker's transport writes each call into the schema's `transport_calls` table, in a
//! statement of its own committed before it answers: the record is what went out, whatever
//! becomes of the process after. The coordinator checks the rules on that record with
//! [`Record`], with its own arithmetic (chrono-tz), never the engine's.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::process::Stdio;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use backend_postgres::PostgresStore;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use sequence_core::ids::{EnrollmentId, MailboxId};
use sequence_core::transport::{Delivery, FailureCategory, OutgoingEmail, SendError, Transport};
use sequence_scheduler::{Engine, EngineConfig, VirtualClock};
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use uuid::Uuid;

use super::{database_url, schema_pool};

/// Set in a worker process: `<schema>:<index>`.
pub(crate) const WORKER_ENV: &str = "SEQUENCE_FLEET_WORKER";

/// What marks the worker's protocol lines on its standard output.
const MARK: &str = "@worker ";

/// The longest a tick may take before the worker counts as hung.
const ANSWER_WITHIN: StdDuration = StdDuration::from_secs(120);

/// The most instants in a row at which the store's next wake-up is already past (the clock
/// then moves one second): more means something is due that no tick handles. A dead
/// process's planning lease (30 s) legitimately makes up to 30 in a row, per kill.
pub(crate) const MOST_IN_THE_PAST: usize = 600;

/// Make the record's table in the schema of `pool`.
pub(crate) async fn create_call_table(pool: &PgPool) {
    sqlx::query(
        "CREATE TABLE transport_calls ( \
             id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
             worker        integer     NOT NULL, \
             send_id       uuid        NOT NULL, \
             enrollment_id uuid        NOT NULL, \
             contact_id    uuid        NOT NULL, \
             step          integer     NOT NULL, \
             attempt       integer     NOT NULL, \
             mailbox_id    uuid        NOT NULL, \
             at            timestamptz NOT NULL)",
    )
    .execute(pool)
    .await
    .unwrap_or_else(|e| panic!("cannot create transport_calls: {e}"));
}

/// One transport call, as the worker recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    pub(crate) worker: i32,
    pub(crate) send: Uuid,
    pub(crate) enrollment: EnrollmentId,
    pub(crate) step: u32,
    pub(crate) attempt: u32,
    pub(crate) mailbox: MailboxId,
    /// The worker's virtual instant of the call.
    pub(crate) at: DateTime<Utc>,
}

/// A transport that accepts every email after writing the call into `transport_calls`
/// (committed before it answers), then taking `pause` of real time, as a server would.
struct CallLog {
    pool: PgPool,
    clock: VirtualClock,
    worker: i32,
    pause: StdDuration,
}

#[async_trait]
impl Transport for CallLog {
    async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, SendError> {
        use sequence_core::ports::Clock as _;
        let step = i32::try_from(email.step).unwrap_or(i32::MAX);
        let attempt = i32::try_from(email.attempt).unwrap_or(i32::MAX);
        sqlx::query(
            "INSERT INTO transport_calls \
                 (worker, send_id, enrollment_id, contact_id, step, attempt, mailbox_id, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(self.worker)
        .bind(email.send.0)
        .bind(email.enrollment.0)
        .bind(email.contact.0)
        .bind(step)
        .bind(attempt)
        .bind(email.mailbox.0)
        .bind(self.clock.now())
        .execute(&self.pool)
        .await
        // Not recorded, not sent: the record stays the truth of what went out.
        .map_err(|e| SendError::transient(FailureCategory::Connection, e.to_string()))?;
        if !self.pause.is_zero() {
            tokio::time::sleep(self.pause).await;
        }
        Ok(Delivery::with_response("250 2.0.0 recorded"))
    }
}

/// How a worker process runs.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSetup {
    /// The engine's settings.
    pub(crate) config: EngineConfig,
    /// Real time each transport call takes after it is recorded.
    pub(crate) pause: StdDuration,
    /// The store's pool size (the transport has a pool of its own, as large).
    pub(crate) connections: u32,
}

/// The body of a worker process when [`WORKER_ENV`] is set (nothing otherwise): ticks at
/// each instant read on standard input until `quit` or the end of the input.
pub(crate) fn serve_if_worker(setup: &WorkerSetup) {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return;
    };
    let Some((schema, index)) = spec.rsplit_once(':') else {
        panic!("{WORKER_ENV}={spec:?}: expected <schema>:<index>");
    };
    let index: i32 = index
        .parse()
        .unwrap_or_else(|e| panic!("{WORKER_ENV}={spec:?}: bad index: {e}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("no runtime: {e}"));
    let clock = VirtualClock::new(DateTime::<Utc>::UNIX_EPOCH);
    let engine = rt.block_on(async {
        let store = PostgresStore::from_pool(schema_pool(schema, setup.connections).await);
        let transport = CallLog {
            pool: schema_pool(schema, setup.connections).await,
            clock: clock.clone(),
            worker: index,
            pause: setup.pause,
        };
        Engine::builder(store, transport)
            .clock(clock.clone())
            .config(setup.config.clone())
            .build()
    });
    let mut out = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if line == "quit" {
            break;
        }
        let Some(at) = line
            .strip_prefix("tick ")
            .and_then(|m| m.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_micros)
        else {
            panic!("worker {index}: not a command: {line:?}");
        };
        clock.set(at);
        let answer = match rt.block_on(engine.tick()) {
            Ok(r) => format!("{MARK}done {} {}\n", r.sent, r.expired),
            Err(e) => format!("{MARK}error {}\n", e.to_string().replace('\n', " ")),
        };
        // Written past the harness's capture, straight to the pipe.
        if out
            .write_all(answer.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
}

/// What a worker answered to a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The tick is over: the sends it made, the expired leases it gave up.
    Done { sent: usize, expired: usize },
    /// The tick failed.
    Failed(String),
    /// The process closed its output (it died).
    Gone,
}

/// A worker process, seen from the coordinator. Killed when dropped.
#[derive(Debug)]
pub(crate) struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    pub(crate) index: usize,
}

impl Worker {
    /// Run this test binary again as a worker: only the test named `test` (which calls
    /// [`serve_if_worker`]), on `schema`, with index `index`.
    pub(crate) fn spawn(test: &str, schema: &str, index: usize) -> Self {
        let exe = std::env::current_exe()
            .unwrap_or_else(|e| panic!("the test binary's path is unknown: {e}"));
        let mut child = Command::new(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
            .env(WORKER_ENV, format!("{schema}:{index}"))
            .env("DATABASE_URL", database_url())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start worker {index}: {e}"));
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            panic!("worker {index} has no pipes");
        };
        Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            index,
        }
    }

    /// Ask for a tick at `at` (answered by [`Worker::answer`]). `false` when the process
    /// is gone.
    pub(crate) async fn tick(&mut self, at: DateTime<Utc>) -> bool {
        let line = format!("tick {}\n", at.timestamp_micros());
        self.stdin.write_all(line.as_bytes()).await.is_ok() && self.stdin.flush().await.is_ok()
    }

    /// The answer to the last tick, waited for at most `ANSWER_WITHIN` (a worker that
    /// hangs fails the test instead of holding it forever). Cancel-safe: a timeout around
    /// it loses no line.
    pub(crate) async fn answer(&mut self) -> Answer {
        match tokio::time::timeout(ANSWER_WITHIN, self.read_answer()).await {
            Ok(a) => a,
            Err(_) => Answer::Failed(format!("no answer within {ANSWER_WITHIN:?}")),
        }
    }

    async fn read_answer(&mut self) -> Answer {
        loop {
            match self.lines.next_line().await {
                Ok(Some(line)) => {
                    let Some((_, said)) = line.split_once(MARK) else {
                        continue;
                    };
                    if let Some(msg) = said.strip_prefix("error ") {
                        return Answer::Failed(msg.to_owned());
                    }
                    let counts: Vec<usize> = said
                        .strip_prefix("done ")
                        .unwrap_or_default()
                        .split(' ')
                        .filter_map(|n| n.parse().ok())
                        .collect();
                    let [sent, expired] = counts[..] else {
                        return Answer::Failed(format!("not an answer: {said:?}"));
                    };
                    return Answer::Done { sent, expired };
                }
                Ok(None) | Err(_) => return Answer::Gone,
            }
        }
    }

    /// SIGKILL, and wait for the process to be gone.
    pub(crate) async fn kill(&mut self) {
        if let Err(e) = self.child.kill().await {
            panic!("cannot kill worker {}: {e}", self.index);
        }
    }

    /// Tell it to stop, and wait until it has (at most 60 s); it must exit cleanly.
    pub(crate) async fn quit(mut self) {
        let _ = self.stdin.write_all(b"quit\n").await;
        let _ = self.stdin.flush().await;
        match tokio::time::timeout(StdDuration::from_secs(60), self.child.wait()).await {
            Ok(Ok(status)) => assert!(
                status.success(),
                "worker {} exited with {status}",
                self.index
            ),
            Ok(Err(e)) => panic!("worker {}: {e}", self.index),
            Err(_) => panic!("worker {} did not stop within 60 s", self.index),
        }
    }
}

/// Every call recorded in the schema of `pool`, in the order they were written.
pub(crate) async fn calls(pool: &PgPool) -> Vec<Call> {
    type Row = (i32, Uuid, Uuid, i32, i32, Uuid, DateTime<Utc>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT worker, send_id, enrollment_id, step, attempt, mailbox_id, at \
         FROM transport_calls ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_else(|e| panic!("cannot read transport_calls: {e}"));
    rows.into_iter()
        .map(
            |(worker, send, enrollment, step, attempt, mailbox, at)| Call {
                worker,
                send,
                enrollment: EnrollmentId(enrollment),
                step: u32::try_from(step).unwrap_or(u32::MAX),
                attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                mailbox: MailboxId(mailbox),
                at,
            },
        )
        .collect()
}

/// The rules, computed on a record of calls with nothing but chrono-tz.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    pub(crate) calls: &'a [Call],
    /// Each mailbox's zone.
    pub(crate) zones: &'a HashMap<MailboxId, Tz>,
}

impl Record<'_> {
    /// How many times each (enrollment, step) was called.
    pub(crate) fn per_step(&self) -> HashMap<(EnrollmentId, u32), usize> {
        let mut n = HashMap::new();
        for c in self.calls {
            *n.entry((c.enrollment, c.step)).or_insert(0) += 1;
        }
        n
    }

    /// The (enrollment, step)s called more than once, with their calls.
    pub(crate) fn twice(&self) -> Vec<Vec<&Call>> {
        let mut by: HashMap<(EnrollmentId, u32), Vec<&Call>> = HashMap::new();
        for c in self.calls {
            by.entry((c.enrollment, c.step)).or_default().push(c);
        }
        by.into_values().filter(|v| v.len() > 1).collect()
    }

    fn zone(&self, mailbox: MailboxId) -> Tz {
        match self.zones.get(&mailbox) {
            Some(z) => *z,
            None => panic!("a call from a mailbox the fixture does not have: {mailbox}"),
        }
    }

    /// Calls per mailbox-local day.
    pub(crate) fn per_day(&self) -> BTreeMap<(MailboxId, NaiveDate), u32> {
        let mut n = BTreeMap::new();
        for c in self.calls {
            let local = c.at.with_timezone(&self.zone(c.mailbox)).date_naive();
            *n.entry((c.mailbox, local)).or_insert(0) += 1;
        }
        n
    }

    /// The mailbox-days with more than `limit` calls.
    pub(crate) fn over_limit(&self, limit: u32) -> Vec<((MailboxId, NaiveDate), u32)> {
        self.per_day()
            .into_iter()
            .filter(|(_, n)| *n > limit)
            .collect()
    }

    /// Each mailbox's calls, in time order.
    fn by_mailbox(&self) -> BTreeMap<MailboxId, Vec<DateTime<Utc>>> {
        let mut by: BTreeMap<MailboxId, Vec<DateTime<Utc>>> = BTreeMap::new();
        for c in self.calls {
            by.entry(c.mailbox).or_default().push(c.at);
        }
        for at in by.values_mut() {
            at.sort();
        }
        by
    }

    /// Consecutive calls of one mailbox closer than `gap`: (mailbox, earlier, later).
    pub(crate) fn gaps_broken(
        &self,
        gap: Duration,
    ) -> Vec<(MailboxId, DateTime<Utc>, DateTime<Utc>)> {
        let mut broken = Vec::new();
        for (m, at) in self.by_mailbox() {
            broken.extend(
                at.windows(2)
                    .filter(|w| w[1] - w[0] < gap)
                    .map(|w| (m, w[0], w[1])),
            );
        }
        broken
    }

    /// The shortest time between two consecutive calls of one mailbox.
    pub(crate) fn tightest_gap(&self) -> Option<Duration> {
        self.by_mailbox()
            .values()
            .flat_map(|at| at.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>())
            .min()
    }

    /// Calls outside `[open, close)` local time on a weekday (Monday to Friday).
    pub(crate) fn outside_window(&self, open: NaiveTime, close: NaiveTime) -> Vec<&Call> {
        self.calls
            .iter()
            .filter(|c| {
                let local = c.at.with_timezone(&self.zone(c.mailbox));
                let weekday = !matches!(local.weekday(), Weekday::Sat | Weekday::Sun);
                let t = local.time();
                !(weekday && open <= t && t < close)
            })
            .collect()
    }
}
