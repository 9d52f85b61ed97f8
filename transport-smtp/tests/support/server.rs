//! The test server's side of SMTP: one session per connection.
//!
//! Enough of RFC 5321 (EHLO/HELO, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP,
//! QUIT), RFC 3207 (STARTTLS) and RFC 4954 (AUTH PLAIN and LOGIN) for lettre, plus the
//! misbehaviours the tests ask for through the recipient's local part:
//!
//! | recipient      | reply to RCPT TO                          |
//! | -------------- | ----------------------------------------- |
//! | `reply-421@…`  | `421 4.7.0 Too many messages, slow down`  |
//! | `reply-450@…`  | `450 4.2.1 Mailbox busy, try again later` |
//! | `reply-550@…`  | `550 5.1.1 User unknown`                  |
//! | `reply-552@…`  | `552 5.2.2 Mailbox full`                  |
//! | `hang@…`       | none, ever (the session only reads on)    |
//!
//! Like aiosmtpd, the server keeps the connection open after a 421: closing the connection is
//! the client's job, and the tests check that the transport does it.

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{Config, Encryption, Received};

mod auth;

/// The name the server gives itself.
const HOSTNAME: &str = "test.invalid";
/// The longest command line accepted, CRLF included (RFC 5321 asks for at least 512).
const MAX_COMMAND: u64 = 4096;
/// The largest message accepted (announced with SIZE).
const MAX_MESSAGE: usize = 32 * 1024 * 1024;
/// The reply to a message accepted.
const QUEUED: &str = "250 2.0.0 OK: queued as 42";

/// The reply forced by a recipient's local part, if any.
fn forced_reply(local_part: &str) -> Option<&'static str> {
    match local_part {
        "reply-421" => Some("421 4.7.0 Too many messages, slow down"),
        "reply-450" => Some("450 4.2.1 Mailbox busy, try again later"),
        "reply-550" => Some("550 5.1.1 User unknown"),
        "reply-552" => Some("552 5.2.2 Mailbox full"),
        _ => None,
    }
}

/// Serve one connection to its end: the client quit or left, or the session hung up (a line
/// too long, a failed TLS handshake). I/O errors only end the session.
pub(super) async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    config: Arc<Config>,
    received: Sender<Received>,
) {
    if config.silent {
        drain(tcp).await;
        return;
    }
    let mut session = Session {
        peer,
        config: Arc::clone(&config),
        received,
        tls: false,
        greeted: false,
        auth_user: None,
        mail_from: None,
        rcpt_tos: Vec::new(),
    };
    match &config.tls {
        Encryption::Implicit(acceptor) => {
            // A failed handshake (the client refused the certificate) ends the session.
            if let Ok(stream) = acceptor.accept(tcp).await {
                session.tls = true;
                let _ = session.converse(BufReader::new(stream), true).await;
            }
        }
        Encryption::None | Encryption::StartTls(_) => {
            let Ok(End::StartTls(io)) = session.converse(BufReader::new(tcp), true).await else {
                return;
            };
            // Commands pipelined behind STARTTLS were sent in clear: drop the connection
            // rather than run them inside TLS (RFC 3207, section 5).
            let (Encryption::StartTls(acceptor), true) = (&config.tls, io.buffer().is_empty())
            else {
                return;
            };
            if let Ok(stream) = acceptor.accept(io.into_inner()).await {
                // Forget all the client said before (RFC 3207, section 4.2).
                session.tls = true;
                session.greeted = false;
                session.auth_user = None;
                session.reset();
                let _ = session.converse(BufReader::new(stream), false).await;
            }
        }
    }
}

/// Read and discard whatever comes until the client closes.
async fn drain(mut stream: impl AsyncRead + Unpin) {
    let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
}

/// How a conversation ended.
enum End<S> {
    /// QUIT, the client left, or the session hung up on it.
    Closed,
    /// STARTTLS was accepted: the stream is to be wrapped in TLS.
    StartTls(BufReader<S>),
}

/// One connection's state.
struct Session {
    peer: SocketAddr,
    config: Arc<Config>,
    received: Sender<Received>,
    tls: bool,
    greeted: bool,
    auth_user: Option<String>,
    mail_from: Option<String>,
    rcpt_tos: Vec<String>,
}

