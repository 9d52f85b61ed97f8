//! Reading a scenario document: [`parse`], the ids it declares ([`Known`]), and one reader
//! per kind of element (mailbox, window, sequence, step, contact, event, failure), each
//! checking its fields with the walker's primitives and the domain's own validation.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

use sequence_core::sequence::Step;
use sequence_core::time::{Delay, DelayUnit, SendWindow, WarmUp, WeekdaySet, WeeklySchedule};
use sequence_core::validate::validate_step;
use sequence_core::ValidationErrors;

use super::walker::{join, Obj, Walker, ROOT};
use super::{
    ContactSpec, EnrollSpec, EventKind, EventSpec, FailureSpec, MailboxSpec, Retry, Scenario,
    SequenceSpec, StepSpec, MAX_DAYS,
};

/// Parse and check a scenario. On failure, every problem with the JSON path of the value
/// at fault (`mailboxes[3].timezone`; `$` for the document itself) and the reason
/// (`unknown time zone "Mars/Base"`): each element's own problems in document order, then
/// the document's unknown fields, duplicate ids and addresses.
///
/// # Errors
/// Every problem found (at least one).
pub fn parse(text: &str) -> Result<Scenario, ValidationErrors> {
    let root: Value = serde_json::from_str(text).map_err(|e| {
        ValidationErrors::one(
            ROOT,
            format!(
                "not valid JSON: {e} (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    let mut w = Walker::default();
    let scenario = w.scenario(&root);
    w.problems.finish()?;
    // Every reader that gives up records why, so this is a safety net.
    scenario.ok_or_else(|| ValidationErrors::one(ROOT, "invalid scenario"))
}

/// The ids each list of the document declares, read from the raw JSON before it is checked,
/// so that one bad element does not turn every reference to its list into a second problem.
/// A list that is missing or not a list knows nothing, and then every reference to it
/// passes (its own problem is reported where it is).
#[derive(Debug, Default)]
struct Known {
    mailboxes: Option<HashSet<String>>,
    sequences: Option<HashMap<String, usize>>,
    contacts: Option<HashSet<String>>,
}

fn ids_of<'a>(root: &'a Value, key: &str) -> Option<Vec<(String, &'a Value)>> {
    let items = root.get(key)?.as_array()?;
    Some(
        items
            .iter()
            .filter_map(|v| Some((v.get("id")?.as_str()?.to_owned(), v)))
            .collect(),
    )
}

impl Known {
    fn read(root: &Value) -> Self {
        Self {
            mailboxes: ids_of(root, "mailboxes").map(|l| l.into_iter().map(|(id, _)| id).collect()),
            sequences: ids_of(root, "sequences").map(|l| {
                l.into_iter()
                    .map(|(id, v)| {
                        let steps = v.get("steps").and_then(Value::as_array).map_or(0, Vec::len);
                        (id, steps)
                    })
                    .collect()
            }),
            contacts: ids_of(root, "contacts").map(|l| l.into_iter().map(|(id, _)| id).collect()),
        }
    }
    fn mailbox(&self, id: &str) -> bool {
        self.mailboxes.as_ref().is_none_or(|m| m.contains(id))
    }
    fn sequence(&self, id: &str) -> bool {
        self.sequences.as_ref().is_none_or(|s| s.contains_key(id))
    }
    fn contact(&self, id: &str) -> bool {
        self.contacts.as_ref().is_none_or(|c| c.contains(id))
    }
    /// Steps of sequence `id`, or of the longest sequence; `None` when unknown.
    fn steps(&self, id: Option<&str>) -> Option<usize> {
        let sequences = self.sequences.as_ref()?;
        match id {
            Some(id) => sequences.get(id).copied(),
            None => sequences.values().copied().max(),
        }
    }
}

impl Walker {
    fn window(&mut self, v: &Value, path: &str) -> Option<SendWindow> {
        let mut o = self.object(v, path)?;
        let days = self.required(&mut o, "days").and_then(|(v, p)| {
            let names = self.list(v, &p, |w, d, dp| {
                let name = w.string(d, dp)?;
                match WeekdaySet::try_from(vec![name.clone()]) {
                    Ok(_) => Some(name),
                    Err(e) => {
                        w.push(dp, e);
                        None
                    }
                }
            })?;
            let set = WeekdaySet::try_from(names).ok()?;
            if set.is_empty() {
                self.push(&p, "must name at least one weekday");
                return None;
            }
            Some(set)
        });
        let start = self
            .required(&mut o, "start")
            .and_then(|(v, p)| self.local_time(v, &p));
        let end = self
            .required(&mut o, "end")
            .and_then(|(v, p)| self.local_time(v, &p));
        self.finish(&o);
        let (days, start, end) = (days?, start?, end?);
        match SendWindow::new(days, start, end) {
            Ok(w) => Some(w),
            Err(e) => {
                self.push(&join(path, "end"), e);
                None
            }
        }
    }

    fn windows(&mut self, v: &Value, path: &str) -> Option<WeeklySchedule> {
        let items = self.array(v, path)?;
        let mut windows = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, w) in items.iter().enumerate() {
            match self.window(w, &format!("{path}[{i}]")) {
                Some(w) => windows.push(w),
                None => ok = false,
            }
        }
        ok.then(|| WeeklySchedule::windows(windows))
    }

    fn scenario(&mut self, root: &Value) -> Option<Scenario> {
        let mut o = self.object(root, "")?;
        let name = o
            .get("name")
            .and_then(|(v, p)| self.string(v, &p))
            .unwrap_or_default();
        let start = self
            .required(&mut o, "start")
            .and_then(|(v, p)| self.instant(v, &p));
        let days = self.required(&mut o, "days").and_then(|(v, p)| {
            let d = self.uint(v, &p, MAX_DAYS)?;
            if d == 0 {
                self.push(&p, "must be at least 1");
                return None;
            }
            u32::try_from(d).ok()
        });
        let seed = match o.get("seed") {
            Some((v, p)) => self.uint(v, &p, u64::MAX),
            None => Some(0),
        };
        let retry = match o.get("retry") {
            Some((v, p)) => self.retry(v, &p),
            None => Some(Retry::default()),
        };
        let known = Known::read(root);
        let mailboxes = self
            .required(&mut o, "mailboxes")
            .and_then(|(v, p)| self.list(v, &p, Self::mailbox));
        let sequences = self
            .required(&mut o, "sequences")
            .and_then(|(v, p)| self.list(v, &p, |w, v, p| w.sequence(v, p, &known)));
        let contacts = self
            .required(&mut o, "contacts")
            .and_then(|(v, p)| self.list(v, &p, |w, v, p| w.contact(v, p, &known)));
        let events = match o.get("events") {
            Some((v, p)) => self.list(v, &p, |w, v, p| w.event(v, p, &known)),
            None => Some(Vec::new()),
        };
        let failures = match o.get("failures") {
            Some((v, p)) => self.list(v, &p, |w, v, p| w.failure(v, p, &known)),
            None => Some(Vec::new()),
        };
        self.finish(&o);
        for list in ["mailboxes", "sequences", "contacts"] {
            self.unique_ids(root, list);
        }
        self.unique_contact_emails(root);
        Some(Scenario {
            name,
            start: start?,
            days: days?,
            seed: seed?,
            retry: retry?,
            mailboxes: mailboxes?,
            sequences: sequences?,
            contacts: contacts?,
            events: events?,
            failures: failures?,
        })
    }

    /// Every id of `root[list]` used twice (read from the raw JSON, so that a duplicate is
    /// reported even when the elements have other problems).
    fn unique_ids(&mut self, root: &Value, list: &str) {
        let Some(items) = root.get(list).and_then(Value::as_array) else {
            return;
        };
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let Some(id) = item.get("id").and_then(Value::as_str) else {
                continue;
            };
            if let Some(first) = seen.get(id) {
                self.push(
                    &format!("{list}[{i}].id"),
                    format!("duplicate id {id:?} (first used by {list}[{first}])"),
                );
            } else {
                seen.insert(id, i);
            }
        }
    }

    /// Every contact address used twice (trimmed, case-insensitive): a tenant's contacts are
    /// unique by address, so two scenario contacts with one address would be one person.
    fn unique_contact_emails(&mut self, root: &Value) {
        let Some(items) = root.get("contacts").and_then(Value::as_array) else {
            return;
        };
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let Some(email) = item.get("email").and_then(Value::as_str) else {
                continue;
            };
            let key = email.trim().to_lowercase();
            if let Some(first) = seen.get(&key) {
                self.push(
                    &format!("contacts[{i}].email"),
                    format!(
                        "address {email:?} is already contacts[{first}]'s (contacts are unique by address)"
                    ),
                );
            } else {
                seen.insert(key, i);
            }
        }
    }

    fn retry(&mut self, v: &Value, path: &str) -> Option<Retry> {
        let mut o = self.object(v, path)?;
        let defaults = Retry::default();
        let max_attempts = match o.get("max_attempts") {
            Some((v, p)) => self.positive(v, &p, 100),
            None => Some(defaults.max_attempts),
        };
        let base_seconds = match o.get("base_seconds") {
            Some((v, p)) => self.u32_field(v, &p, 30 * 86_400),
            None => Some(defaults.base_seconds),
        };
        self.finish(&o);
        Some(Retry {
            max_attempts: max_attempts?,
            base_seconds: base_seconds?,
        })
    }

    fn mailbox(&mut self, v: &Value, path: &str) -> Option<MailboxSpec> {
        let mut o = self.object(v, path)?;
        let id = self
            .required(&mut o, "id")
            .and_then(|(v, p)| self.id(v, &p));
        let email = self
            .required(&mut o, "email")
            .and_then(|(v, p)| self.email(v, &p));
        let timezone = self
            .required(&mut o, "timezone")
            .and_then(|(v, p)| self.zone(v, &p));
        let daily_limit = self
            .required(&mut o, "daily_limit")
            .and_then(|(v, p)| self.u32_field(v, &p, sequence_core::validate::MAX_DAILY_LIMIT));
        let windows = match o.get("windows") {
            Some((v, p)) => self.windows(v, &p),
            None => Some(WeeklySchedule::always()),
        };
        let min_gap_seconds = match o.get("min_gap_seconds") {
            Some((v, p)) => self.u32_field(v, &p, sequence_core::validate::MAX_GAP_SECONDS),
            None => Some(0),
        };
        let warmup = match o.get("warmup") {
            Some((v, p)) => self.warmup(v, &p).map(Some),
            None => Some(None),
        };
        let paused = match o.get("status") {
            Some((v, p)) => self.choice(v, &p, "a status", &[("active", false), ("paused", true)]),
            None => Some(false),
        };
        self.finish(&o);
        Some(MailboxSpec {
            id: id?,
            email: email?,
            timezone: timezone?,
            daily_limit: daily_limit?,
            windows: windows?,
            min_gap_seconds: min_gap_seconds?,
            warmup: warmup?,
            paused: paused?,
        })
    }

    fn warmup(&mut self, v: &Value, path: &str) -> Option<WarmUp> {
        let max = sequence_core::validate::MAX_DAILY_LIMIT;
        let mut o = self.object(v, path)?;
        let start = self
            .required(&mut o, "start")
            .and_then(|(v, p)| self.u32_field(v, &p, max));
        let increment = self
            .required(&mut o, "increment")
            .and_then(|(v, p)| self.u32_field(v, &p, max));
        let since = self
            .required(&mut o, "since")
            .and_then(|(v, p)| self.date(v, &p));
        self.finish(&o);
        Some(WarmUp {
            start: start?,
            increment: increment?,
            since: since?,
        })
    }

    fn sequence(&mut self, v: &Value, path: &str, known: &Known) -> Option<SequenceSpec> {
        let mut o = self.object(v, path)?;
        let id = self
            .required(&mut o, "id")
            .and_then(|(v, p)| self.id(v, &p));
        let mailboxes = self.required(&mut o, "mailboxes").and_then(|(v, p)| {
            let ids = self.list(v, &p, |w, v, p| {
                let id = w.id(v, p)?;
                if known.mailbox(&id) {
                    Some(id)
                } else {
                    w.push(p, format!("unknown mailbox {id:?}"));
                    None
                }
            })?;
            if ids.is_empty() {
                self.push(&p, "must name at least one mailbox");
                return None;
            }
            let mut seen = HashSet::new();
            for (i, id) in ids.iter().enumerate() {
                if !seen.insert(id) {
                    self.push(&format!("{p}[{i}]"), format!("mailbox {id:?} listed twice"));
                    return None;
                }
            }
            Some(ids)
        });
        let exit_on_reply = match o.get("exit_on_reply") {
            Some((v, p)) => self.boolean(v, &p),
            None => Some(true),
        };
        let recipient_windows = match o.get("recipient_windows") {
            Some((v, p)) => self.windows(v, &p).map(Some),
            None => Some(None),
        };
        let steps = self.required(&mut o, "steps").and_then(|(v, p)| {
            let steps = self.list(v, &p, Self::step)?;
            if steps.is_empty() {
                self.push(&p, "must have at least one step");
                return None;
            }
            Some(steps)
        });
        self.finish(&o);
        Some(SequenceSpec {
            id: id?,
            mailboxes: mailboxes?,
            exit_on_reply: exit_on_reply?,
            recipient_windows: recipient_windows?,
            steps: steps?,
        })
    }

    fn step(&mut self, v: &Value, path: &str) -> Option<StepSpec> {
        let mut o = self.object(v, path)?;
        let delay = self
            .required(&mut o, "delay")
            .and_then(|(v, p)| self.delay(v, &p));
        let subject = self
            .required(&mut o, "subject")
            .and_then(|(v, p)| self.string(v, &p));
        let body = self
            .required(&mut o, "body")
            .and_then(|(v, p)| self.string(v, &p));
        let condition_tag = match o.get("condition") {
            Some((v, p)) => self.object(v, &p).and_then(|mut c| {
                let tag = self
                    .required(&mut c, "tag")
                    .and_then(|(v, p)| self.id(v, &p));
                self.finish(&c);
                tag.map(Some)
            }),
            None => Some(None),
        };
        let exit_on_fail = match o.get("on_condition_fail") {
            Some((v, p)) => self.choice(v, &p, "an action", &[("skip", false), ("exit", true)]),
            None => Some(false),
        };
        self.finish(&o);
        // The domain's own checks of a step (template syntax, header-safe subject, bounds),
        // also when the delay is wrong, so that every problem is reported at once.
        if let (Some(subject), Some(body)) = (&subject, &body) {
            let step = Step::new(delay.unwrap_or(Delay::ZERO), subject, body);
            if let Err(e) = validate_step(&step) {
                self.push_all(path, e);
                return None;
            }
        }
        Some(StepSpec {
            delay: delay?,
            subject: subject?,
            body: body?,
            condition_tag: condition_tag?,
            exit_on_condition_fail: exit_on_fail?,
        })
    }

    fn delay(&mut self, v: &Value, path: &str) -> Option<Delay> {
        let mut o = self.object(v, path)?;
        let amount = self
            .required(&mut o, "amount")
            .and_then(|(v, p)| self.u32_field(v, &p, u32::MAX));
        let unit = self.required(&mut o, "unit").and_then(|(v, p)| {
            self.choice(
                v,
                &p,
                "a unit",
                &[
                    ("minutes", DelayUnit::Minutes),
                    ("hours", DelayUnit::Hours),
                    ("days", DelayUnit::Days),
                    ("business_days", DelayUnit::BusinessDays),
                ],
            )
        });
        self.finish(&o);
        Some(Delay::new(amount?, unit?))
    }

    fn contact(&mut self, v: &Value, path: &str, known: &Known) -> Option<ContactSpec> {
        let mut o = self.object(v, path)?;
        let id = self
            .required(&mut o, "id")
            .and_then(|(v, p)| self.id(v, &p));
        let email = self
            .required(&mut o, "email")
            .and_then(|(v, p)| self.email(v, &p));
        let text = |w: &mut Self, o: &mut Obj<'_>, key: &'static str| match o.get(key) {
            Some((v, p)) => {
                let s = w.string(v, &p)?;
                if s.chars().any(char::is_control) {
                    w.push(&p, "contains a control character (line break?)");
                    return None;
                }
                Some(Some(s))
            }
            None => Some(None),
        };
        let first_name = text(self, &mut o, "first_name");
        let last_name = text(self, &mut o, "last_name");
        let company = text(self, &mut o, "company");
        let timezone = match o.get("timezone") {
            Some((v, p)) => self.zone(v, &p).map(Some),
            None => Some(None),
        };
        let tags = match o.get("tags") {
            Some((v, p)) => self
                .list(v, &p, Self::id)
                .map(|t| t.into_iter().collect::<BTreeSet<_>>()),
            None => Some(BTreeSet::new()),
        };
        let enroll = match o.get("enroll") {
            Some((v, p)) => self.list(v, &p, |w, v, p| {
                let mut e = w.object(v, p)?;
                let sequence = w.required(&mut e, "sequence").and_then(|(v, sp)| {
                    let id = w.id(v, &sp)?;
                    if known.sequence(&id) {
                        Some(id)
                    } else {
                        w.push(&sp, format!("unknown sequence {id:?}"));
                        None
                    }
                });
                let at = w
                    .required(&mut e, "at")
                    .and_then(|(v, ap)| w.instant(v, &ap));
                w.finish(&e);
                Some(EnrollSpec {
                    sequence: sequence?,
                    at: at?,
                })
            }),
            None => Some(Vec::new()),
        };
        if let Some(list) = &enroll {
            let mut seen = HashSet::new();
            for (i, e) in list.iter().enumerate() {
                if !seen.insert(&e.sequence) {
                    self.push(
                        &format!("{path}.enroll[{i}].sequence"),
                        format!(
                            "contact already enrolled in {:?}: one enrollment per sequence and contact",
                            e.sequence
                        ),
                    );
                }
            }
        }
        self.finish(&o);
        Some(ContactSpec {
            id: id?,
            email: email?,
            first_name: first_name?,
            last_name: last_name?,
            company: company?,
            timezone: timezone?,
            tags: tags?,
            enroll: enroll?,
        })
    }

    fn reference(
        &mut self,
        o: &mut Obj<'_>,
        key: &'static str,
        known: &dyn Fn(&str) -> bool,
        what: &str,
    ) -> Option<String> {
        let (v, p) = self.required(o, key)?;
        let id = self.id(v, &p)?;
        if known(&id) {
            Some(id)
        } else {
            self.push(&p, format!("unknown {what} {id:?}"));
            None
        }
    }

    fn event(&mut self, v: &Value, path: &str, known: &Known) -> Option<EventSpec> {
        let mut o = self.object(v, path)?;
        let at = self
            .required(&mut o, "at")
            .and_then(|(v, p)| self.instant(v, &p));
        let kind = self.required(&mut o, "type").and_then(|(v, p)| {
            let t = self.string(v, &p)?;
            let is_contact = |id: &str| known.contact(id);
            let is_mailbox = |id: &str| known.mailbox(id);
            let is_sequence = |id: &str| known.sequence(id);
            match t.as_str() {
                "reply" => self.reference(&mut o, "contact", &is_contact, "contact").map(EventKind::Reply),
                "unsubscribe" => self
                    .reference(&mut o, "contact", &is_contact, "contact")
                    .map(EventKind::Unsubscribe),
                "bounce" => self.reference(&mut o, "contact", &is_contact, "contact").map(EventKind::Bounce),
                "pause_mailbox" => self
                    .reference(&mut o, "mailbox", &is_mailbox, "mailbox")
                    .map(EventKind::PauseMailbox),
                "resume_mailbox" => self
                    .reference(&mut o, "mailbox", &is_mailbox, "mailbox")
                    .map(EventKind::ResumeMailbox),
                "pause_sequence" => self
                    .reference(&mut o, "sequence", &is_sequence, "sequence")
                    .map(EventKind::PauseSequence),
                "resume_sequence" => self
                    .reference(&mut o, "sequence", &is_sequence, "sequence")
                    .map(EventKind::ResumeSequence),
                other => {
                    self.push(&p, format!("{other:?} is not an event type: expected reply, unsubscribe, bounce, pause_mailbox, resume_mailbox, pause_sequence or resume_sequence"));
                    None
                }
            }
        });
        self.finish(&o);
        Some(EventSpec {
            at: at?,
            kind: kind?,
        })
    }

    fn failure(&mut self, v: &Value, path: &str, known: &Known) -> Option<FailureSpec> {
        let mut o = self.object(v, path)?;
        let contact = self.reference(&mut o, "contact", &|id| known.contact(id), "contact");
        let sequence = match o.get("sequence") {
            Some((v, p)) => self.id(v, &p).and_then(|id| {
                if known.sequence(&id) {
                    Some(Some(id))
                } else {
                    self.push(&p, format!("unknown sequence {id:?}"));
                    None
                }
            }),
            None => Some(None),
        };
        let step = self.required(&mut o, "step").and_then(|(v, p)| {
            let step = self.u32_field(v, &p, u32::MAX)?;
            let Some(steps) = known.steps(sequence.as_ref().and_then(|s| s.as_deref())) else {
                return Some(step);
            };
            if step as usize >= steps {
                self.push(
                    &p,
                    format!("step {step} does not exist (the sequence has {steps} steps)"),
                );
                return None;
            }
            Some(step)
        });
        let permanent = self.required(&mut o, "error").and_then(|(v, p)| {
            self.choice(
                v,
                &p,
                "an error kind",
                &[("transient", false), ("permanent", true)],
            )
        });
        let count = match o.get("count") {
            Some((v, p)) => self.positive(v, &p, 1_000),
            None => Some(1),
        };
        self.finish(&o);
        Some(FailureSpec {
            contact: contact?,
            step: step?,
            permanent: permanent?,
            count: count?,
            sequence: sequence?,
        })
    }
}
