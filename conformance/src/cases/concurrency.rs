//! Several tasks on one store at once: claims, plans, enrollments, completion against expiry.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::Duration;
use sequence_core::enrollment::Enrollment;
use sequence_core::ids::{EnrollmentId, MailboxId, SendId};
use sequence_core::send::SendStatus;
use sequence_core::store::{EnrollOutcome, PlanSend, Store, StoreError};

use crate::fixtures::{at, claim, ok, plan, sent, t0, World};

const TASKS: usize = 8;

fn join_error(e: &tokio::task::JoinError) -> String {
    format!("a concurrent task failed: {e}")
}

/// `claim_sends`: "No send is returned to two claimers. A send whose mailbox already has a
/// send in `sending` (from any claimer) is not claimed" — 8 tasks claim and complete 1,000
/// sends on 100 mailboxes at once; each send is claimed exactly once, and no mailbox ever
/// has two sends claimed at the same time.
pub async fn concurrent_claimers_never_share_a_send<S: Store + 'static>(store: S) {
    const SENDS: usize = 1_000;
    const MAILBOXES: usize = 100;
    let store = Arc::new(store);
    let w = World::build(&*store, MAILBOXES, 1_000, 1, SENDS).await;
    let es = w.enroll_all(&*store, at(-120)).await;
    let items: Vec<PlanSend> = es
        .iter()
        .enumerate()
        .map(|(i, e)| w.plan_send(e, i % MAILBOXES, at(-60 + (i as i64 % 50)), 1_000))
        .collect();
    let applied = plan(&*store, at(-120), items).await;
    assert_eq!(applied.planned.len(), SENDS, "fixture: every send planned");

    let claims: Arc<Mutex<HashMap<SendId, usize>>> = Arc::default();
    let busy: Arc<Mutex<HashSet<MailboxId>>> = Arc::default();
    let overlaps: Arc<Mutex<Vec<MailboxId>>> = Arc::default();
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (store, claims, busy, overlaps, done) = (
            Arc::clone(&store),
            Arc::clone(&claims),
            Arc::clone(&busy),
            Arc::clone(&overlaps),
            Arc::clone(&done),
        );
        tasks.push(tokio::spawn(async move {
            let mut idle = 0u32;
            while done.load(Ordering::SeqCst) < SENDS && idle < 10_000 {
                let got = store
                    .claim_sends(t0(), Duration::minutes(5), 7)
                    .await
                    .map_err(|e| format!("claim_sends failed: {e}"))?;
                if got.is_empty() {
                    idle += 1;
                    tokio::task::yield_now().await;
                    continue;
                }
                idle = 0;
                for c in &got {
                    *claims
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .entry(c.send.id)
                        .or_insert(0) += 1;
                    if !busy
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(c.send.mailbox())
                    {
                        overlaps
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(c.send.mailbox());
                    }
                }
                tokio::task::yield_now().await;
                for c in got {
                    busy.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&c.send.mailbox());
                    store
                        .complete_send(t0(), sent(&c, t0(), 1))
                        .await
                        .map_err(|e| format!("complete_send failed: {e}"))?;
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{e}"),
            Err(e) => panic!("{}", join_error(&e)),
        }
    }
    let claims = claims
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let twice: Vec<_> = claims.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "claim_sends returned {} sends to two claimers: {twice:?}",
        twice.len()
    );
    assert_eq!(
        claims.len(),
        SENDS,
        "every due send must be claimed once in the end ({} were)",
        claims.len()
    );
    let overlaps = overlaps
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert!(
        overlaps.is_empty(),
        "claim_sends gave out a second send of a mailbox while one was in sending: {overlaps:?}"
    );
    for e in es.iter().take(20) {
        assert_eq!(
            w.send(&*store, e.id, 0).await.status(),
            SendStatus::Sent,
            "every claimed send must end sent"
        );
    }
}