impl Session {
    /// Read commands and answer them until the conversation ends.
    async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        mut io: BufReader<S>,
        greet: bool,
    ) -> io::Result<End<S>> {
        if greet {
            reply(&mut io, &format!("220 {HOSTNAME} ESMTP test server")).await?;
        }
        loop {
            let Some(line) = read_command(&mut io).await? else {
                return Ok(End::Closed);
            };
            let (verb, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            let arg = arg.trim();
            let answer = match verb.to_ascii_uppercase().as_str() {
                "HELO" => self.hello(arg, false),
                "EHLO" => self.hello(arg, true),
                "STARTTLS" => match self.starttls(arg) {
                    Ok(()) => {
                        reply(&mut io, "220 2.0.0 Ready to start TLS").await?;
                        return Ok(End::StartTls(io));
                    }
                    Err(refusal) => refusal,
                },
                "AUTH" => self.auth(arg, &mut io).await?,
                "MAIL" => self.mail(arg),
                "RCPT" => match self.rcpt(arg) {
                    Some(answer) => answer,
                    None => {
                        drain(io).await;
                        return Ok(End::Closed);
                    }
                },
                "DATA" => match self.data_refusal(arg) {
                    Some(refusal) => refusal,
                    None => {
                        reply(&mut io, "354 End data with <CR><LF>.<CR><LF>").await?;
                        let data = read_data(&mut io).await?;
                        self.deliver(data)
                    }
                },
                "RSET" if arg.is_empty() => {
                    self.reset();
                    "250 2.0.0 OK".to_owned()
                }
                "NOOP" => "250 2.0.0 OK".to_owned(),
                "QUIT" => {
                    reply(&mut io, "221 2.0.0 Bye").await?;
                    return Ok(End::Closed);
                }
                "RSET" => "501 5.5.4 Syntax: RSET".to_owned(),
                "" => "500 5.5.2 Error: bad syntax".to_owned(),
                _ => "502 5.5.1 Command not implemented".to_owned(),
            };
            reply(&mut io, &answer).await?;
        }
    }

    /// Forget the mail transaction.
    fn reset(&mut self) {
        self.mail_from = None;
        self.rcpt_tos.clear();
    }

    fn starttls_offered(&self) -> bool {
        matches!(self.config.tls, Encryption::StartTls(_)) && !self.tls
    }

    /// HELO or EHLO.
    fn hello(&mut self, domain: &str, extended: bool) -> String {
        if domain.is_empty() {
            return "501 5.5.4 Syntax: EHLO hostname (or HELO)".to_owned();
        }
        self.greeted = true;
        self.reset();
        if !extended {
            return format!("250 {HOSTNAME}");
        }
        let mut lines = vec![
            HOSTNAME.to_owned(),
            format!("SIZE {MAX_MESSAGE}"),
            "8BITMIME".to_owned(),
            "SMTPUTF8".to_owned(),
        ];
        if self.starttls_offered() {
            lines.push("STARTTLS".to_owned());
        }
        if !self.config.auth_mechanisms.is_empty() {
            lines.push(format!("AUTH {}", self.config.auth_mechanisms.join(" ")));
        }
        let last = lines.len() - 1;
        let lines: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, line)| format!("250{}{line}", if i == last { ' ' } else { '-' }))
            .collect();
        lines.join("\r\n")
    }

    /// STARTTLS: `Ok` to start the handshake, else the refusal.
    fn starttls(&self, arg: &str) -> Result<(), String> {
        if !self.starttls_offered() {
            Err("454 4.7.0 TLS not available".to_owned())
        } else if !arg.is_empty() {
            Err("501 5.5.4 Syntax: STARTTLS".to_owned())
        } else {
            Ok(())
        }
    }

    /// MAIL FROM:<address> with the parameters lettre may send.
    fn mail(&mut self, arg: &str) -> String {
        if !self.greeted {
            return "503 5.5.1 Error: send HELO first".to_owned();
        }
        if self.mail_from.is_some() {
            return "503 5.5.1 Error: nested MAIL command".to_owned();
        }
        let Some((address, parameters)) = path(arg, "FROM:") else {
            return "501 5.5.4 Syntax: MAIL FROM:<address>".to_owned();
        };
        for parameter in parameters.split_whitespace() {
            let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            let known = match key.to_ascii_uppercase().as_str() {
                "BODY" => ["7BIT", "8BITMIME"].contains(&value.to_ascii_uppercase().as_str()),
                "SMTPUTF8" => value.is_empty(),
                "SIZE" => value.parse::<usize>().is_ok_and(|size| size <= MAX_MESSAGE),
                _ => false,
            };
            if !known {
                return format!("555 5.5.4 MAIL FROM parameter not supported: {parameter}");
            }
        }
        self.mail_from = Some(address.to_owned());
        "250 2.1.0 OK".to_owned()
    }

    /// RCPT TO:<address>: the answer, or `None` for a recipient the server never answers.
    fn rcpt(&mut self, arg: &str) -> Option<String> {
        if self.mail_from.is_none() {
            return Some("503 5.5.1 Error: need MAIL command".to_owned());
        }
        let Some((address, parameters)) = path(arg, "TO:").filter(|(a, _)| !a.is_empty()) else {
            return Some("501 5.5.4 Syntax: RCPT TO:<address>".to_owned());
        };
        if !parameters.trim().is_empty() {
            return Some("555 5.5.4 RCPT TO parameters not supported".to_owned());
        }
        let local_part = address.split('@').next().unwrap_or_default().to_lowercase();
        if local_part == "hang" {
            return None;
        }
        if let Some(forced) = forced_reply(&local_part) {
            return Some(forced.to_owned());
        }
        self.rcpt_tos.push(address.to_owned());
        Some("250 2.1.5 OK".to_owned())
    }

    /// Why DATA cannot start now, if it cannot.
    fn data_refusal(&self, arg: &str) -> Option<String> {
        let refusal = if self.mail_from.is_none() {
            "503 5.5.1 Error: need MAIL command"
        } else if self.rcpt_tos.is_empty() {
            "503 5.5.1 Error: need RCPT command"
        } else if !arg.is_empty() {
            "501 5.5.4 Syntax: DATA"
        } else {
            return None;
        };
        Some(refusal.to_owned())
    }

    /// Record the message (`None`: too large) and end the transaction.
    fn deliver(&mut self, data: Option<Vec<u8>>) -> String {
        let Some(data) = data else {
            self.reset();
            return "552 5.3.4 Error: Too much mail data".to_owned();
        };
        let message = Received {
            peer: self.peer,
            mail_from: self.mail_from.take().unwrap_or_default(),
            rcpt_tos: std::mem::take(&mut self.rcpt_tos),
            data,
            tls: self.tls,
            auth_user: self.auth_user.clone(),
        };
        // The test may have stopped listening: nothing to do then.
        let _ = self.received.send(message);
        QUEUED.to_owned()
    }
}

