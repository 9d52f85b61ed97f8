//! Pace and current state at dispatch: the gap kept by claims, the attempt instant, the
//! context the re-check reads.

use chrono::Duration;
use sequence_core::ids::{SendId, TenantId};
use sequence_core::store::{SendContext, Store};

use crate::fixtures::{at, claim, ok, plan, sent, some, t0, World};

/// Store a world of one mailbox with a `gap_seconds` gap.
async fn paced_world<S: Store + ?Sized>(store: &S, gap_seconds: u32, contacts: usize) -> World {
    let mut w = World::build(store, 1, 30, 1, contacts).await;
    let mut m = w.mailboxes[0].clone();
    let read = m.version();
    m.min_gap_seconds = gap_seconds;
    ok("save_mailbox", store.save_mailbox(&m, Some(read)).await);
    w.mailboxes[0] = some(
        "get_mailbox",
        ok("get_mailbox", store.get_mailbox(w.tenant, m.id).await),
    );
    w
}

/// `claim_sends`: "A mailbox's send is claimable only once its latest attempt is at least
/// its `min_gap_seconds` before `now`"; `next_wakeup`: "the instant a planned send becomes
/// claimable".
pub async fn claim_sends_keeps_the_mailbox_gap<S: Store + 'static>(store: S) {
    let w = paced_world(&store, 120, 3).await;
    let es = w.enroll_all(&store, at(-60)).await;
    // A backlog: three sends overdue at once, as after a late tick.
    plan(
        &store,
        at(-60),
        es.iter()
            .enumerate()
            .map(|(i, e)| w.plan_send(e, 0, at(-30 + i as i64), 30))
            .collect(),
    )
    .await;
    let first = claim(&store, t0(), 10).await;
    assert_eq!(first.len(), 1, "one claim per mailbox");
    ok(
        "complete_send",
        store.complete_send(t0(), sent(&first[0], t0(), 1)).await,
    );
    assert!(
        claim(&store, t0() + Duration::seconds(119), 10)
            .await
            .is_empty(),
        "an overdue send must not be claimed closer than the gap to the latest attempt"
    );
    assert_eq!(
        ok("next_wakeup", store.next_wakeup().await),
        Some(t0() + Duration::seconds(120)),
        "next_wakeup must answer when the next overdue send becomes claimable"
    );
    let second = claim(&store, t0() + Duration::seconds(120), 10).await;
    assert_eq!(
        second.len(),
        1,
        "once the gap has passed the next send is claimable"
    );
    assert_eq!(second[0].send.enrollment, es[1].id, "earliest first");
}

/// `complete_send`: "the mailbox's latest attempt becomes `attempted_at` (if later)": a send
/// that waited between its claim and its transport call spaces the next one from the call.
pub async fn the_gap_counts_from_the_attempt_not_the_claim<S: Store + 'static>(store: S) {
    let w = paced_world(&store, 60, 2).await;
    two_overdue(&store, &w).await;
    let c = claim(&store, t0(), 1).await.remove(0);
    // The transport was called five minutes after the claim.
    let mut done = sent(&c, at(5), 1);
    done.attempted_at = at(5);
    ok("complete_send", store.complete_send(at(5), done).await);
    assert!(
        claim(&store, at(5) + Duration::seconds(59), 1)
            .await
            .is_empty(),
        "the gap must count from the transport call, not the claim"
    );
    let snap = w.snapshot(&store, at(5), 0).await;
    assert_eq!(
        snap.last_attempt_at,
        Some(at(5)),
        "the snapshot's latest attempt is the transport call"
    );
    assert_eq!(
        claim(&store, at(6), 1).await.len(),
        1,
        "a gap after the call frees the next send"
    );
}

/// Enroll the world's two contacts and plan their first steps a minute apart, overdue.
async fn two_overdue<S: Store + ?Sized>(store: &S, w: &World) {
    let es = w.enroll_all(store, at(-60)).await;
    plan(
        store,
        at(-60),
        vec![
            w.plan_send(&es[0], 0, at(-2), 30),
            w.plan_send(&es[1], 0, at(-1), 30),
        ],
    )
    .await;
}

/// The stored context of a send that must exist.
async fn context<S: Store + ?Sized>(store: &S, tenant: TenantId, send: SendId) -> SendContext {
    some(
        "send_context",
        ok("send_context", store.send_context(tenant, send).await),
    )
}

