//! The due index: enrollments by the instant they are due, kept as plain-integer keys, and
//! moved in one batch while a plan is applied.

use super::*;

/// A key of the due index: an instant and an enrollment, ordered as
/// `(DateTime<Utc>, EnrollmentId)` are (by instant, then by the id's bytes) but compared as
/// plain integers, which a tick does hundreds of thousands of times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct DueKey {
    secs: i64,
    nanos: u32,
    /// The id's bytes as a big-endian integer: ordered as the bytes are.
    id: u128,
}

/// Which set of the due index an enrollment sits in: the set of the sequence whose pool it
/// goes to ([`Enrollment::goes_to_pool`]), the set of the mailbox it is sticky to
/// ([`Enrollment::waits_on_mailbox`], by tenant), or the rest (paused ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Lane {
    Rest,
    Pool(SequenceId),
    Mailbox(TenantId, MailboxId),
}

/// Where an enrollment sits in the due index: its key, in its [`Lane`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct DueSlot {
    pub(super) key: DueKey,
    pub(super) lane: Lane,
}

impl DueSlot {
    /// Where `e` sits, if it is due at all (see [`due_key`]).
    pub(super) fn of(e: &Enrollment) -> Option<Self> {
        let lane = if e.goes_to_pool() {
            Lane::Pool(e.sequence)
        } else if let Some(mailbox) = e.waits_on_mailbox() {
            Lane::Mailbox(e.tenant, mailbox)
        } else {
            Lane::Rest
        };
        Some(Self {
            key: DueKey::new(due_key(e)?, e.id),
            lane,
        })
    }
}

impl DueKey {
    pub(super) fn new(at: DateTime<Utc>, id: EnrollmentId) -> Self {
        Self {
            id: id.0.as_u128(),
            ..Self::lowest(at)
        }
    }

    /// Below every key at `at` or later.
    pub(super) fn lowest(at: DateTime<Utc>) -> Self {
        Self {
            secs: at.timestamp(),
            nanos: at.timestamp_subsec_nanos(),
            id: 0,
        }
    }

    /// Above every key at `at` or earlier.
    pub(super) fn highest(at: DateTime<Utc>) -> Self {
        Self {
            id: u128::MAX,
            ..Self::lowest(at)
        }
    }

    /// Below every key later than `at` and above every other.
    pub(super) fn after(at: DateTime<Utc>) -> Self {
        at.checked_add_signed(chrono::Duration::nanoseconds(1))
            .map_or(Self::highest(at), Self::lowest)
    }

    pub(super) fn at(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.secs, self.nanos)
    }

    pub(super) fn enrollment(self) -> EnrollmentId {
        EnrollmentId(Uuid::from_u128(self.id))
    }
}

/// Whether two sorted lists share a key.
fn has_common(a: &[DueKey], b: &[DueKey]) -> bool {
    let (mut i, mut j) = (0, 0);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        match x.cmp(y) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

/// Two sorted lists without the keys they share (as multisets: one of each pair).
fn cancel_common(a: &[DueKey], b: &[DueKey]) -> (Vec<DueKey>, Vec<DueKey>) {
    let (mut ka, mut kb) = (Vec::with_capacity(a.len()), Vec::with_capacity(b.len()));
    let (mut i, mut j) = (0, 0);
    loop {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => match x.cmp(y) {
                std::cmp::Ordering::Less => {
                    ka.push(*x);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    kb.push(*y);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    i += 1;
                    j += 1;
                }
            },
            (Some(_), None) => {
                ka.extend_from_slice(a.get(i..).unwrap_or_default());
                break;
            }
            (None, Some(_)) => {
                kb.extend_from_slice(b.get(j..).unwrap_or_default());
                break;
            }
            (None, None) => break,
        }
    }
    (ka, kb)
}

/// The due index: one set per [`Lane`] (a wait passes over a whole lane at once), each by
/// [`DueKey`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct DueIndex {
    lanes: HashMap<Lane, BTreeSet<DueKey>>,
}

impl DueIndex {
    pub(super) fn insert(&mut self, slot: DueSlot) {
        self.lanes.entry(slot.lane).or_default().insert(slot.key);
    }

    pub(super) fn remove(&mut self, slot: &DueSlot) {
        if let Some(set) = self.lanes.get_mut(&slot.lane) {
            set.remove(&slot.key);
            if set.is_empty() {
                self.lanes.remove(&slot.lane);
            }
        }
    }

    /// The first `limit` keys up to `to` (inclusive), in key order, across the lanes, taking
    /// of each lane at most `n` keys from `from` on, where `take(lane)` is `Some((from, n))`
    /// (`None` passes it over). Each lane gives at most `limit` keys, in order: the sorted runs
    /// are merged by one stable sort (which finds a single run sorted and leaves it).
    pub(super) fn first_keys(
        &self,
        to: DueKey,
        limit: usize,
        take: impl Fn(Lane) -> Option<(DueKey, usize)>,
    ) -> Vec<DueKey> {
        let mut keys: Vec<DueKey> = Vec::new();
        for (&lane, set) in &self.lanes {
            let Some((from, n)) = take(lane) else {
                continue;
            };
            let n = n.min(limit);
            if n > 0 && from <= to {
                keys.extend(set.range(from..=to).take(n));
            }
        }
        keys.sort();
        keys.truncate(limit);
        keys
    }

