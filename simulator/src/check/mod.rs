//! An independent checker of the rules every run keeps (`shared/scenario-format.md`),
//! reading only the scenario and what the run wrote. `simulate --check` runs it; the tests
//! run it on every scenario.
//!
//! It checks rules 1 to 6 exactly, and the summary against the attempts. Rules 7 to 10 are
//! statements about what *could* have been sent; [`unfinished`] and
//! [`mailbox_days_below_limit`] give the facts a test about a particular scenario needs to
//! assert them.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};

mod oracle;

use oracle::{earliest_after, inside, limit_on, local_day};

use crate::scenario::{ContactSpec, EnrollSpec, EventKind, MailboxSpec, Scenario, SequenceSpec};
use crate::simulate::{Attempt, Outcome, Run};

/// Half-open intervals `[from, to)` during which something was paused.
type Pauses = Vec<(DateTime<Utc>, DateTime<Utc>)>;

fn pauses(
    scenario: &Scenario,
    initially_paused: bool,
    is_pause: impl Fn(&EventKind) -> bool,
    is_resume: impl Fn(&EventKind) -> bool,
) -> Pauses {
    let end = DateTime::<Utc>::MAX_UTC;
    let mut out = Vec::new();
    let mut since = initially_paused.then_some(DateTime::<Utc>::MIN_UTC);
    let mut events: Vec<_> = scenario.events.iter().collect();
    events.sort_by_key(|e| e.at);
    for e in events {
        if is_pause(&e.kind) && since.is_none() {
            since = Some(e.at);
        } else if is_resume(&e.kind) {
            if let Some(s) = since.take() {
                out.push((s, e.at));
            }
        }
    }
    if let Some(s) = since {
        out.push((s, end));
    }
    out
}

fn paused_at(p: &Pauses, t: DateTime<Utc>) -> bool {
    p.iter().any(|(a, b)| *a <= t && t < *b)
}

fn paused_between(p: &Pauses, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    p.iter().any(|(a, b)| *a <= to && from < *b)
}

/// Every violation of rules 1 to 6 in a run, and every disagreement between the summary
/// and the attempts; empty when the run keeps them all.
#[must_use]
pub fn check(scenario: &Scenario, run: &Run) -> Vec<String> {
    let mut checker = Checker::new(scenario, run);
    // Attempts naming what the scenario lacks make every other check meaningless.
    if checker.unknown_names() {
        return checker.problems;
    }
    checker.capacity_and_gap();
    checker.windows_and_pauses();
    checker.stops();
    checker.enrollments();
    checker.mailbox_counts();
    checker.problems
}

/// What every check reads: the scenario's mailboxes, sequences and contacts by id, when
/// each mailbox and sequence was paused, and the problems found so far.
struct Checker<'a> {
    scenario: &'a Scenario,
    run: &'a Run,
    mailboxes: HashMap<&'a str, &'a MailboxSpec>,
    sequences: HashMap<&'a str, &'a SequenceSpec>,
    contacts: HashMap<&'a str, &'a ContactSpec>,
    mailbox_pauses: HashMap<&'a str, Pauses>,
    sequence_pauses: HashMap<&'a str, Pauses>,
    problems: Vec<String>,
}

/// One enrollment as the checker reads it: the contact, its enrollment, the sequence and
/// its attempts in the order they happened.
struct EnrollmentRun<'a> {
    contact: &'a ContactSpec,
    enroll: &'a EnrollSpec,
    sequence: &'a SequenceSpec,
    attempts: Vec<&'a Attempt>,
    /// `contact in sequence`, for messages.
    who: String,
}