/// `send_context`: "the current state of what may stop a send"; `attempts_on_day`:
/// "Attempts counted on the send's mailbox and mailbox-local day, this claim included";
/// `release_send`: "The claim's attempt is taken back".
pub async fn send_context_reads_the_current_state<S: Store + 'static>(store: S) {
    let w = World::build(&store, 1, 30, 1, 2).await;
    two_overdue(&store, &w).await;
    let c = claim(&store, t0(), 1).await.remove(0);
    let ctx = context(&store, w.tenant, c.send.id).await;
    assert_eq!(ctx.attempts_on_day, 1, "the claim counts as an attempt");
    // The host pauses the mailbox and the contact replies while the transport waits.
    let mut m = some("mailbox", ctx.mailbox.clone());
    let read = m.version();
    if m.pause().is_err() {
        panic!("fixture: pause mailbox");
    }
    ok("save_mailbox", store.save_mailbox(&m, Some(read)).await);
    let mut contact = some("contact", ctx.contact.clone());
    let read = contact.version();
    contact.mark_unsubscribed();
    ok(
        "apply_changes",
        store
            .apply_changes(
                t0(),
                sequence_core::store::ChangeSet {
                    contacts: vec![(contact, read)],
                    ..Default::default()
                },
            )
            .await,
    );
    let now = context(&store, w.tenant, c.send.id).await;
    assert!(
        now.mailbox.as_ref().is_some_and(|m| !m.is_active()),
        "send_context must read the mailbox as it is now"
    );
    assert!(
        now.contact.as_ref().is_some_and(|c| !c.is_sendable()),
        "send_context must read the contact as it is now"
    );
    assert!(
        ok(
            "send_context (another tenant)",
            store.send_context(TenantId::new(), c.send.id).await
        )
        .is_none(),
        "send_context is scoped to the tenant"
    );
    ok(
        "release_send",
        store.release_send(t0(), c.send.id, c.lease, None).await,
    );
    let after = context(&store, w.tenant, c.send.id).await;
    assert_eq!(after.attempts_on_day, 0, "a claim given back is no attempt");
}

/// `send_contexts`: "one answer per send, in order ... what `send_context` would answer for
/// its send", a missing send and another tenant's included.
pub async fn send_contexts_read_a_wave_as_send_context_does<S: Store + 'static>(store: S) {
    let w = World::build(&store, 2, 30, 1, 3).await;
    let es = w.enroll_all(&store, at(-60)).await;
    plan(
        &store,
        at(-60),
        vec![
            w.plan_send(&es[0], 0, at(-3), 30),
            w.plan_send(&es[1], 1, at(-2), 30),
            w.plan_send(&es[2], 0, at(-1), 30),
        ],
    )
    .await;
    let claimed = claim(&store, t0(), 2).await;
    assert_eq!(claimed.len(), 2, "one send of each mailbox is claimable");
    let unclaimed = SendId::of_step(es[2].id, 0);
    let wave = vec![
        (w.tenant, claimed[1].send.id),
        (w.tenant, SendId::new()),
        (w.tenant, unclaimed),
        (TenantId::new(), claimed[0].send.id),
        (w.tenant, claimed[0].send.id),
    ];
    let answers = ok("send_contexts", store.send_contexts(&wave).await);
    assert_eq!(answers.len(), wave.len(), "one answer per send");
    for ((tenant, send), answer) in wave.iter().zip(&answers) {
        let one = ok("send_context", store.send_context(*tenant, *send).await);
        assert_eq!(
            answer, &one,
            "send_contexts must answer as send_context for {send}"
        );
    }
    assert!(answers[1].is_none() && answers[3].is_none());
    let first = some("context of a claimed send", answers[4].clone());
    assert_eq!(first.attempts_on_day, 1, "the claim counts as an attempt");
    assert_eq!(
        first.mailbox.map(|m| m.id),
        Some(w.mailboxes[0].id),
        "the send's own mailbox"
    );
    assert_eq!(
        answers[0]
            .as_ref()
            .and_then(|c| c.mailbox.as_ref())
            .map(|m| m.id),
        Some(w.mailboxes[1].id),
        "the send's own mailbox"
    );
    assert!(
        ok("send_contexts (none)", store.send_contexts(&[]).await).is_empty(),
        "no sends, no answers"
    );
}