    /// The earliest key of each lane.
    pub(super) fn firsts(&self) -> impl Iterator<Item = (Lane, DueKey)> + '_ {
        self.lanes
            .iter()
            .filter_map(|(&lane, set)| set.first().map(|k| (lane, *k)))
    }

    /// The earliest key of `lane` at `from` or later.
    pub(super) fn first_from(&self, lane: Lane, from: DueKey) -> Option<DueKey> {
        self.lanes.get(&lane)?.range(from..).next().copied()
    }

    /// Every key with its lane (for checks).
    #[cfg(feature = "test-util")]
    pub(super) fn slots(&self) -> BTreeSet<DueSlot> {
        self.lanes
            .iter()
            .flat_map(|(&lane, set)| set.iter().map(move |&key| DueSlot { key, lane }))
            .collect()
    }

    /// Take the slots `gone` out and put the slots `come` in, as a sequence of moves would (a
    /// slot both put in and taken out, by two moves of one enrollment, cancels).
    pub(super) fn move_keys(&mut self, gone: Vec<DueSlot>, come: Vec<DueSlot>) {
        let mut groups: HashMap<Lane, (Vec<DueKey>, Vec<DueKey>)> = HashMap::default();
        for s in gone {
            groups.entry(s.lane).or_default().0.push(s.key);
        }
        for s in come {
            groups.entry(s.lane).or_default().1.push(s.key);
        }
        for (lane, (gone, come)) in groups {
            move_in_set(self.lanes.entry(lane).or_default(), gone, come);
        }
        self.lanes.retain(|_, set| !set.is_empty());
    }
}

/// [`DueIndex::move_keys`] on one set.
fn move_in_set(set: &mut BTreeSet<DueKey>, mut gone: Vec<DueKey>, mut come: Vec<DueKey>) {
    // Often in order already (a plan's rows come in due order): then no sort is paid.
    if !gone.is_sorted() {
        gone.sort_unstable();
    }
    if !come.is_sorted() {
        come.sort_unstable();
    }
    if has_common(&gone, &come) {
        let (g, c) = cancel_common(&gone, &come);
        gone = g;
        come = c;
    }
    // A few moves: one by one.
    if (gone.len() + come.len()).saturating_mul(4) < set.len() {
        for k in &gone {
            set.remove(k);
        }
        set.extend(come);
        return;
    }
    // Many: the set rebuilt in one merge of what stays with what comes.
    let mut out = Vec::with_capacity(
        set.len()
            .saturating_sub(gone.len())
            .saturating_add(come.len()),
    );
    let mut gone = gone.iter().peekable();
    let mut come = come.into_iter().peekable();
    for &k in &*set {
        if gone.next_if_eq(&&k).is_some() {
            continue;
        }
        while let Some(c) = come.next_if(|c| *c < k) {
            out.push(c);
        }
        out.push(k);
    }
    out.extend(come);
    // Sorted already: built in one pass.
    *set = out.into_iter().collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secs: i64, id: u128) -> DueKey {
        DueKey::new(
            DateTime::from_timestamp(secs, 0).unwrap(),
            EnrollmentId::from_u128(id),
        )
    }

    #[test]
    fn due_keys_order_as_instant_then_id() {
        let at = |s, n| DateTime::from_timestamp(s, n).unwrap();
        let ids = [0, 1, 255, 256, u128::MAX >> 1, u128::MAX];
        let mut pairs = Vec::new();
        for (s, n) in [(-5, 0), (-5, 7), (0, 0), (0, 999_999_999), (1, 0)] {
            for id in ids {
                pairs.push((at(s, n), EnrollmentId::from_u128(id)));
            }
        }
        let mut by_pair = pairs.clone();
        by_pair.sort();
        let mut by_key = pairs;
        by_key.sort_by_key(|(t, id)| DueKey::new(*t, *id));
        assert_eq!(by_pair, by_key);
        for (t, id) in by_key {
            let k = DueKey::new(t, id);
            assert_eq!((k.at(), k.enrollment()), (Some(t), id));
            assert!(DueKey::lowest(t) <= k && k <= DueKey::highest(t));
        }
    }

    /// `move_due` against the same moves made one by one, for batches small and large.
    #[test]
    fn moving_due_keys_in_a_batch_is_moving_them_one_by_one() {
        for (size, moved) in [(100_u128, 3_u128), (100, 60), (100, 100), (10, 10), (0, 0)] {
            let mut state: BTreeSet<DueKey> = (0..size).map(|i| key(0, i)).collect();
            let mut expected = state.clone();
            let (mut gone, mut come) = (Vec::new(), Vec::new());
            for i in 0..moved {
                // Every third one moves twice (the middle key cancels), one in seven back home.
                let (from, to) = (key(0, i), key(i64::try_from(i % 5).unwrap() + 1, i));
                let last = if i % 3 == 0 {
                    let again = if i % 7 == 0 { from } else { key(100, i) };
                    gone.extend([from, to]);
                    come.extend([to, again]);
                    again
                } else {
                    gone.push(from);
                    come.push(to);
                    to
                };
                expected.remove(&from);
                expected.insert(last);
            }
            move_in_set(&mut state, gone, come);
            assert_eq!(state, expected, "{size} keys, {moved} moved");
        }
    }
}