impl<'a> Checker<'a> {
    fn new(scenario: &'a Scenario, run: &'a Run) -> Self {
        let mailboxes = scenario
            .mailboxes
            .iter()
            .map(|m| (m.id.as_str(), m))
            .collect();
        let sequences = scenario
            .sequences
            .iter()
            .map(|s| (s.id.as_str(), s))
            .collect();
        let contacts = scenario
            .contacts
            .iter()
            .map(|c| (c.id.as_str(), c))
            .collect();
        let mailbox_pauses = scenario
            .mailboxes
            .iter()
            .map(|m| {
                (
                    m.id.as_str(),
                    pauses(
                        scenario,
                        m.paused,
                        |k| matches!(k, EventKind::PauseMailbox(x) if *x == m.id),
                        |k| matches!(k, EventKind::ResumeMailbox(x) if *x == m.id),
                    ),
                )
            })
            .collect();
        let sequence_pauses = scenario
            .sequences
            .iter()
            .map(|s| {
                (
                    s.id.as_str(),
                    pauses(
                        scenario,
                        false,
                        |k| matches!(k, EventKind::PauseSequence(x) if *x == s.id),
                        |k| matches!(k, EventKind::ResumeSequence(x) if *x == s.id),
                    ),
                )
            })
            .collect();
        Self {
            scenario,
            run,
            mailboxes,
            sequences,
            contacts,
            mailbox_pauses,
            sequence_pauses,
            problems: Vec::new(),
        }
    }

    /// Whether an attempt names a mailbox, sequence or contact the scenario lacks (each
    /// one is reported).
    fn unknown_names(&mut self) -> bool {
        for a in &self.run.attempts {
            if !self.mailboxes.contains_key(a.mailbox.as_str())
                || !self.sequences.contains_key(a.sequence.as_str())
                || !self.contacts.contains_key(a.contact.as_str())
            {
                self.problems
                    .push(format!("unknown mailbox, sequence or contact in {a:?}"));
            }
        }
        !self.problems.is_empty()
    }

    /// Rule 1 (capacity) and rule 3 (gap), per mailbox.
    fn capacity_and_gap(&mut self) {
        let mut per_mailbox: HashMap<&str, Vec<&Attempt>> = HashMap::new();
        for a in &self.run.attempts {
            per_mailbox.entry(a.mailbox.as_str()).or_default().push(a);
        }
        for (id, list) in &mut per_mailbox {
            let m = self.mailboxes[id];
            let mut per_day: BTreeMap<NaiveDate, u32> = BTreeMap::new();
            for a in list.iter() {
                *per_day.entry(local_day(m.timezone, a.at)).or_insert(0) += 1;
            }
            for (day, n) in per_day {
                let limit = limit_on(m.daily_limit, m.warmup.as_ref(), day);
                if n > limit {
                    self.problems.push(format!(
                        "rule 1: mailbox {id} made {n} attempts on its local day {day}, limit {limit}"
                    ));
                }
            }
            list.sort_by_key(|a| a.at);
            let gap = Duration::seconds(i64::from(m.min_gap_seconds));
            for w in list.windows(2) {
                if w[1].at - w[0].at < gap {
                    self.problems.push(format!(
                        "rule 3: mailbox {id} attempts at {} and {} are closer than {}s",
                        w[0].at, w[1].at, m.min_gap_seconds
                    ));
                }
            }
        }
    }

    /// Rule 2 (windows) and the pause part of rule 6, per attempt.
    fn windows_and_pauses(&mut self) {
        for a in &self.run.attempts {
            let m = self.mailboxes[a.mailbox.as_str()];
            let s = self.sequences[a.sequence.as_str()];
            let c = self.contacts[a.contact.as_str()];
            if !inside(&m.windows, m.timezone, a.at) {
                self.problems.push(format!(
                    "rule 2: {} at {} is outside mailbox {}'s windows ({})",
                    a.contact, a.at, m.id, m.timezone
                ));
            }
            if let Some(rw) = &s.recipient_windows {
                let zone = c.timezone.unwrap_or(m.timezone);
                if !inside(rw, zone, a.at) {
                    self.problems.push(format!(
                        "rule 2: {} at {} is outside {}'s recipient windows in {zone}",
                        a.contact, a.at, s.id
                    ));
                }
            }
            if paused_at(&self.mailbox_pauses[a.mailbox.as_str()], a.at) {
                self.problems.push(format!(
                    "rule 6: mailbox {} sent to {} at {} while paused",
                    a.mailbox, a.contact, a.at
                ));
            }
            if paused_at(&self.sequence_pauses[a.sequence.as_str()], a.at) {
                self.problems.push(format!(
                    "rule 6: sequence {} sent to {} at {} while paused",
                    a.sequence, a.contact, a.at
                ));
            }
        }
    }

