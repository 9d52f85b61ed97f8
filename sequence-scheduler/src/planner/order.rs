//! Step 2 of the module docs: the due enrollments in priority order.

use rustc_hash::FxHashMap as HashMap;

use sequence_core::enrollment::DeferralReason;
use sequence_core::ids::{EnrollmentId, SequenceId, TenantId};

use crate::rng::mix;

use super::hours::{MAILBOX_ZONE, NO_HOURS};
use super::{secs, DueStep, Planner, NONE};

/// The class of a follow-up (step >= 1), planned first.
pub(super) const FOLLOW_UP: u32 = 0;
/// The class of a retry (a first step that already has a mailbox), planned next.
const RETRY: u32 = 1;
/// The class of a new enrollment, planned last.
pub(super) const NEW: u32 = 2;
/// How many classes there are.
const CLASSES: usize = 3;

/// One due enrollment in priority order, with everything the assignment loop reads, so that
/// the loop streams through these instead of jumping around the input (at a million items
/// that jumping, not the work, is what costs). Kept to 56 bytes: its (class, sequence) is
/// the bucket it sits in.
#[derive(Clone, Copy)]
pub(super) struct Entry {
    /// Orders the entries of one bucket: the earliest instant (seconds from `now`, offset
    /// by 2^31) in the high half, a hash of the enrollment id in the low half; ties fall
    /// back to the id itself, so the order never depends on the input's.
    key: u64,
    pub(super) enrollment: EnrollmentId,
    /// The earliest instant its step may go, in seconds.
    pub(super) earliest: i64,
    /// Its index in [`PlanningInput::due`](super::PlanningInput::due).
    pub(super) idx: u32,
    /// Its business hours: their index in [`Hours`](super::hours::Hours), or `NO_HOURS`, or
    /// `MAILBOX_ZONE`.
    pub(super) hours: u32,
    /// Index of the sticky mailbox among the snapshots; `NONE` without a sticky mailbox,
    /// `NO_SNAPSHOT` when it has one the snapshots do not hold.
    pub(super) sticky: u32,
    pub(super) step: u32,
    /// Index of its (tenant, recipient domain) in the per-domain counts; `NONE` when its
    /// sequence has no per-domain cap.
    pub(super) domain: u32,
}

/// [`Entry::sticky`] of a sticky mailbox the snapshots do not hold.
pub(super) const NO_SNAPSHOT: u32 = u32::MAX - 1;

/// The bucket of an item whose sequence the input does not hold.
const UNKNOWN_SEQUENCE: u32 = u32::MAX;
/// The bucket of an item whose sequence is paused.
const PAUSED_SEQUENCE: u32 = u32::MAX - 1;

/// The memory the ordering step fills, kept from one plan to the next by
/// [`PlanScratch`](super::PlanScratch): at 50,000 due enrollments it is a few megabytes,
/// and handing it back to the allocator after every plan costs more than the step (the
/// allocator returns it to the system and faults it in again).
#[derive(Default)]
pub(super) struct OrderScratch {
    found: Vec<(u32, u32)>,
    sizes: Vec<usize>,
    buckets: Vec<Vec<Entry>>,
    ranks: Vec<(u32, u32)>,
    keys: Vec<(u64, u32)>,
    gathered: Vec<Entry>,
}

impl OrderScratch {
    /// Take back the buckets and ranks of an order that is done with.
    pub(super) fn recycle(&mut self, order: Order) {
        self.buckets = order.buckets;
        self.ranks = order.ranks;
    }
}

/// The due enrollments in priority order.
pub(super) struct Order {
    /// The entries per bucket, `class * sequences + sequence`, each sorted by key.
    buckets: Vec<Vec<Entry>>,
    /// The priority order, as (bucket, position) pairs: walking it reads each bucket front to
    /// back, so the assignment loop streams.
    ranks: Vec<(u32, u32)>,
    /// How many sequences there are.
    sequences: u32,
}

impl Order {
    /// Each entry in priority order, with its class and the index of its sequence.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, u32, &Entry)> + '_ {
        self.ranks.iter().map(|&(bucket, rank)| {
            let entry = &self.buckets[bucket as usize][rank as usize];
            (bucket / self.sequences, bucket % self.sequences, entry)
        })
    }
}