/// Module docs: `apply_plan` "refuses any send that would bring the day's count over the
/// limit given in the plan" — 8 planners race for one mailbox-day, one send per call; the
/// limit is never exceeded, and exactly the limit is reserved. Then they race again for the
/// last two units of another day.
pub async fn concurrent_planners_never_exceed_the_limit<S: Store + 'static>(store: S) {
    const LIMIT: u32 = 10;
    const PER_TASK: usize = 5;
    let store = Arc::new(store);
    let w = World::build(&*store, 1, LIMIT, 1, TASKS * PER_TASK).await;
    let es = w.enroll_all(&*store, t0()).await;

    let race = |items: Vec<Vec<PlanSend>>| {
        let store = Arc::clone(&store);
        async move {
            let mut tasks = Vec::new();
            for mine in items {
                let store = Arc::clone(&store);
                tasks.push(tokio::spawn(async move {
                    let mut planned = Vec::new();
                    let mut refused = Vec::new();
                    for item in mine {
                        let r = store
                            .apply_plan(
                                t0(),
                                sequence_core::store::PlanCommit {
                                    sends: vec![item],
                                    ..Default::default()
                                },
                            )
                            .await
                            .map_err(|e| format!("apply_plan failed: {e}"))?;
                        planned.extend(r.planned);
                        refused.extend(r.over_capacity);
                        tokio::task::yield_now().await;
                    }
                    Ok::<(Vec<SendId>, Vec<EnrollmentId>), String>((planned, refused))
                }));
            }
            let mut planned = Vec::new();
            let mut refused = Vec::new();
            for t in tasks {
                match t.await {
                    Ok(Ok((p, r))) => {
                        planned.extend(p);
                        refused.extend(r);
                    }
                    Ok(Err(e)) => panic!("{e}"),
                    Err(e) => panic!("{}", join_error(&e)),
                }
            }
            (planned, refused)
        }
    };

    let items: Vec<Vec<PlanSend>> = es
        .chunks(PER_TASK)
        .enumerate()
        .map(|(k, chunk)| {
            chunk
                .iter()
                .enumerate()
                .map(|(j, e)| w.plan_send(e, 0, at(10 + (k * PER_TASK + j) as i64), LIMIT))
                .collect()
        })
        .collect();
    let (planned, refused) = race(items).await;
    assert_eq!(
        planned.len(),
        LIMIT as usize,
        "concurrent planners reserved {} units of a mailbox-day whose limit is {LIMIT}",
        planned.len()
    );
    assert_eq!(
        refused.len(),
        TASKS * PER_TASK - LIMIT as usize,
        "every send past the limit must be refused as over capacity"
    );
    let used = w.snapshot(&*store, t0(), 0).await.used;
    assert_eq!(
        used, LIMIT,
        "the mailbox-day count must equal the limit after the race, got {used}"
    );

    // The next day: 8 tasks race for the last two units.
    let tomorrow = t0() + Duration::days(1);
    let refused: HashSet<EnrollmentId> = refused.into_iter().collect();
    let waiting: Vec<Enrollment> = {
        let mut v = Vec::new();
        for e in &es {
            if refused.contains(&e.id) {
                v.push(w.enrollment(&*store, e.id).await);
            }
        }
        v
    };
    let fill: Vec<PlanSend> = waiting[..LIMIT as usize - 2]
        .iter()
        .enumerate()
        .map(|(i, e)| w.plan_send(e, 0, tomorrow + Duration::minutes(i as i64), LIMIT))
        .collect();
    let filled = plan(&*store, t0(), fill).await;
    assert_eq!(
        filled.planned.len(),
        LIMIT as usize - 2,
        "fixture: day filled to limit - 2"
    );
    let racers: Vec<Vec<PlanSend>> = waiting[LIMIT as usize - 2..]
        .iter()
        .take(TASKS)
        .enumerate()
        .map(|(i, e)| vec![w.plan_send(e, 0, tomorrow + Duration::minutes(30 + i as i64), LIMIT)])
        .collect();
    let (planned, _) = race(racers).await;
    assert_eq!(
        planned.len(),
        2,
        "two planners racing for the last two units: exactly two may win, {} did",
        planned.len()
    );
    let used = w.snapshot(&*store, tomorrow, 0).await.used;
    assert_eq!(
        used, LIMIT,
        "the second day must end exactly at the limit, got {used}"
    );
}