    /// Rule 6: nothing after a reply (in sequences that exit on one), an unsubscribe, a
    /// bounce or a permanent failure, per contact.
    fn stops(&mut self) {
        let mut stops: HashMap<&str, Vec<(DateTime<Utc>, &EventKind)>> = HashMap::new();
        for e in &self.scenario.events {
            if let EventKind::Reply(c) | EventKind::Unsubscribe(c) | EventKind::Bounce(c) = &e.kind
            {
                stops.entry(c.as_str()).or_default().push((e.at, &e.kind));
            }
        }
        let mut permanent: HashMap<&str, DateTime<Utc>> = HashMap::new();
        for a in &self.run.attempts {
            if a.outcome == Outcome::PermanentFailure {
                let t = permanent.entry(a.contact.as_str()).or_insert(a.at);
                *t = (*t).min(a.at);
            }
        }
        for a in &self.run.attempts {
            let s = self.sequences[a.sequence.as_str()];
            for (at, kind) in stops.get(a.contact.as_str()).into_iter().flatten() {
                let applies = match kind {
                    EventKind::Reply(_) => s.exit_on_reply,
                    _ => true,
                };
                if applies && a.at >= *at {
                    self.problems.push(format!(
                        "rule 6: {} got step {} of {} at {} after {kind:?} at {at}",
                        a.contact, a.step, a.sequence, a.at
                    ));
                }
            }
            if let Some(t) = permanent.get(a.contact.as_str()) {
                if a.at > *t {
                    self.problems.push(format!(
                        "rule 6: {} got step {} of {} at {} after a permanent failure at {t}",
                        a.contact, a.step, a.sequence, a.at
                    ));
                }
            }
        }
    }

    /// Rules 4, 5 and the condition part of 6, and the summary's row, per enrollment.
    fn enrollments(&mut self) {
        let scenario = self.scenario;
        let mut per_enrollment: HashMap<(&str, &str), Vec<&Attempt>> = HashMap::new();
        for a in &self.run.attempts {
            per_enrollment
                .entry((a.contact.as_str(), a.sequence.as_str()))
                .or_default()
                .push(a);
        }
        for c in &scenario.contacts {
            for e in &c.enroll {
                let s = self.sequences[e.sequence.as_str()];
                let enrollment = EnrollmentRun {
                    contact: c,
                    enroll: e,
                    sequence: s,
                    attempts: per_enrollment
                        .get(&(c.id.as_str(), e.sequence.as_str()))
                        .cloned()
                        .unwrap_or_default(),
                    who: format!("{} in {}", c.id, s.id),
                };
                self.conditions(&enrollment);
                self.order_delays_and_sender(&enrollment);
                self.summary_row(&enrollment);
            }
        }
    }

    /// Rule 6, conditions: a step whose tag the contact lacks is never sent; with `exit`,
    /// nothing after it either.
    fn conditions(&mut self, enrollment: &EnrollmentRun<'_>) {
        let EnrollmentRun {
            contact: c,
            sequence: s,
            attempts: list,
            who,
            ..
        } = enrollment;
        let mut exit_from = None;
        for (k, step) in s.steps.iter().enumerate() {
            if let Some(tag) = &step.condition_tag {
                if !c.tags.contains(tag) {
                    if list.iter().any(|a| a.step as usize == k) {
                        self.problems.push(format!(
                            "rule 6: {who}: step {k} sent though {} lacks tag {tag:?}",
                            c.id
                        ));
                    }
                    if step.exit_on_condition_fail && exit_from.is_none() {
                        exit_from = Some(k);
                    }
                }
            }
        }
        if let Some(k) = exit_from {
            if list.iter().any(|a| a.step as usize > k) {
                self.problems.push(format!(
                    "rule 6: {who}: a step after {k} was sent though its condition exits"
                ));
            }
        }
    }

