//! The SMTP transport against a real SMTP server on loopback (`support`, in this process):
//! what arrives, how refusals are classified, timeouts, TLS.

#![expect(
    clippy::unwrap_used,
    reason = "a test's unwrap is its assertion; the helpers here are only for tests"
)]

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mail_parser::{MessageParser, MimeHeaders};
use sequence_core::ids::{ContactId, EnrollmentId, MailboxId, SendId, SequenceId, TenantId};
use sequence_core::transport::{FailureCategory, OutgoingEmail, SendError, Transport};
use support::{Aiosmtpd, Config, Server, TestCert};
use transport_smtp::{
    Credentials, NoCredentials, Security, SmtpError, SmtpSettings, SmtpTransport, Stage, Timeouts,
    TokenKind, Tracker,
};

const SECRET: &str = "test secret, 32 bytes long......";

/// Timeouts that are not what a test measures: generous, for a loaded machine.
fn generous() -> Timeouts {
    Timeouts::default()
        .with_connect(Duration::from_secs(20))
        .with_command(Duration::from_secs(20))
        .with_data(Duration::from_secs(20))
        .with_send(Duration::from_secs(40))
}

fn local(port: u16) -> SmtpSettings {
    SmtpSettings::new("127.0.0.1", Security::Plain)
        .with_port(port)
        .with_plain_allowed(true)
        .with_timeouts(generous())
}

fn tracker() -> Tracker {
    Tracker::new("https://t.sender.example", SECRET).unwrap()
}

fn transport(
    settings: Vec<(MailboxId, SmtpSettings)>,
    credentials: Vec<(MailboxId, Credentials)>,
) -> SmtpTransport {
    SmtpTransport::builder()
        .directory(settings.into_iter().collect::<HashMap<_, _>>())
        .credentials(credentials.into_iter().collect::<HashMap<_, _>>())
        .tracker(tracker())
        .unsubscribe_mailto("unsubscribe@sender.example")
        .unwrap()
        .build()
        .unwrap()
}

fn good_login() -> Credentials {
    Credentials::password("sender", "secret")
}

fn email(mailbox: MailboxId, to: &str) -> OutgoingEmail {
    OutgoingEmail {
        tenant: TenantId::from_u128(1),
        send: SendId::new(),
        enrollment: EnrollmentId::from_u128(3),
        sequence: SequenceId::from_u128(4),
        contact: ContactId::from_u128(5),
        step: 0,
        attempt: 1,
        variant: 0,
        mailbox,
        from_address: "ana@sender.example".into(),
        from_name: Some("Ana Lima".into()),
        to_address: to.into(),
        to_name: Some("Bob Stone".into()),
        subject: "Hello".into(),
        text_body: "Hi Bob".into(),
        html_body: None,
        message_id: format!("{}.0@sender.example", SendId::new()),
        in_reply_to: None,
        references: Vec::new(),
        track_opens: false,
        track_clicks: false,
    }
}

/// Every double-quoted `href="..."` value in `html`.
fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

/// The main test's email: step 2 of a sequence, threaded on steps 0 and 1, with an HTML part
/// whose links and opens are tracked.
fn follow_up(mailbox: MailboxId) -> OutgoingEmail {
    let mut e = email(mailbox, "bob@example.com");
    e.step = 2;
    e.subject = "Checking in on the demo".into();
    e.text_body = "Hi Bob,\r\nfollowing up on my note.\r\n".into();
    e.html_body = Some(
        "<html><body><p>Hi Bob, Tom &amp; Jerry &lt;3 caf\u{e9}</p>\
         <p><a href=\"https://example.com/pricing?plan=pro&amp;ref=seq\">pricing</a> \
         <a href='mailto:ana@sender.example'>write</a> <a href=\"#top\">top</a></p></body></html>"
            .into(),
    );
    e.message_id = "e3.s2@sender.example".into();
    e.in_reply_to = Some("e3.s1@sender.example".into());
    e.references = vec!["e3.s0@sender.example".into(), "e3.s1@sender.example".into()];
    e.track_opens = true;
    e.track_clicks = true;
    e
}

