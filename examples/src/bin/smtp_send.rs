//! smtp_send: a small sequence sent through a real SMTP server.
//!
//! The engine runs on the in-memory store with a virtual clock (so the follow-ups, days
//! apart, go out at once), and sends through `transport-smtp`: each email arrives at the
//! server with its threading, `List-Unsubscribe` and tracking. Try it against a local test
//! server that prints what it receives:
//!
//! ```sh
//! python3 -m aiosmtpd -n -l 127.0.0.1:2525 &
//! cargo run -p sequence-examples --bin smtp_send
//! ```
//!
//! Configured from the environment (all optional; the defaults fit the command above):
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `SMTP_HOST` | the server | `127.0.0.1` |
//! | `SMTP_PORT` | its port | `2525` |
//! | `SMTP_SECURITY` | `tls` (implicit, 465), `starttls` (587) or `plain` (loopback hosts only) | `plain` |
//! | `SMTP_USER`, `SMTP_PASSWORD` | the login, if the server wants one | none |
//! | `SMTP_FROM` | the sending mailboxes, comma-separated (same server and login) | `ana@sender.example` |
//! | `SMTP_FROM_NAME` | their display name | `Ana Lima` |
//! | `SMTP_TO` | the contacts, comma-separated | `bob@example.com,cy@example.com` |
//! | `TRACKING_BASE_URL` | where the host serves `/o/`, `/c/` and `/u/` links | `https://t.sender.example` |
//! | `TRACKING_SECRET` | the token secret (16 bytes or more) | a fixed, insecure demo value |
//! | `UNSUBSCRIBE_MAILTO` | the `mailto:` unsubscribe address | `unsubscribe@` the first sender's domain |
//! | `RUST_LOG` | log filter | `warn,transport_smtp=info` |
//!
//! The password is read from the environment and handed to the transport only; it is
//! never printed.

use std::collections::HashMap;
use std::net::IpAddr;

use sequence_engine::chrono_tz;
use sequence_engine::prelude::*;
use sequence_engine::smtp::{Credentials, NoCredentials, Security, Tracker};
use tracing_subscriber::EnvFilter;

fn var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The SMTP transport, printing each outcome.
struct Reporting(SmtpTransport);