/// `enroll`: "the uniqueness lives here, not in the caller" — 8 tasks enroll the same
/// contact in the same sequence at once; exactly one enrollment is stored.
pub async fn concurrent_enrollments_keep_one_open_enrollment<S: Store + 'static>(store: S) {
    let store = Arc::new(store);
    let w = World::build(&*store, 1, 30, 1, 1).await;
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let store = Arc::clone(&store);
        let row = Enrollment::new(w.tenant, w.sequence.id, w.contacts[0].id, t0(), t0());
        let tenant = w.tenant;
        tasks.push(tokio::spawn(async move {
            store.enroll(tenant, t0(), vec![row]).await
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        match t.await {
            Ok(r) => answers.extend(ok("enroll", r)),
            Err(e) => panic!("{}", join_error(&e)),
        }
    }
    let enrolled: Vec<EnrollmentId> = answers
        .iter()
        .filter_map(|a| match a {
            EnrollOutcome::Enrolled { enrollment } => Some(*enrollment),
            _ => None,
        })
        .collect();
    assert_eq!(
        enrolled.len(),
        1,
        "concurrent enrollments of one contact: exactly one must be Enrolled, got {answers:?}"
    );
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, EnrollOutcome::Enrolled { .. })
                || *a
                    == EnrollOutcome::AlreadyEnrolled {
                        enrollment: enrolled[0]
                    }),
        "the others must be AlreadyEnrolled naming the stored one, got {answers:?}"
    );
    let stored = ok(
        "list_enrollments",
        store.list_enrollments(w.tenant, w.sequence.id).await,
    );
    assert_eq!(stored.len(), 1, "exactly one enrollment may be stored");
}

/// `expire_leases`: "re-checked inside the update"; `complete_send`: "`LeaseLost` when the
/// lease does not hold" — a completion racing the expiry of its lease: exactly one wins.
pub async fn completion_racing_expiry_has_one_winner<S: Store + 'static>(store: S) {
    const SENDS: usize = 40;
    let store = Arc::new(store);
    let w = World::build(&*store, SENDS, 30, 1, SENDS).await;
    let es = w.enroll_all(&*store, t0()).await;
    plan(
        &*store,
        t0(),
        es.iter()
            .enumerate()
            .map(|(i, e)| w.plan_send(e, i, t0(), 30))
            .collect(),
    )
    .await;
    let claimed = claim(&*store, t0(), SENDS).await;
    assert_eq!(claimed.len(), SENDS, "fixture: every send claimed");
    let late = at(6);
    let completer = {
        let store = Arc::clone(&store);
        let claimed = claimed.clone();
        tokio::spawn(async move {
            let mut won = HashSet::new();
            for c in &claimed {
                match store.complete_send(late, sent(c, late, 1)).await {
                    Ok(()) => {
                        won.insert(c.send.id);
                    }
                    Err(StoreError::LeaseLost { .. }) => {}
                    Err(e) => return Err(format!("complete_send failed: {e}")),
                }
                tokio::task::yield_now().await;
            }
            Ok(won)
        })
    };
    let expirer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut expired = HashSet::new();
            for _ in 0..SENDS {
                let got = store
                    .expire_leases(late, false)
                    .await
                    .map_err(|e| format!("expire_leases failed: {e}"))?;
                expired.extend(got.into_iter().map(|s| s.id));
                tokio::task::yield_now().await;
            }
            Ok::<_, String>(expired)
        })
    };
    let won = match completer.await {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => panic!("{e}"),
        Err(e) => panic!("{}", join_error(&e)),
    };
    let mut expired = match expirer.await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => panic!("{e}"),
        Err(e) => panic!("{}", join_error(&e)),
    };
    expired.extend(
        ok("expire_leases", store.expire_leases(late, false).await)
            .into_iter()
            .map(|s| s.id),
    );
    let both: Vec<_> = won.intersection(&expired).collect();
    assert!(
        both.is_empty(),
        "a send was both completed and expired: {both:?}"
    );
    assert_eq!(
        won.len() + expired.len(),
        SENDS,
        "every send must be either completed or expired"
    );
    for c in &claimed {
        let s = w.send(&*store, c.send.enrollment, 0).await;
        let expect = if won.contains(&c.send.id) {
            SendStatus::Sent
        } else {
            SendStatus::Uncertain
        };
        assert_eq!(
            s.status(),
            expect,
            "the stored status must match the side that won the race"
        );
    }
}