impl Planner<'_> {
    /// Step 2: order the due enrollments: follow-ups first, then retries, then new
    /// enrollments; inside a class, sequences take turns in a seeded order, and each sequence
    /// serves its oldest due first. Those of a sequence the input does not hold, or of a
    /// paused one, are deferred instead.
    pub(super) fn order(&mut self, scratch: &mut OrderScratch) -> Order {
        self.classify(scratch);
        self.fill_buckets(scratch);
        sort_buckets(
            &mut scratch.buckets,
            &mut scratch.keys,
            &mut scratch.gathered,
        );
        let mut ranks = std::mem::take(&mut scratch.ranks);
        self.take_turns(&scratch.buckets, &mut ranks);
        Order {
            buckets: std::mem::take(&mut scratch.buckets),
            ranks,
            sequences: u32::try_from(self.input.sequences.len()).unwrap_or(1),
        }
    }

    /// A first pass over the due enrollments: each one's bucket (or why it has none) and the
    /// number of its (tenant, recipient domain) when its sequence caps those, into
    /// `scratch.found`; with how many fall in each bucket, into `scratch.sizes`.
    ///
    /// Knowing the sizes, the buckets are allocated exactly (at a million items, growing them
    /// by doubling costs more than the planning). Numbering the domains lets the cap check
    /// index a count instead of hashing a string; today's count of each goes to the caps.
    fn classify(&mut self, scratch: &mut OrderScratch) {
        let input = self.input;
        let n_seq = input.sequences.len();
        let seq_index: HashMap<SequenceId, u32> = input
            .sequences
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id, u32::try_from(i).unwrap_or(NONE)))
            .collect();
        let sizes = &mut scratch.sizes;
        sizes.clear();
        sizes.resize(CLASSES * n_seq.max(1), 0);
        let mut domain_index: HashMap<(TenantId, &str), u32> = HashMap::default();
        let found = &mut scratch.found;
        found.clear();
        found.reserve(input.due.len());
        for due in input.due {
            let Some(&seq) = seq_index.get(&due.sequence) else {
                found.push((UNKNOWN_SEQUENCE, NONE));
                continue;
            };
            let policy = &input.sequences[seq as usize];
            if !policy.active {
                found.push((PAUSED_SEQUENCE, NONE));
                continue;
            }
            let bucket = class_of(due) as usize * n_seq + seq as usize;
            sizes[bucket] += 1;
            let domain = if policy.per_domain_daily_cap.is_some() {
                let next = u32::try_from(domain_index.len()).unwrap_or(NONE);
                *domain_index
                    .entry((due.tenant, due.recipient_domain.as_str()))
                    .or_insert(next)
            } else {
                NONE
            };
            found.push((u32::try_from(bucket).unwrap_or(NONE), domain));
        }
        let mut domain_counts = vec![0u32; domain_index.len()];
        for ((tenant, domain), &n) in &input.counts.per_domain {
            if let Some(&i) = domain_index.get(&(*tenant, domain.as_str())) {
                domain_counts[i as usize] = n;
            }
        }
        self.caps.per_domain = domain_counts;
    }

    /// A second pass: each due enrollment's entry in its bucket (as the first pass found,
    /// with room for the sizes it counted). One without a bucket is deferred: a sequence the
    /// input does not hold is looked at again later, a paused one when it resumes.
    fn fill_buckets(&mut self, scratch: &mut OrderScratch) {
        let input = self.input;
        let n_seq = u32::try_from(input.sequences.len()).unwrap_or(1);
        let buckets = &mut scratch.buckets;
        buckets.resize_with(scratch.sizes.len(), Vec::new);
        for (bucket, &n) in buckets.iter_mut().zip(&scratch.sizes) {
            bucket.clear();
            bucket.reserve(n);
        }
        for (idx, (due, &(bucket, domain))) in input.due.iter().zip(&scratch.found).enumerate() {
            if bucket == UNKNOWN_SEQUENCE || bucket == PAUSED_SEQUENCE {
                let not_before = (bucket == UNKNOWN_SEQUENCE).then_some(self.recheck);
                let reason = DeferralReason::SequencePaused;
                self.out.defer(idx, due.enrollment, reason, not_before);
                continue;
            }
            let entry = self.entry(idx, due, bucket % n_seq, domain);
            buckets[bucket as usize].push(entry);
        }
    }

    /// The entry of `due`, the `idx`-th due enrollment, of the sequence `seq`, whose
    /// (tenant, recipient domain) is numbered `domain`.
    fn entry(&mut self, idx: usize, due: &DueStep, seq: u32, domain: u32) -> Entry {
        let policy = &self.input.sequences[seq as usize];
        let hours = match (&policy.recipient_windows, due.contact_zone) {
            (None, _) => NO_HOURS,
            (Some(_), Some(zone)) => self.hours.of(seq, zone),
            // No contact zone: the mailbox's zone, resolved once the mailbox is known.
            (Some(_), None) => MAILBOX_ZONE,
        };
        let id = due.enrollment.0.as_u128();
        // Both halves of the id feed the hash.
        let tie = mix(id as u64, (id >> 64) as u64) >> 32;
        let earliest = secs(due.earliest);
        let when = u64::try_from((earliest - self.now_s + (1 << 31)).clamp(0, u32::MAX.into()))
            .unwrap_or(0);
        Entry {
            key: (when << 32) | tie,
            enrollment: due.enrollment,
            earliest,
            idx: u32::try_from(idx).unwrap_or(NONE),
            hours,
            sticky: due.sticky_mailbox.map_or(NONE, |m| {
                self.mailbox_index.get(&m).copied().unwrap_or(NO_SNAPSHOT)
            }),
            step: due.step,
            domain,
        }
    }

    /// The priority order, as (bucket, position) pairs: class by class, the sequences take
    /// turns (round robin, in a seeded order), each giving its next entry.
    fn take_turns(&self, buckets: &[Vec<Entry>], order: &mut Vec<(u32, u32)>) {
        let n_seq = self.input.sequences.len();
        order.clear();
        order.reserve(self.input.due.len());
        for class in 0..CLASSES {
            let first = class * n_seq;
            let class_buckets = &buckets[first..first + n_seq];
            let mut seq_order: Vec<usize> = (0..n_seq)
                .filter(|&s| !class_buckets[s].is_empty())
                .collect();
            seq_order.sort_unstable_by_key(|&s| {
                mix(
                    self.config.seed ^ 0x5e9,
                    self.input.sequences[s].id.0.as_u128() as u64,
                )
            });
            let longest = class_buckets.iter().map(Vec::len).max().unwrap_or(0);
            for rank in 0..longest {
                for &s in &seq_order {
                    if rank < class_buckets[s].len() {
                        order.push((
                            u32::try_from(first + s).unwrap_or(NONE),
                            u32::try_from(rank).unwrap_or(NONE),
                        ));
                    }
                }
            }
        }
    }
}

