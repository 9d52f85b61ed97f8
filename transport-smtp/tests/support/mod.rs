//! Test support: a real SMTP server on loopback, written here and run inside the test
//! process (its own thread and tokio runtime, so that a test may block on
//! [`Server::next_message`]), and what it received.
//!
//! The protocol is in `server.rs` (AUTH in `server/auth.rs`), the certificate in `tls.rs`;
//! `aiosmtpd.rs` runs Python's aiosmtpd for the optional interoperability check only.

mod aiosmtpd;
mod server;
mod tls;

use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

pub(crate) use aiosmtpd::Aiosmtpd;
pub(crate) use tls::TestCert;

/// What the server received: one message.
#[derive(Debug)]
pub(crate) struct Received {
    /// The client's address: the same for messages sent on the same connection.
    pub(crate) peer: SocketAddr,
    /// MAIL FROM's address, without the brackets.
    pub(crate) mail_from: String,
    /// The recipients the server accepted.
    pub(crate) rcpt_tos: Vec<String>,
    /// The message as sent after DATA, dot-unstuffed, without the final `.` line.
    pub(crate) data: Vec<u8>,
    /// Whether the connection was encrypted (STARTTLS or implicit TLS).
    pub(crate) tls: bool,
    /// The user who logged in with AUTH, if one did.
    pub(crate) auth_user: Option<String>,
}

/// TLS on the server.
#[derive(Clone)]
enum Encryption {
    /// Plain SMTP; STARTTLS not offered.
    None,
    /// STARTTLS offered.
    StartTls(TlsAcceptor),
    /// TLS from the first byte.
    Implicit(TlsAcceptor),
}

/// How a test server behaves. AUTH PLAIN and LOGIN are offered, also without TLS, and
/// accept user `sender` with password `secret`; anything else gets `535 5.7.8`.
pub(crate) struct Config {
    tls: Encryption,
    /// Accept connections and never say a word.
    silent: bool,
    /// The AUTH mechanisms offered in EHLO's reply.
    auth_mechanisms: &'static [&'static str],
    /// The one (user, password) that logs in.
    login: (&'static str, &'static str),
}

impl Config {
    /// Plain SMTP, STARTTLS not offered.
    pub(crate) fn plain() -> Self {
        Self {
            tls: Encryption::None,
            silent: false,
            auth_mechanisms: &["PLAIN", "LOGIN"],
            login: ("sender", "secret"),
        }
    }

    /// Plain SMTP that offers STARTTLS with `cert`.
    pub(crate) fn starttls(cert: &TestCert) -> Self {
        Self {
            tls: Encryption::StartTls(cert.acceptor()),
            ..Self::plain()
        }
    }

    /// TLS from the first byte, with `cert`.
    pub(crate) fn implicit_tls(cert: &TestCert) -> Self {
        Self {
            tls: Encryption::Implicit(cert.acceptor()),
            ..Self::plain()
        }
    }

    /// A server that accepts connections and never says a word (not even its greeting).
    pub(crate) fn silent() -> Self {
        Self {
            silent: true,
            ..Self::plain()
        }
    }

    /// Offer only these AUTH mechanisms (of `PLAIN` and `LOGIN`).
    pub(crate) fn auth_mechanisms(self, auth_mechanisms: &'static [&'static str]) -> Self {
        Self {
            auth_mechanisms,
            ..self
        }
    }
}

/// A running test server on 127.0.0.1; stopped, and its connections closed, on drop.
pub(crate) struct Server {
    /// The port it listens on.
    pub(crate) port: u16,
    events: Receiver<Received>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listen on a free loopback port and serve with `config` on a thread of its own.
    pub(crate) fn start(config: Config) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let port = listener
            .local_addr()
            .expect("the listener's address")
            .port();
        let (received, events) = mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let config = Arc::new(config);
        let thread = std::thread::Builder::new()
            .name(format!("smtp-server-{port}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the test server's runtime");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                    tokio::select! {
                        _ = stopped => {}
                        () = accept(listener, config, received) => {}
                    }
                });
                // Dropping the runtime ends the sessions still open and closes their sockets.
            })
            .expect("start the test server's thread");
        Self {
            port,
            events,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// A plain SMTP server ([`Config::plain`]).
    pub(crate) fn plain() -> Self {
        Self::start(Config::plain())
    }

    /// The next message the server received (waits up to 15 s).
    pub(crate) fn next_message(&self) -> Received {
        self.events
            .recv_timeout(Duration::from_secs(15))
            .expect("the server received no message")
    }

    /// Check that no message arrives within `within`.
    pub(crate) fn assert_no_message(&self, within: Duration) {
        match self.events.recv_timeout(within) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(message) => panic!("unexpected message {message:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the server stopped"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                eprintln!("the SMTP test server on port {} panicked", self.port);
            }
        }
    }
}

/// Accept connections for ever, one task each.
async fn accept(
    listener: tokio::net::TcpListener,
    config: Arc<Config>,
    received: mpsc::Sender<Received>,
) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                tokio::spawn(server::serve(
                    tcp,
                    peer,
                    Arc::clone(&config),
                    received.clone(),
                ));
            }
            Err(e) => {
                eprintln!("the SMTP test server could not accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
