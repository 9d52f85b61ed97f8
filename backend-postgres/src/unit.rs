//! Units of work: how a `Store` method runs on the pool (one transaction, run again when
//! it lost a race; one snapshot; one read).

use std::time::Duration as StdDuration;

/// How many times a unit of work that lost a race (deadlock, serialization failure) is run
/// again before the failure is returned.
pub(crate) const RETRIES: u32 = 5;

/// A pause before running a unit of work again, growing with each attempt.
pub(crate) fn backoff(attempt: u32) -> StdDuration {
    StdDuration::from_millis(2_u64 << attempt.min(8))
}

/// The `BEGIN` of a unit whose commit does not wait for its WAL to reach the disk (one
/// round trip, in the simple protocol). Only for a unit whose loss in a crash of the server
/// leaves a state the store already recovers from: the plain completions of claimed sends.
/// Lost, such a completion leaves its send `sending` under a lease that runs out, as when an
/// engine dies between the transport's answer and the record, and the expired-lease policy
/// settles it (at most once: `uncertain`, never sent again). Later units that wait for the
/// disk (the next claim) carry it with them: the WAL is flushed in order.
pub(crate) const BEGIN_WITHOUT_FLUSH: &str = "BEGIN; SET LOCAL synchronous_commit = off";

/// Run `$body` (an expression of a future that uses `$conn: &mut PgConnection`) as one
/// transaction, committed when it succeeds, rolled back when it fails, and run again from
/// the start when it lost a race. With `begin = Some(sql)`, the transaction is opened by
/// `sql` (such as [`BEGIN_WITHOUT_FLUSH`]) instead of a plain `BEGIN`.
macro_rules! transaction {
    ($store:expr, |$conn:ident| $body:expr) => {
        transaction!($store, begin = None, |$conn| $body)
    };
    ($store:expr, begin = $begin:expr, |$conn:ident| $body:expr) => {{
        let begin: Option<&'static str> = $begin;
        let mut attempt: u32 = 0;
        loop {
            let mut tx = match begin {
                Some(sql) => $store.pool.begin_with(sql).await,
                None => $store.pool.begin().await,
            }
            .db()?;
            let result = {
                let $conn: &mut sqlx::PgConnection = &mut *tx;
                $body.await
            };
            let result = match result {
                Ok(value) => tx.commit().await.map(|()| value).db(),
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(e)
                }
            };
            match result {
                Err(e) if attempt < crate::unit::RETRIES && crate::error::is_transient(&e) => {
                    attempt += 1;
                    tracing::debug!(attempt, error = %e, "postgres store: unit of work retried");
                    tokio::time::sleep(crate::unit::backoff(attempt)).await;
                }
                other => break other,
            }
        }
    }};
}

/// Run `$body` (reads only) on one connection in a read-only REPEATABLE READ transaction,
/// so that its statements see one snapshot.
macro_rules! snapshot {
    ($store:expr, |$conn:ident| $body:expr) => {{
        let mut tx = $store.pool.begin().await.db()?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .db()?;
        let result = {
            let $conn: &mut sqlx::PgConnection = &mut *tx;
            $body.await
        };
        match result {
            Ok(value) => tx.commit().await.map(|()| value).db(),
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }};
}

/// Run `$body` (one read statement) on a connection of the pool.
macro_rules! read {
    ($store:expr, |$conn:ident| $body:expr) => {{
        let mut pooled = $store.pool.acquire().await.db()?;
        let $conn: &mut sqlx::PgConnection = &mut *pooled;
        $body.await
    }};
}
