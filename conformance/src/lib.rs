//! # sequence-conformance
//!
//! The conformance suite every [`Store`] must pass, written once and run by each backend
//! (`backend-memory` now, `backend-postgres` later). Each case asserts one promise of the
//! `Store` contract in `sequence_core::store` (the sentence is quoted in the case's docs),
//! and a failure names the method and the promise that broke.
//!
//! It covers every operation, uniqueness and version conflicts, tenant isolation, claims and
//! leases, concurrent claimers (no send claimed twice), concurrent planners (no mailbox-day
//! over its limit), and a full multi-step run through the real engine with a
//! [`RecordingTransport`] that injects transient and permanent failures.
//!
//! ## Running it against a backend
//!
//! In the backend's `tests/` (or any test crate that depends on this one), one line gives
//! one `#[test]` per case; the argument makes a fresh, empty store for each case (an async
//! closure, so a PostgreSQL backend can create a fresh schema):
//!
//! ```
//! sequence_conformance::conformance_tests!(|| async { backend_memory::MemoryStore::new() });
//! # fn main() {}
//! ```
//!
//! Each test runs on its own multi-thread Tokio runtime, so the concurrency cases race for
//! real. [`run_all`] runs every case in one call instead and reports every failure at once;
//! each case is also a public function of [`cases`], generic over the store:
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! sequence_conformance::run_all(|| async { backend_memory::MemoryStore::new() }).await;
//! sequence_conformance::cases::claim_sends_one_per_mailbox_and_none_while_sending(
//!     backend_memory::MemoryStore::new(),
//! )
//! .await;
//! assert_eq!(sequence_conformance::CASES.len(), 76);
//! # }
//! ```
//!
//! [`busy_engine_run`] is the long run every backend also makes: a busy fleet over 45
//! virtual days through the engine, with a hook after each tick for the checks a backend can
//! make only of itself.
//!
//! A backend passes when every case passes. The cases use only the [`Store`] trait; the
//! engine case also drives the real `sequence_scheduler::Engine` (this crate may depend on
//! the scheduler; backends never do).

mod busy;
pub mod cases;
pub mod fixtures;

pub use busy::busy_engine_run;

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
pub use sequence_core::Store;
pub use sequence_scheduler::testing::RecordingTransport;

/// Calls `$callback! { $args case_name }` once per case: the one list of cases.
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_case {
    ([$($callback:tt)*] $args:tt) => {
        $($callback)*! { $args sequence_insert_get_and_list }
        $($callback)*! { $args sequence_insert_twice_is_already_exists }
        $($callback)*! { $args sequence_replace_checks_the_version }
        $($callback)*! { $args delete_draft_sequence_deletes_only_a_draft_of_the_tenant }
        $($callback)*! { $args mailbox_insert_replace_and_versions }
        $($callback)*! { $args contacts_upsert_inserts_and_replaces }
        $($callback)*! { $args contacts_upsert_refuses_another_tenant_and_writes_nothing }
        $($callback)*! { $args contact_found_by_email_case_insensitively }
        $($callback)*! { $args get_contacts_reads_the_tenants_contacts_by_id }
        $($callback)*! { $args enroll_answers_each_row_and_stores_the_valid_ones }
        $($callback)*! { $args enroll_refuses_a_second_open_enrollment }
        $($callback)*! { $args enroll_follows_the_reenrollment_rule }
        $($callback)*! { $args enrollment_reads }
        $($callback)*! { $args due_enrollments_earliest_first_with_contacts_and_limit }
        $($callback)*! { $args due_enrollments_include_paused_whose_pause_ran_out }
        $($callback)*! { $args due_enrollments_hand_out_snapshots }
        $($callback)*! { $args due_enrollments_follow_every_write }
        $($callback)*! { $args due_enrollments_carry_the_contact_as_it_is_now }
        $($callback)*! { $args apply_changes_is_all_or_nothing }
        $($callback)*! { $args apply_changes_cancels_planned_sends_and_frees_capacity }
        $($callback)*! { $args apply_changes_keeps_the_first_tracking_mark }
        $($callback)*! { $args apply_changes_checks_sequence_and_mailbox_versions }
        $($callback)*! { $args tenant_cannot_read_another_tenants_rows }
        $($callback)*! { $args tenant_cannot_change_another_tenants_rows }
        $($callback)*! { $args apply_plan_stores_reserves_and_marks_planned }
        $($callback)*! { $args apply_plan_refuses_sends_over_the_limit }
        $($callback)*! { $args apply_plan_skips_stale_items }
        $($callback)*! { $args apply_plan_replans_a_retry_in_place }
        $($callback)*! { $args apply_plan_replans_a_cancelled_send }
        $($callback)*! { $args apply_plan_preempts_first }
        $($callback)*! { $args apply_plan_records_deferrals_whose_version_matches }
        $($callback)*! { $args apply_plan_records_a_deferral_as_the_domain_does }
        $($callback)*! { $args a_released_unit_wakes_waiting_enrollments }
        $($callback)*! { $args mailbox_snapshots_describe_the_local_day }
        $($callback)*! { $args daily_counts_count_new_starts_and_domains }
        $($callback)*! { $args next_wakeup_is_the_earliest_due_or_planned_instant }
        $($callback)*! { $args claim_sends_takes_due_sends_earliest_first_under_a_lease }
        $($callback)*! { $args claim_sends_one_per_mailbox_and_none_while_sending }
        $($callback)*! { $args claim_sends_respects_the_limit }
        $($callback)*! { $args complete_send_checks_the_lease }
        $($callback)*! { $args complete_send_version_conflict_writes_nothing }
        $($callback)*! { $args complete_send_applies_outcome_and_changes_atomically }
        $($callback)*! { $args complete_sends_answers_each_completion_and_records_the_rest }
        $($callback)*! { $args failed_attempts_stay_counted }
        $($callback)*! { $args release_send_with_an_instant_keeps_the_reservation }
        $($callback)*! { $args release_send_without_an_instant_cancels_and_frees_capacity }
        $($callback)*! { $args release_send_checks_the_lease }
        $($callback)*! { $args expire_leases_marks_uncertain_only_after_expiry }
        $($callback)*! { $args expire_leases_with_resend_plans_again }
        $($callback)*! { $args concurrent_claimers_never_share_a_send }
        $($callback)*! { $args concurrent_planners_never_exceed_the_limit }
        $($callback)*! { $args concurrent_enrollments_keep_one_open_enrollment }
        $($callback)*! { $args completion_racing_expiry_has_one_winner }
        $($callback)*! { $args engine_runs_a_multi_step_sequence_end_to_end }
        $($callback)*! { $args claim_sends_keeps_the_mailbox_gap }
        $($callback)*! { $args the_gap_counts_from_the_attempt_not_the_claim }
        $($callback)*! { $args send_context_reads_the_current_state }
        $($callback)*! { $args send_contexts_read_a_wave_as_send_context_does }
        $($callback)*! { $args contacts_are_unique_by_address_and_resyncs_keep_suppressions }
        $($callback)*! { $args contact_writes_check_the_version }
        $($callback)*! { $args planning_lease_serializes_planners }
        $($callback)*! { $args apply_plan_parks_an_enrollment_whose_mailbox_is_foreign }
        $($callback)*! { $args pages_walk_every_open_enrollment }
        $($callback)*! { $args enrollments_page_walks_the_whole_sequence_by_status }
        $($callback)*! { $args enrollments_of_contact_lists_the_whole_history }
        $($callback)*! { $args mailbox_days_count_attempts_and_reservations }
        $($callback)*! { $args sequence_tally_counts_enrollments_and_sends_by_group }
        $($callback)*! { $args a_pool_wait_holds_back_the_pools_backlog }
        $($callback)*! { $args pool_waits_end_when_the_pool_may_have_room }
        $($callback)*! { $args a_pool_wait_is_not_recorded_over_room_the_plan_did_not_see }
        $($callback)*! { $args a_bounded_read_takes_each_pool_no_further_than_its_bound }
        $($callback)*! { $args a_bounded_read_takes_each_mailbox_no_further_than_its_bound }
        $($callback)*! { $args a_mailbox_wait_holds_back_the_follow_ups_sticky_to_it }
        $($callback)*! { $args a_mailbox_wait_that_holds_what_was_due_lets_later_follow_ups_through }
        $($callback)*! { $args an_enrollment_is_sticky_only_to_a_mailbox_of_its_tenant }
        $($callback)*! { $args mailbox_waits_end_when_the_mailbox_may_have_room }
    };
}