/// The class of a due enrollment.
fn class_of(due: &DueStep) -> u32 {
    if due.step >= 1 {
        FOLLOW_UP
    } else if due.sticky_mailbox.is_some() {
        RETRY
    } else {
        NEW
    }
}

/// Sort each bucket by key.
///
/// A bucket is sorted as (key, position) pairs, then gathered in that order: sorting moves
/// 16 bytes instead of a whole entry. Equal keys fall back to the enrollment (and, for an
/// enrollment due twice, the position), so the order is total.
fn sort_buckets(buckets: &mut [Vec<Entry>], keys: &mut Vec<(u64, u32)>, gathered: &mut Vec<Entry>) {
    for bucket in buckets {
        keys.clear();
        keys.extend((0u32..).zip(bucket.iter()).map(|(i, e)| (e.key, i)));
        keys.sort_unstable_by(|&(ka, a), &(kb, b)| {
            ka.cmp(&kb).then_with(|| {
                let (ea, eb) = (&bucket[a as usize], &bucket[b as usize]);
                ea.enrollment.cmp(&eb.enrollment).then(a.cmp(&b))
            })
        });
        gathered.clear();
        gathered.extend(keys.iter().map(|&(_, i)| bucket[i as usize]));
        bucket.copy_from_slice(gathered);
    }
}