    /// Rules 4 and 5, attempt by attempt: steps that exist, in order, each sent once,
    /// retried after their backoff and at most `max_attempts` times, never before their
    /// delay; from one mailbox of the pool, moving only off a paused one.
    fn order_delays_and_sender(&mut self, enrollment: &EnrollmentRun<'_>) {
        let EnrollmentRun {
            contact: c,
            enroll: e,
            sequence: s,
            attempts: list,
            who,
        } = enrollment;
        let retry = self.scenario.retry;
        let zone = c.timezone.unwrap_or(chrono_tz::UTC);
        let mut sent_at: Option<(usize, DateTime<Utc>)> = None;
        let mut previous: Option<&Attempt> = None;
        for a in list {
            let k = a.step as usize;
            if k >= s.steps.len() {
                self.problems
                    .push(format!("rule 4: {who}: step {k} does not exist"));
                continue;
            }
            if !s.mailboxes.contains(&a.mailbox) {
                self.problems.push(format!(
                    "rule 5: {who}: sent from {} outside the pool",
                    a.mailbox
                ));
            }
            if let Some(p) = previous {
                if p.mailbox != a.mailbox
                    && !paused_between(&self.mailbox_pauses[p.mailbox.as_str()], p.at, a.at)
                {
                    self.problems.push(format!(
                        "rule 5: {who}: moved from {} to {} at {} without a pause",
                        p.mailbox, a.mailbox, a.at
                    ));
                }
                if (p.step as usize) > k {
                    self.problems
                        .push(format!("rule 4: {who}: step {k} after step {}", p.step));
                }
                if p.step as usize == k {
                    if p.outcome == Outcome::Sent {
                        self.problems
                            .push(format!("rule 4: {who}: step {k} sent twice"));
                    }
                    if a.attempt != p.attempt + 1 {
                        self.problems.push(format!(
                            "rule 4: {who}: step {k} attempt {} follows attempt {}",
                            a.attempt, p.attempt
                        ));
                    }
                    let exp = p.attempt.saturating_sub(1).min(30);
                    let backoff = Duration::seconds(i64::from(retry.base_seconds) * (1i64 << exp));
                    if a.at < p.at + backoff {
                        self.problems.push(format!(
                            "rule 4: {who}: step {k} retried at {} before its backoff from {}",
                            a.at, p.at
                        ));
                    }
                } else if p.outcome != Outcome::Sent {
                    self.problems.push(format!(
                        "rule 4: {who}: step {k} went after step {} failed",
                        p.step
                    ));
                }
            }
            if a.attempt > retry.max_attempts {
                self.problems.push(format!(
                    "rule 4: {who}: step {k} attempt {} over the {} allowed",
                    a.attempt, retry.max_attempts
                ));
            }
            // The delay: from the last sent step (or the enrollment) through every step
            // up to this one, on its first attempt. A step no later than the last one sent
            // has no delay to check: the order checks above report the enrollment.
            let (from_step, since) = match sent_at {
                Some((j, t)) => (j + 1, t),
                None => (0, e.at),
            };
            let first_attempt = previous.is_none_or(|p| p.step as usize != k);
            if let (true, Some(steps)) = (first_attempt, s.steps.get(from_step..=k)) {
                let earliest = steps
                    .iter()
                    .fold(since, |t, step| earliest_after(step.delay, t, zone));
                if a.at < earliest {
                    self.problems.push(format!(
                        "rule 4: {who}: step {k} at {} before its delay allows ({earliest})",
                        a.at
                    ));
                }
            }
            if a.outcome == Outcome::Sent {
                sent_at = Some((k, a.at));
            }
            previous = Some(a);
        }
    }

    /// The summary's row of the enrollment agrees with its attempts.
    fn summary_row(&mut self, enrollment: &EnrollmentRun<'_>) {
        let EnrollmentRun {
            contact: c,
            sequence: s,
            attempts: list,
            who,
            ..
        } = enrollment;
        let sent = list.iter().filter(|a| a.outcome == Outcome::Sent).count();
        if let Some(row) = self
            .run
            .summary
            .enrollments
            .iter()
            .find(|r| r.contact == c.id && r.sequence == s.id)
        {
            if row.steps_sent as usize != sent {
                self.problems.push(format!(
                    "summary: {who}: steps_sent {} but {sent} sends succeeded",
                    row.steps_sent
                ));
            }
            if row.status == "completed" && row.exit_reason.is_some() {
                self.problems
                    .push(format!("summary: {who}: completed with an exit reason"));
            }
            if row.status == "exited" && row.exit_reason.is_none() {
                self.problems
                    .push(format!("summary: {who}: exited without a reason"));
            }
        } else {
            self.problems.push(format!("summary: {who}: missing"));
        }
    }

    /// The summary's attempts per mailbox agree with `sends.jsonl`.
    fn mailbox_counts(&mut self) {
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for a in &self.run.attempts {
            *counts.entry(a.mailbox.as_str()).or_default() += 1;
        }
        for row in &self.run.summary.mailboxes {
            let n = counts.get(row.id.as_str()).copied().unwrap_or(0);
            if row.attempts != n {
                self.problems.push(format!(
                    "summary: mailbox {} reports {} attempts, sends.jsonl has {n}",
                    row.id, row.attempts
                ));
            }
        }
    }
}

