//! quickstart: the sequence engine in one `main`.
//!
//! Two mailboxes (New York and London, weekday business hours, a few sends a day each), a
//! three-step sequence, six contacts. The engine runs on the in-memory store with a virtual
//! clock, so two weeks pass in a blink; the transport prints each email instead of sending
//! it. Copy this into your own program and swap the store, the transport and the clock.
//!
//! ```sh
//! cargo run --release -p sequence-examples --bin quickstart
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sequence_engine::chrono::NaiveDate;
use sequence_engine::chrono_tz;
use sequence_engine::prelude::*;

/// A transport that prints each email and remembers the day it went out.
#[derive(Clone)]
struct PrintTransport {
    clock: VirtualClock,
    sent_per_day: Arc<Mutex<BTreeMap<NaiveDate, u32>>>,
}

#[async_trait]
impl Transport for PrintTransport {
    async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, SendError> {
        let now = self.clock.now();
        println!(
            "{}  {:<22} -> {:<22} step {}  {:?}",
            now.format("%a %Y-%m-%d %H:%M UTC"),
            email.from_address,
            email.to_address,
            email.step,
            email.subject,
        );
        if let Ok(mut days) = self.sent_per_day.lock() {
            *days.entry(now.date_naive()).or_insert(0) += 1;
        }
        Ok(Delivery::with_response("250 ok"))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Monday 9 March 2026, midnight UTC: the virtual clock starts here.
    let start: DateTime<Utc> = Utc
        .with_ymd_and_hms(2026, 3, 9, 0, 0, 0)
        .single()
        .ok_or("bad start instant")?;
    let clock = VirtualClock::new(start);
    let transport = PrintTransport {
        clock: clock.clone(),
        sent_per_day: Arc::default(),
    };
    let engine = Engine::builder(MemoryStore::new(), transport.clone())
        .clock(clock.clone())
        .config(EngineConfig::with_seed(7))
        .build();
    let tenant = TenantId::new();

    // Two mailboxes, each sending on weekdays from 09:00 to 17:00 in its own zone, at most
    // three a day, ten minutes apart.
    let business_hours = WeeklySchedule::windows(vec![SendWindow::new(
        WeekdaySet::WEEKDAYS,
        "09:00".parse()?,
        "17:00".parse()?,
    )?]);
    let ana = Mailbox::new(tenant, "ana@sender.example", chrono_tz::America::New_York)?
        .with_display_name("Ana Lima")
        .with_daily_limit(3)
        .with_min_gap_seconds(600)
        .with_schedule(business_hours.clone());
    let raj = Mailbox::new(tenant, "raj@sender.example", chrono_tz::Europe::London)?
        .with_display_name("Raj Patel")
        .with_daily_limit(3)
        .with_min_gap_seconds(600)
        .with_schedule(business_hours);
    let ana = engine.create_mailbox(ana).await?;
    let raj = engine.create_mailbox(raj).await?;

    // A three-step sequence; the follow-ups reply in the thread of the first email.
    let mut sequence = Sequence::new(tenant, "Welcome", start)?;
    sequence.add_step(Step::new(
        Delay::ZERO,
        "Hi {{ first_name | default('there') }}",
        "Hello {{ first_name | default('there') }}, welcome aboard {{ company }}!",
    ))?;
    sequence.add_step(
        Step::new(
            Delay::new(2, DelayUnit::BusinessDays),
            "Re: Hi {{ first_name | default('there') }}",
            "Did you get a chance to look?",
        )
        .in_thread(),
    )?;
    sequence.add_step(
        Step::new(
            Delay::new(3, DelayUnit::Days),
            "Re: Hi {{ first_name | default('there') }}",
            "Last note from me.",
        )
        .in_thread(),
    )?;
    sequence.set_mailbox_pool(vec![ana.id, raj.id])?;
    let sequence = engine.create_sequence(sequence).await?;
    engine.activate_sequence(tenant, sequence.id).await?;

    // Six contacts, enrolled at once.
    let people = [
        ("bo@acme.example", "Bo", "Acme", chrono_tz::Europe::Berlin),
        (
            "cy@globex.example",
            "Cy",
            "Globex",
            chrono_tz::America::Chicago,
        ),
        (
            "di@initech.example",
            "Di",
            "Initech",
            chrono_tz::Asia::Kolkata,
        ),
        (
            "ed@umbrella.example",
            "Ed",
            "Umbrella",
            chrono_tz::Europe::London,
        ),
        (
            "fa@hooli.example",
            "Fa",
            "Hooli",
            chrono_tz::America::Los_Angeles,
        ),
        (
            "gu@stark.example",
            "Gu",
            "Stark",
            chrono_tz::Australia::Sydney,
        ),
    ];
    let mut contacts = Vec::new();
    for (email, first, company, zone) in people {
        contacts.push(
            Contact::new(tenant, email)?
                .with_name(first, "Doe")
                .with_company(company)
                .with_timezone(zone),
        );
    }
    engine.upsert_contacts(tenant, &contacts).await?;
    let ids: Vec<ContactId> = contacts.iter().map(|c| c.id).collect();
    engine.enroll(tenant, sequence.id, &ids).await?;

    // Three days of virtual time, jumping from one instant with work to the next; then
    // one contact replies, and the sequence stops for them; then the rest of two weeks.
    engine.run_until(start + Duration::days(3)).await?;
    engine.reply(tenant, ids[0]).await?;
    engine.run_until(start + Duration::days(14)).await?;

    println!("\nSends per day (UTC):");
    if let Ok(days) = transport.sent_per_day.lock() {
        for (day, n) in days.iter() {
            println!("  {} {day}  {}", day.format("%a"), "#".repeat(*n as usize));
        }
    }
    let stats = engine.stats(tenant, sequence.id).await?;
    println!(
        "\n{} enrolled: {} completed, {} exited {:?}, {} sent, reply rate {:.0}%",
        stats.enrolled,
        stats.completed,
        stats.exited.values().sum::<u64>(),
        stats.exited,
        stats.sent,
        stats.reply_rate * 100.0
    );
    Ok(())
}