/// One `#[test]` per conformance case, each with a fresh store from `$factory`: an
/// expression that evaluates to a closure returning a future of a store, e.g.
/// `|| async { MemoryStore::new() }`. The test crate needs no other dependency: each test
/// builds its own multi-thread Tokio runtime through [`run_case`].
///
/// ```
/// sequence_conformance::conformance_tests!(|| async { backend_memory::MemoryStore::new() });
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::__for_each_case! { [$crate::__conformance_test] ($factory) }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test {
    (($factory:expr) $name:ident) => {
        #[test]
        fn $name() {
            $crate::run_case($factory, $crate::cases::$name);
        }
    };
}

/// The names of every case, in the order [`run_all`] runs them.
pub const CASES: &[&str] = &all_case_names();

const fn all_case_names() -> [&'static str; count_cases()] {
    let mut out = [""; count_cases()];
    let mut i = 0;
    macro_rules! put {
        (() $name:ident) => {
            out[i] = stringify!($name);
            i += 1;
        };
    }
    __for_each_case! { [put] () }
    let _ = i;
    out
}

const fn count_cases() -> usize {
    let mut n = 0;
    macro_rules! one {
        (() $name:ident) => {
            n += 1;
        };
    }
    __for_each_case! { [one] () }
    n
}

/// Run one case on a fresh multi-thread Tokio runtime (four workers) with a store from
/// `make_store`. What [`conformance_tests!`] expands to.
///
/// # Panics
/// When the runtime cannot start, or the case fails.
pub fn run_case<F, Fut, S, C, CFut>(make_store: F, case: C)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = S>,
    S: Store + 'static,
    C: FnOnce(S) -> CFut,
    CFut: Future<Output = ()>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("conformance: cannot start a Tokio runtime: {e}"),
    };
    runtime.block_on(async move {
        let store = make_store().await;
        case(store).await;
    });
}

/// Run every case, each with a fresh store from `make_store`, and panic at the end with the
/// list of the cases that failed and why. Call it from a multi-thread runtime so that the
/// concurrency cases race for real.
///
/// # Panics
/// When a case fails.
pub async fn run_all<F, Fut, S>(make_store: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Store + 'static,
{
    let mut failures: Vec<String> = Vec::new();
    macro_rules! run_one {
        (() $name:ident) => {
            let store = make_store().await;
            if let Err(panic) = AssertUnwindSafe(cases::$name(store)).catch_unwind().await {
                failures.push(format!("{}: {}", stringify!($name), panic_message(&*panic)));
            }
        };
    }
    __for_each_case! { [run_one] () }
    assert!(
        failures.is_empty(),
        "{} of {} conformance cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panicked".to_owned()
    }
}
