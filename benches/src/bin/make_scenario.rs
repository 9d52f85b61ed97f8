//! Writes a large `simulate` scenario: the fleet of the issue's performance target (by
//! default 50,000 contacts, 200 mailboxes in 16 zones with business-hours windows, limits
//! 30-50 and 2-minute gaps, 10 sequences of 4 steps whose pools overlap, half of them with
//! recipient windows, 10 days), deterministically from a seed.
//!
//! ```sh
//! cargo run --release -p sequence-benches --bin make_scenario -- 50000 200 10 > /tmp/50k.json
//! /usr/bin/time -v cargo run --release -p sequence-simulator --bin simulate -- \
//!     --scenario /tmp/50k.json --out /tmp/50k
//! ```

use sequence_benches::{hash, ZONES};
use serde_json::{json, Value};

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let contacts = arg(1, 50_000);
    let mailboxes = arg(2, 200).max(1);
    let days = arg(3, 10);
    let seed = arg(4, 42);
    let weekdays = json!(["mon", "tue", "wed", "thu", "fri"]);
    let boxes: Vec<Value> = (0..mailboxes)
        .map(|i| {
            let h = hash(seed ^ i);
            let zone = ZONES[usize::try_from(i).unwrap_or(0) % ZONES.len()];
            json!({
                "id": format!("mb-{i}"),
                "email": format!("sender{i}@fleet{}.example", i % 20),
                "timezone": zone.name(),
                "daily_limit": 30 + h % 21,
                "min_gap_seconds": 120,
                "windows": [{ "days": weekdays, "start": "09:00", "end": "17:00" }],
            })
        })
        .collect();
    // 10 sequences; pool k covers a fifth of the fleet from k * n / 10, so neighbouring
    // pools overlap by half.
    let n = mailboxes;
    let sequences: Vec<Value> = (0..10u64)
        .map(|k| {
            let pool: Vec<String> = (0..(n / 5).max(1))
                .map(|j| format!("mb-{}", (k * n / 10 + j) % n))
                .collect();
            let steps: Vec<Value> = (0..4)
                .map(|s| {
                    json!({
                        "delay": { "amount": if s == 0 { 0 } else { 2 }, "unit": "days" },
                        "subject": if s == 0 { "Hi {{first_name}}".to_owned() } else { format!("Re: Hi {{{{first_name}}}} ({s})") },
                        "body": "Hello {{first_name}} at {{company}}, a short note.",
                    })
                })
                .collect();
            let mut seq = json!({ "id": format!("seq-{k}"), "mailboxes": pool, "steps": steps });
            if k % 2 == 0 {
                seq["recipient_windows"] =
                    json!([{ "days": weekdays, "start": "08:00", "end": "18:00" }]);
            }
            seq
        })
        .collect();
    let people: Vec<Value> = (0..contacts)
        .map(|i| {
            let h = hash(seed.wrapping_mul(31) ^ i);
            json!({
                "id": format!("c-{i}"),
                "email": format!("person{i}@company{}.example", h % 5000),
                "first_name": format!("P{i}"),
                "company": format!("Company {}", h % 5000),
                "timezone": ZONES[usize::try_from((h >> 8) % 16).unwrap_or(0)].name(),
                "enroll": [{ "sequence": format!("seq-{}", (h >> 16) % 10), "at": "2026-03-09T00:00:00Z" }],
            })
        })
        .collect();
    let scenario = json!({
        "name": format!("{contacts} contacts, {mailboxes} mailboxes, {days} days"),
        "start": "2026-03-09T00:00:00Z",
        "days": days,
        "seed": seed,
        "mailboxes": boxes,
        "sequences": sequences,
        "contacts": people,
    });
    println!("{scenario}");
}