#[async_trait]
impl Transport for Reporting {
    async fn send(&self, email: &OutgoingEmail) -> Result<Delivery, SendError> {
        let result = self.0.send(email).await;
        match &result {
            Ok(d) => println!(
                "sent   step {} {} -> {} {:?}: {}",
                email.step,
                email.from_address,
                email.to_address,
                email.subject,
                d.response.as_deref().unwrap_or("accepted")
            ),
            Err(e) => println!(
                "failed step {} {} -> {}: {e} (retry: {}, mailbox's fault: {})",
                email.step,
                email.from_address,
                email.to_address,
                e.is_transient(),
                e.is_mailbox_fault()
            ),
        }
        result
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("warn,transport_smtp=info")),
        )
        .init();

    // --- the transport, from the environment -------------------------------------------------
    let host = var("SMTP_HOST", "127.0.0.1");
    let security = match var("SMTP_SECURITY", "plain").to_ascii_lowercase().as_str() {
        "tls" | "implicit" | "implicit-tls" => Security::ImplicitTls,
        "starttls" => Security::StartTls,
        "plain" => Security::Plain,
        other => return Err(format!("SMTP_SECURITY={other}: use tls, starttls or plain").into()),
    };
    if security == Security::Plain && !is_loopback(&host) {
        return Err(format!(
            "SMTP_SECURITY=plain is only for a test server on this machine, not {host}"
        )
        .into());
    }
    let port = match std::env::var("SMTP_PORT") {
        Ok(p) => p.parse()?,
        Err(_) if security == Security::Plain => 2525,
        Err(_) => security.default_port(),
    };
    let settings = SmtpSettings::new(host.clone(), security)
        .with_port(port)
        .with_plain_allowed(security == Security::Plain);

    let senders = list(&var("SMTP_FROM", "ana@sender.example"));
    let sender_name = var("SMTP_FROM_NAME", "Ana Lima");
    let recipients = list(&var("SMTP_TO", "bob@example.com,cy@example.com"));
    let first_domain = senders
        .first()
        .and_then(|s| s.rsplit_once('@'))
        .map_or("sender.example", |(_, d)| d)
        .to_owned();
    let secret = std::env::var("TRACKING_SECRET").unwrap_or_else(|_| {
        println!("TRACKING_SECRET is not set: using an insecure demo secret");
        "demo secret, not for production use".to_owned()
    });
    let tracker = Tracker::new(var("TRACKING_BASE_URL", "https://t.sender.example"), secret)?;

    let tenant = TenantId::new();
    let mailboxes: Vec<Mailbox> = senders
        .iter()
        .map(|address| {
            Mailbox::new(tenant, address.as_str(), chrono_tz::UTC).map(|m| {
                m.with_display_name(sender_name.as_str())
                    .with_daily_limit(50)
            })
        })
        .collect::<Result<_, _>>()?;
    let directory: HashMap<MailboxId, SmtpSettings> =
        mailboxes.iter().map(|m| (m.id, settings.clone())).collect();
    let builder = SmtpTransport::builder()
        .directory(directory)
        .tracker(tracker)
        .unsubscribe_mailto(&var(
            "UNSUBSCRIBE_MAILTO",
            &format!("unsubscribe@{first_domain}"),
        ))?;
    let builder = match (std::env::var("SMTP_USER"), std::env::var("SMTP_PASSWORD")) {
        (Ok(user), Ok(password)) => {
            let logins: HashMap<MailboxId, Credentials> = mailboxes
                .iter()
                .map(|m| (m.id, Credentials::password(user.clone(), password.clone())))
                .collect();
            builder.credentials(logins)
        }
        _ => builder.credentials(NoCredentials),
    };
    let transport = builder.build()?;
    println!(
        "sending through {host}:{port} ({security:?}) from {} to {}",
        senders.join(", "),
        recipients.join(", ")
    );

    // --- the engine, on the in-memory store and a virtual clock ------------------------------
    let start = Utc::now();
    let clock = VirtualClock::new(start);
    let engine = Engine::builder(MemoryStore::new(), Reporting(transport))
        .clock(clock.clone())
        .config(EngineConfig::with_seed(1))
        .build();
    let mut pool = Vec::new();
    for mailbox in mailboxes {
        pool.push(engine.create_mailbox(mailbox).await?.id);
    }

    // Three steps; the follow-ups reply in the thread of the first email.
    let mut sequence = Sequence::new(tenant, "SMTP demo", start)?;
    sequence.track_opens = true;
    sequence.track_clicks = true;
    sequence.add_step(
        Step::new(
            Delay::ZERO,
            "Hi {{ first_name | default('there') }}",
            "Hello {{ first_name | default('there') }}, here is our demo: https://sender.example/demo",
        )
        .with_html_body(
            "<p>Hello {{ first_name | default('there') }},</p>\
             <p>here is <a href=\"https://sender.example/demo?from=email&amp;step=1\">our demo</a>.</p>",
        ),
    )?;
    sequence.add_step(
        Step::new(
            Delay::new(2, DelayUnit::Days),
            "Hi {{ first_name | default('there') }}",
            "Did you get a chance to look?",
        )
        .in_thread(),
    )?;
    sequence.add_step(
        Step::new(Delay::new(3, DelayUnit::Days), "Hi", "Last note from me.").in_thread(),
    )?;
    sequence.set_mailbox_pool(pool)?;
    let sequence = engine.create_sequence(sequence).await?;
    engine.activate_sequence(tenant, sequence.id).await?;

    let mut contacts = Vec::new();
    for address in &recipients {
        let first = address.split(['@', '.']).next().unwrap_or("there");
        contacts.push(Contact::new(tenant, address.as_str())?.with_name(first, ""));
    }
    let ids = engine.upsert_contacts(tenant, &contacts).await?;
    engine.enroll(tenant, sequence.id, &ids).await?;

    // --- ten virtual days: jump from one instant with work to the next -----------------------
    engine.run_until(start + Duration::days(10)).await?;

    let stats = engine.stats(tenant, sequence.id).await?;
    println!(
        "\n{} enrolled: {} completed, {} exited {:?}, {} sent",
        stats.enrolled,
        stats.completed,
        stats.exited.values().sum::<u64>(),
        stats.exited,
        stats.sent,
    );
    Ok(())
}