/// Write one reply (its lines already joined with CRLF).
async fn reply(io: &mut (impl AsyncWrite + Unpin), text: &str) -> io::Result<()> {
    io.write_all(format!("{text}\r\n").as_bytes()).await?;
    io.flush().await
}

/// The next command line without its line end; `None` when the client has gone. A line too
/// long is answered, and ends the session.
async fn read_command<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    (&mut *io)
        .take(MAX_COMMAND)
        .read_until(b'\n', &mut line)
        .await?;
    if line.is_empty() {
        return Ok(None);
    }
    if !line.ends_with(b"\n") {
        if line.len() as u64 == MAX_COMMAND {
            reply(io, "500 5.5.2 Error: line too long").await?;
        }
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&line);
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
}

/// `FROM:<address> parameters` (or `TO:`): the address without its brackets (possibly empty,
/// the null sender) and the rest.
fn path<'a>(arg: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start().strip_prefix('<')?;
    let (address, parameters) = rest.split_once('>')?;
    (!address.contains(['<', ' '])).then_some((address, parameters))
}

/// The message after DATA's 354, up to the lone dot, dot-unstuffed, line ends kept (as
/// aiosmtpd's `original_content`); `None` if it was larger than [`MAX_MESSAGE`].
async fn read_data<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
) -> io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    let mut too_large = false;
    let mut line = Vec::new();
    // A line as long as the largest message, with its stuffing dot and CRLF.
    let limit = MAX_MESSAGE as u64 + 3;
    loop {
        line.clear();
        (&mut *io).take(limit).read_until(b'\n', &mut line).await?;
        if !line.ends_with(b"\n") && (line.len() as u64) < limit {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" {
            return Ok((!too_large).then_some(data));
        }
        let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
        too_large |= data.len() + unstuffed.len() > MAX_MESSAGE;
        if !too_large {
            data.extend_from_slice(unstuffed);
        }
    }
}