/// Enrollments that nothing stopped (no reply, unsubscribe, bounce, failure, pause or
/// exiting condition) and that did not complete: with ample capacity (rule 10) this must
/// be empty once the delays and windows have had time.
#[must_use]
pub fn unfinished(scenario: &Scenario, run: &Run) -> Vec<String> {
    let stopped: std::collections::HashSet<&str> = scenario
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Reply(c) | EventKind::Unsubscribe(c) | EventKind::Bounce(c) => {
                Some(c.as_str())
            }
            _ => None,
        })
        .chain(scenario.failures.iter().map(|f| f.contact.as_str()))
        .collect();
    let paused_sequences: std::collections::HashSet<&str> = scenario
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::PauseSequence(s) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    run.summary
        .enrollments
        .iter()
        .filter(|r| {
            r.status != "completed"
                && !stopped.contains(r.contact.as_str())
                && !paused_sequences.contains(r.sequence.as_str())
                && r.exit_reason.as_deref() != Some("condition_not_met")
        })
        .map(|r| {
            format!(
                "{} in {}: {} after {} steps",
                r.contact, r.sequence, r.status, r.steps_sent
            )
        })
        .collect()
}

/// Mailbox-local days fully inside the scenario on which a mailbox made fewer attempts
/// than its limit, as `(mailbox, date, attempts, limit)`: under saturation (rule 7) only
/// days whose windows cannot hold the limit may appear.
#[must_use]
pub fn mailbox_days_below_limit(
    scenario: &Scenario,
    run: &Run,
) -> Vec<(String, NaiveDate, u32, u32)> {
    let mut out = Vec::new();
    for m in &scenario.mailboxes {
        let mut per_day: HashMap<NaiveDate, u32> = HashMap::new();
        for a in run.attempts.iter().filter(|a| a.mailbox == m.id) {
            *per_day.entry(local_day(m.timezone, a.at)).or_insert(0) += 1;
        }
        let first = local_day(m.timezone, scenario.start).succ_opt();
        let last = local_day(m.timezone, scenario.end()).pred_opt();
        let (Some(first), Some(last)) = (first, last) else {
            continue;
        };
        for day in first.iter_days().take_while(|d| *d <= last) {
            let limit = limit_on(m.daily_limit, m.warmup.as_ref(), day);
            let n = per_day.get(&day).copied().unwrap_or(0);
            if n < limit {
                out.push((m.id.clone(), day, n, limit));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::check;
    use crate::scenario::{self, EventKind, EventSpec, Scenario};
    use crate::simulate::{self, Attempt, Run};

    /// Two mailboxes, two a day each; `c0` (tagged) gets both steps, `c1` only the first,
    /// as step 1 exits without the tag.
    const SCENARIO: &str = r#"{
      "start": "2026-03-09T00:00:00Z", "days": 4, "seed": 1,
      "mailboxes": [
        {"id": "mb-1", "email": "a@sender.example", "timezone": "UTC", "daily_limit": 2,
         "min_gap_seconds": 600,
         "windows": [{"days": ["mon","tue","wed","thu","fri"], "start": "09:00", "end": "17:00"}]},
        {"id": "mb-2", "email": "b@sender.example", "timezone": "UTC", "daily_limit": 2,
         "min_gap_seconds": 600,
         "windows": [{"days": ["mon","tue","wed","thu","fri"], "start": "09:00", "end": "17:00"}]}],
      "sequences": [{"id": "s", "mailboxes": ["mb-1", "mb-2"], "steps": [
        {"delay": {"amount": 0, "unit": "days"}, "subject": "One", "body": "."},
        {"delay": {"amount": 1, "unit": "days"}, "subject": "Two", "body": ".",
         "condition": {"tag": "vip"}, "on_condition_fail": "exit"}]}],
      "contacts": [
        {"id": "c0", "email": "c0@x.example", "tags": ["vip"],
         "enroll": [{"sequence": "s", "at": "2026-03-09T00:00:00Z"}]},
        {"id": "c1", "email": "c1@x.example",
         "enroll": [{"sequence": "s", "at": "2026-03-09T00:00:00Z"}]}]
    }"#;

    /// The problems `check` finds once `tamper` has broken a clean run.
    fn broken(tamper: impl FnOnce(&mut Scenario, &mut Run)) -> Vec<String> {
        let mut scenario = scenario::parse(SCENARIO).unwrap();
        let mut run = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(simulate::run(&scenario, &simulate::Options::default()))
            .unwrap();
        assert!(check(&scenario, &run).is_empty(), "{:?}", run.attempts);
        assert_eq!(run.attempts.len(), 3, "{:?}", run.attempts);
        tamper(&mut scenario, &mut run);
        check(&scenario, &run)
    }

    /// The attempt of `contact`'s `step`.
    fn at<'a>(run: &'a mut Run, contact: &str, step: u32) -> &'a mut Attempt {
        run.attempts
            .iter_mut()
            .find(|a| a.contact == contact && a.step == step)
            .unwrap()
    }

    fn finds(problems: &[String], prefix: &str) {
        assert!(
            problems.iter().any(|p| p.starts_with(prefix)),
            "no {prefix:?} in {problems:#?}"
        );
    }

    #[test]
    fn each_broken_rule_is_reported() {
        let problems = broken(|_, run| {
            let first = at(run, "c0", 0).clone();
            for minutes in [30, 60] {
                let mut again = first.clone();
                again.at += Duration::minutes(minutes);
                run.attempts.push(again);
            }
        });
        finds(&problems, "rule 1: mailbox");
        finds(&problems, "rule 4: c0 in s: step 0 sent twice");

        let problems = broken(|_, run| {
            at(run, "c0", 0).at -= Duration::hours(10);
        });
        finds(&problems, "rule 2: c0 at");

        let problems = broken(|_, run| {
            let c0 = at(run, "c0", 0).clone();
            let c1 = at(run, "c1", 0);
            c1.mailbox = c0.mailbox;
            c1.at = c0.at + Duration::minutes(1);
        });
        finds(&problems, "rule 3: mailbox");

        let problems = broken(|_, run| {
            let first = at(run, "c0", 0).at;
            at(run, "c0", 1).at = first + Duration::hours(1);
        });
        finds(&problems, "rule 4: c0 in s: step 1 at");

        let problems = broken(|_, run| {
            let c0 = at(run, "c0", 0).mailbox.clone();
            at(run, "c0", 1).mailbox = if c0 == "mb-1" { "mb-2" } else { "mb-1" }.to_owned();
        });
        finds(&problems, "rule 5: c0 in s: moved from");

        let problems = broken(|scenario, run| {
            let step1 = at(run, "c0", 1).at;
            scenario.events.push(EventSpec {
                at: step1 - Duration::hours(1),
                kind: EventKind::Reply("c0".to_owned()),
            });
        });
        finds(&problems, "rule 6: c0 got step 1 of s");

        let problems = broken(|scenario, run| {
            let c1 = at(run, "c1", 0).clone();
            scenario.events.push(EventSpec {
                at: c1.at - Duration::minutes(1),
                kind: EventKind::PauseMailbox(c1.mailbox),
            });
        });
        finds(&problems, "rule 6: mailbox");

        let problems = broken(|_, run| {
            let mut sent = at(run, "c0", 1).clone();
            sent.contact = "c1".to_owned();
            sent.mailbox = at(run, "c1", 0).mailbox.clone();
            run.attempts.push(sent);
        });
        finds(
            &problems,
            "rule 6: c1 in s: step 1 sent though c1 lacks tag",
        );
    }

    #[test]
    fn a_summary_that_disagrees_with_the_attempts_is_reported() {
        let problems = broken(|_, run| run.summary.enrollments[0].steps_sent += 1);
        finds(&problems, "summary: c0 in s: steps_sent");
        let problems = broken(|_, run| run.summary.mailboxes[0].attempts += 1);
        finds(&problems, "summary: mailbox mb-1");
    }

    #[test]
    fn an_attempt_naming_what_the_scenario_lacks_is_all_that_is_reported() {
        let problems = broken(|_, run| at(run, "c1", 0).mailbox = "mb-9".to_owned());
        assert_eq!(problems.len(), 1, "{problems:#?}");
        finds(&problems, "unknown mailbox, sequence or contact");
    }
}