#[tokio::test]
async fn delivers_a_threaded_follow_up_with_compliance_headers_and_tracking() {
    let server = Server::plain();
    let mailbox = MailboxId::new();
    let transport = transport(
        vec![(mailbox, local(server.port))],
        vec![(mailbox, good_login())],
    );
    let e = follow_up(mailbox);

    let delivery = transport.send(&e).await.unwrap();
    assert_eq!(
        delivery.response.as_deref(),
        Some("250 2.0.0 OK: queued as 42")
    );

    let got = server.next_message();
    assert_eq!(got.mail_from, "ana@sender.example");
    assert_eq!(got.rcpt_tos, vec!["bob@example.com"]);
    assert_eq!(got.auth_user.as_deref(), Some("sender"));
    assert!(!got.tls);

    let msg = MessageParser::default().parse(&got.data).unwrap();
    let from = msg.from().unwrap().first().unwrap();
    assert_eq!(from.name(), Some("Ana Lima"));
    assert_eq!(from.address(), Some("ana@sender.example"));
    let to = msg.to().unwrap().first().unwrap();
    assert_eq!(
        (to.name(), to.address()),
        (Some("Bob Stone"), Some("bob@example.com"))
    );
    assert_eq!(msg.subject(), Some("Re: Checking in on the demo"));
    assert_eq!(msg.message_id(), Some("e3.s2@sender.example"));
    assert_eq!(msg.in_reply_to().as_text(), Some("e3.s1@sender.example"));
    let references: Vec<&str> = msg
        .references()
        .as_text_list()
        .unwrap()
        .iter()
        .map(AsRef::as_ref)
        .collect();
    assert_eq!(references, ["e3.s0@sender.example", "e3.s1@sender.example"]);

    // List-Unsubscribe: a mailto and an https link, both with a valid unsubscribe token.
    let raw = msg.header_raw("List-Unsubscribe").unwrap();
    let unfolded: String = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let links: Vec<&str> = unfolded
        .split(',')
        .map(|l| l.trim().trim_start_matches('<').trim_end_matches('>'))
        .collect();
    assert_eq!(links.len(), 2, "{unfolded}");
    let mailto_token = links[0]
        .strip_prefix("mailto:unsubscribe@sender.example?subject=unsubscribe%20")
        .unwrap();
    let https_token = links[1]
        .strip_prefix("https://t.sender.example/u/")
        .unwrap();
    let t = tracker();
    for token in [mailto_token, https_token] {
        let v = t.verify_kind(token, TokenKind::Unsubscribe).unwrap();
        assert_eq!(
            (v.tenant, v.contact, v.enrollment, v.step),
            (e.tenant, e.contact, e.enrollment, 2)
        );
    }
    assert_eq!(
        msg.header_raw("List-Unsubscribe-Post").map(str::trim),
        Some("List-Unsubscribe=One-Click")
    );

    // multipart/alternative with the text as sent and the HTML tracked, not re-escaped.
    let ct = msg.content_type().unwrap();
    assert_eq!(
        (ct.ctype(), ct.subtype()),
        ("multipart", Some("alternative"))
    );
    assert_eq!(
        msg.body_text(0).unwrap().replace("\r\n", "\n").trim_end(),
        "Hi Bob,\nfollowing up on my note."
    );
    let html = msg.body_html(0).unwrap().into_owned();
    assert!(
        html.contains("<p>Hi Bob, Tom &amp; Jerry &lt;3 caf\u{e9}</p>"),
        "{html}"
    );
    assert!(!html.contains("&amp;amp;"));
    let links = hrefs(&html);
    assert_eq!(links.len(), 2, "{html}");
    let click = links[0]
        .strip_prefix("https://t.sender.example/c/")
        .unwrap();
    let v = t.verify_kind(click, TokenKind::Click).unwrap();
    assert_eq!(
        v.target.as_deref(),
        Some("https://example.com/pricing?plan=pro&ref=seq")
    );
    assert_eq!((v.enrollment, v.step), (e.enrollment, 2));
    assert!(
        html.contains("<a href='mailto:ana@sender.example'>write</a>"),
        "{html}"
    );
    assert_eq!(links[1], "#top");
    let pixel = html
        .split("<img src=\"https://t.sender.example/o/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(t.verify(pixel).unwrap().kind, TokenKind::Open);
    assert!(html.find("<img").unwrap() < html.find("</body>").unwrap());
}

/// The main test's email through Python's aiosmtpd instead of the server in `support`: a
/// check that the two agree with lettre. Only with `SMTP_INTEROP_AIOSMTPD=1`, and a python3
/// with aiosmtpd (`SMTP_INTEROP_PYTHON` names another python).
#[tokio::test]
async fn interop_the_follow_up_goes_through_aiosmtpd() {
    if std::env::var("SMTP_INTEROP_AIOSMTPD").as_deref() != Ok("1") {
        eprintln!("skipped: set SMTP_INTEROP_AIOSMTPD=1 to send through aiosmtpd too");
        return;
    }
    let server = Aiosmtpd::start();
    let mailbox = MailboxId::new();
    // aiosmtpd's command line server offers no AUTH without TLS: no login.
    let transport = transport(vec![(mailbox, local(server.port))], vec![]);
    let delivery = transport.send(&follow_up(mailbox)).await.unwrap();
    assert!(
        delivery
            .response
            .as_deref()
            .is_some_and(|r| r.starts_with("250 ")),
        "{delivery:?}"
    );
    let printed = server.next_message();
    for expected in [
        "Subject: Re: Checking in on the demo",
        "Message-ID: <e3.s2@sender.example>",
        "In-Reply-To: <e3.s1@sender.example>",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        "multipart/alternative",
        "https://t.sender.example/o/",
    ] {
        assert!(printed.contains(expected), "{expected:?} not in {printed}");
    }
}

/// lettre dot-stuffs lines that start with a dot; the server unstuffs them.
#[tokio::test]
async fn lines_that_start_with_a_dot_arrive_intact() {
    let server = Server::plain();
    let mailbox = MailboxId::new();
    let transport = transport(vec![(mailbox, local(server.port))], vec![]);
    let mut e = email(mailbox, "bob@example.com");
    e.text_body = "Hi Bob,\r\n.\r\n..two dots\r\n.end\r\n".into();
    transport.send(&e).await.unwrap();
    let got = server.next_message();
    let sent: &[u8] = b"\r\n\r\nHi Bob,\r\n.\r\n..two dots\r\n.end\r\n";
    assert!(
        got.data.windows(sent.len()).any(|w| w == sent),
        "{}",
        String::from_utf8_lossy(&got.data)
    );
    let msg = MessageParser::default().parse(&got.data).unwrap();
    assert_eq!(
        msg.body_text(0).unwrap().replace("\r\n", "\n").trim_end(),
        "Hi Bob,\n.\n..two dots\n.end"
    );
}

#[tokio::test]
async fn reuses_the_pooled_connection() {
    let server = Server::plain();
    let mailbox = MailboxId::new();
    let transport = transport(vec![(mailbox, local(server.port))], vec![]);
    transport
        .send(&email(mailbox, "a@example.com"))
        .await
        .unwrap();
    transport
        .send(&email(mailbox, "b@example.com"))
        .await
        .unwrap();
    let (first, second) = (server.next_message(), server.next_message());
    assert_eq!(first.rcpt_tos, vec!["a@example.com"]);
    assert_eq!(second.rcpt_tos, vec!["b@example.com"]);
    assert_eq!(
        first.peer, second.peer,
        "the second send used a new connection"
    );
}

fn check(
    error: &SendError,
    permanent: bool,
    category: FailureCategory,
    code: u16,
    enhanced: &str,
    mailbox_fault: bool,
) {
    assert_eq!(error.is_permanent(), permanent, "{error}");
    assert_eq!(error.category(), category, "{error}");
    assert_eq!(error.code(), Some(code), "{error}");
    assert_eq!(error.enhanced_code(), Some(enhanced), "{error}");
    assert_eq!(error.is_mailbox_fault(), mailbox_fault, "{error}");
    assert_eq!(
        error.is_contact_fault(),
        permanent && !mailbox_fault && category != FailureCategory::PolicyBlock,
        "{error}"
    );
}

#[tokio::test]
async fn classifies_refusals_and_keeps_the_connection() {
    use FailureCategory as C;
    let server = Server::plain();
    let mailbox = MailboxId::new();
    let transport = transport(
        vec![(mailbox, local(server.port))],
        vec![(mailbox, good_login())],
    );
    let send = |to: &str| {
        let e = email(mailbox, to);
        let t = transport.clone();
        async move { t.send(&e).await }
    };

    send("first@example.com").await.unwrap();
    let first = server.next_message();

    let e = send("reply-450@example.com").await.unwrap_err();
    check(&e, false, C::Other, 450, "4.2.1", false);
    let e = send("reply-550@example.com").await.unwrap_err();
    check(&e, true, C::InvalidRecipient, 550, "5.1.1", false);
    let e = send("reply-552@example.com").await.unwrap_err();
    check(&e, true, C::MailboxFull, 552, "5.2.2", false);

    // The refusals were reset (RSET) and the connection kept.
    send("second@example.com").await.unwrap();
    let second = server.next_message();
    assert_eq!(second.rcpt_tos, vec!["second@example.com"]);
    assert_eq!(first.peer, second.peer);

    // A 421 means the server is closing: the next send opens a new connection.
    let e = send("reply-421@example.com").await.unwrap_err();
    check(&e, false, C::RateLimited, 421, "4.7.0", true);
    send("third@example.com").await.unwrap();
    let third = server.next_message();
    assert_ne!(second.peer, third.peer);
    server.assert_no_message(Duration::from_millis(200));
}

#[tokio::test]
async fn a_refused_login_is_the_mailboxs_fault() {
    let server = Server::plain();
    let (bad, good) = (MailboxId::new(), MailboxId::new());
    let transport = transport(
        vec![(bad, local(server.port)), (good, local(server.port))],
        vec![
            (bad, Credentials::password("sender", "wrong")),
            (good, good_login()),
        ],
    );
    let error = transport
        .send(&email(bad, "bob@example.com"))
        .await
        .unwrap_err();
    check(
        &error,
        true,
        FailureCategory::AuthFailure,
        535,
        "5.7.8",
        true,
    );
    assert!(!error.message().contains("wrong"), "{error}");
    let typed = transport
        .deliver(&email(bad, "bob@example.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            typed,
            SmtpError::Rejected {
                stage: Stage::Auth,
                code: 535,
                ..
            }
        ),
        "{typed:?}"
    );
    transport
        .send(&email(good, "bob@example.com"))
        .await
        .unwrap();
    assert_eq!(server.next_message().auth_user.as_deref(), Some("sender"));
}

#[tokio::test]
async fn logs_in_with_auth_login_when_plain_is_not_offered() {
    let server = Server::start(Config::plain().auth_mechanisms(&["LOGIN"]));
    let (bad, good) = (MailboxId::new(), MailboxId::new());
    let transport = transport(
        vec![(bad, local(server.port)), (good, local(server.port))],
        vec![
            (bad, Credentials::password("sender", "wrong")),
            (good, good_login()),
        ],
    );
    let error = transport
        .send(&email(bad, "bob@example.com"))
        .await
        .unwrap_err();
    check(
        &error,
        true,
        FailureCategory::AuthFailure,
        535,
        "5.7.8",
        true,
    );
    transport
        .send(&email(good, "bob@example.com"))
        .await
        .unwrap();
    assert_eq!(server.next_message().auth_user.as_deref(), Some("sender"));
}

#[tokio::test]
async fn a_hanging_server_times_out_without_delaying_other_mailboxes() {
    let healthy = Server::plain();
    let hanging = Server::start(Config::silent());
    let (slow, fast) = (MailboxId::new(), MailboxId::new());
    let limit = Duration::from_secs(3);
    let slow_settings = local(hanging.port).with_timeouts(generous().with_connect(limit));
    let transport = transport(
        vec![(slow, slow_settings), (fast, local(healthy.port))],
        vec![],
    );
    let started = Instant::now();
    let (slow_result, fast_elapsed) = tokio::join!(
        async {
            let r = transport.send(&email(slow, "bob@example.com")).await;
            (r, started.elapsed())
        },
        async {
            transport
                .send(&email(fast, "bob@example.com"))
                .await
                .unwrap();
            started.elapsed()
        },
    );
    let (slow_result, slow_elapsed) = slow_result;
    let error = slow_result.unwrap_err();
    assert!(error.is_transient() && error.is_mailbox_fault(), "{error}");
    assert_eq!(error.category(), FailureCategory::Connection);
    assert!(error.message().contains("timed out"), "{error}");
    assert!(slow_elapsed >= limit, "{slow_elapsed:?}");
    assert!(slow_elapsed < limit * 4, "{slow_elapsed:?}");
    assert!(
        fast_elapsed < limit / 2,
        "the healthy mailbox waited {fast_elapsed:?}"
    );
    assert_eq!(healthy.next_message().rcpt_tos, vec!["bob@example.com"]);
}

#[tokio::test]
async fn a_command_that_never_gets_a_reply_times_out() {
    let server = Server::plain();
    let mailbox = MailboxId::new();
    let limit = Duration::from_millis(1500);
    let settings = local(server.port).with_timeouts(generous().with_command(limit));
    let transport = transport(vec![(mailbox, settings)], vec![]);
    let started = Instant::now();
    let error = transport
        .deliver(&email(mailbox, "hang@example.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, SmtpError::Timeout { stage: Stage::RcptTo, after } if after == limit),
        "{error:?}"
    );
    assert!(started.elapsed() < limit * 6, "{:?}", started.elapsed());
    let classified = error.to_send_error();
    assert!(classified.is_transient() && classified.is_mailbox_fault());
    // The timed-out connection was dropped, not reused: the next send works.
    transport
        .send(&email(mailbox, "ok@example.com"))
        .await
        .unwrap();
    assert_eq!(server.next_message().rcpt_tos, vec!["ok@example.com"]);
}

#[tokio::test]
async fn plain_smtp_is_refused_unless_allowed() {
    let server = Server::plain();
    let mailbox = MailboxId::new();
    let not_allowed = local(server.port).with_plain_allowed(false);
    let transport = transport(vec![(mailbox, not_allowed)], vec![]);
    let error = transport
        .deliver(&email(mailbox, "bob@example.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, SmtpError::PlainNotAllowed { .. }),
        "{error:?}"
    );
    let classified = transport
        .send(&email(mailbox, "bob@example.com"))
        .await
        .unwrap_err();
    assert!(classified.is_mailbox_fault() && classified.is_transient());
    server.assert_no_message(Duration::from_millis(300));
}

#[tokio::test]
async fn starttls_is_required_when_configured() {
    let server = Server::plain(); // offers no STARTTLS
    let mailbox = MailboxId::new();
    let settings = SmtpSettings::new("localhost", Security::StartTls)
        .with_port(server.port)
        .with_timeouts(generous());
    let transport = transport(vec![(mailbox, settings)], vec![(mailbox, good_login())]);
    let error = transport
        .deliver(&email(mailbox, "bob@example.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            SmtpError::Connection {
                stage: Stage::StartTls,
                ..
            }
        ),
        "{error:?}"
    );
    let classified = error.to_send_error();
    assert_eq!(classified.category(), FailureCategory::Connection);
    assert!(classified.is_transient());
    server.assert_no_message(Duration::from_millis(300));
}

#[tokio::test]
async fn sends_over_starttls_and_implicit_tls_with_a_private_root() {
    let cert = TestCert::localhost();
    let starttls = Server::start(Config::starttls(&cert));
    let implicit = Server::start(Config::implicit_tls(&cert));
    let (a, b, untrusted) = (MailboxId::new(), MailboxId::new(), MailboxId::new());
    let settings = |security, port| {
        SmtpSettings::new("localhost", security)
            .with_port(port)
            .with_timeouts(generous())
            .with_root_certificate(cert.pem.clone())
    };
    let transport = transport(
        vec![
            (a, settings(Security::StartTls, starttls.port)),
            (b, settings(Security::ImplicitTls, implicit.port)),
            (
                untrusted,
                SmtpSettings::new("localhost", Security::ImplicitTls)
                    .with_port(implicit.port)
                    .with_timeouts(generous()),
            ),
        ],
        vec![(a, good_login()), (b, good_login())],
    );
    transport.send(&email(a, "bob@example.com")).await.unwrap();
    let got = starttls.next_message();
    assert!(got.tls);
    assert_eq!(got.auth_user.as_deref(), Some("sender"));
    transport.send(&email(b, "bob@example.com")).await.unwrap();
    assert!(implicit.next_message().tls);

    // Without the private root, the self-signed certificate is refused.
    let error = transport
        .deliver(&email(untrusted, "bob@example.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SmtpError::Connection { stage: Stage::Connect, reason, .. } if reason.contains("certificate")),
        "{error:?}"
    );
    // lettre's error is kept underneath, and the chain leads to rustls's verdict.
    let chain: Vec<&(dyn std::error::Error + 'static)> =
        std::iter::successors(std::error::Error::source(&error), |e| e.source()).collect();
    assert!(
        chain
            .first()
            .is_some_and(|e| e.is::<lettre::transport::smtp::Error>()),
        "{chain:?}"
    );
    let refused_certificate = |e: &&(dyn std::error::Error + 'static)| {
        e.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<tokio_rustls::rustls::Error>())
            .is_some_and(|tls| matches!(tls, tokio_rustls::rustls::Error::InvalidCertificate(_)))
    };
    assert!(chain.iter().any(refused_certificate), "{chain:?}");
    implicit.assert_no_message(Duration::from_millis(200));
}

#[tokio::test]
async fn header_injection_is_refused_before_connecting() {
    let server = Server::plain();
    let mailbox = MailboxId::new();
    let transport = transport(vec![(mailbox, local(server.port))], vec![]);
    let mut e = email(mailbox, "bob@example.com");
    e.from_name = Some("Ana\r\nBcc: everyone@example.com".into());
    let error = transport.send(&e).await.unwrap_err();
    assert!(error.is_permanent(), "{error}");
    assert_eq!(error.category(), FailureCategory::InvalidMessage);
    assert!(!error.is_contact_fault());
    let mut e = email(mailbox, "bob@example.com\r\nRCPT TO:<x@example.com>");
    e.subject = "fine".into();
    assert_eq!(
        transport.send(&e).await.unwrap_err().category(),
        FailureCategory::InvalidMessage
    );
    server.assert_no_message(Duration::from_millis(300));
}

#[tokio::test]
async fn an_unknown_mailbox_is_a_transient_mailbox_fault() {
    let transport = SmtpTransport::builder()
        .directory(HashMap::<MailboxId, SmtpSettings>::new())
        .credentials(NoCredentials)
        .build()
        .unwrap();
    let error = transport
        .send(&email(MailboxId::new(), "bob@example.com"))
        .await
        .unwrap_err();
    assert!(error.is_transient() && error.is_mailbox_fault(), "{error}");
    assert!(SmtpTransport::builder().build().is_err());
}
