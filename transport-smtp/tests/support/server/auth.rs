//! AUTH PLAIN and LOGIN (RFC 4954, RFC 4616), with their `334` challenges.

use std::io;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};

use super::{read_command, reply, Session};

impl Session {
    /// AUTH PLAIN or LOGIN, with its challenges.
    pub(super) async fn auth<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        arg: &str,
        io: &mut BufReader<S>,
    ) -> io::Result<String> {
        if !self.greeted {
            return Ok("503 5.5.1 Error: send HELO first".to_owned());
        }
        if self.auth_user.is_some() {
            return Ok("503 5.5.1 Already authenticated".to_owned());
        }
        if self.mail_from.is_some() {
            return Ok("503 5.5.1 Error: AUTH not allowed during a mail transaction".to_owned());
        }
        let (mechanism, initial) = arg.split_once(' ').unwrap_or((arg, ""));
        let mechanism = mechanism.to_ascii_uppercase();
        let offered = self.config.auth_mechanisms.contains(&mechanism.as_str());
        let initial = Some(initial.trim()).filter(|i| !i.is_empty());
        let login = match mechanism.as_str() {
            "PLAIN" if offered => match answer(io, "", initial).await? {
                Ok(response) => split_plain(&response),
                Err(refusal) => return Ok(refusal),
            },
            // "Username:", then "Password:".
            "LOGIN" if offered => {
                let user = match answer(io, "VXNlcm5hbWU6", initial).await? {
                    Ok(user) => user,
                    Err(refusal) => return Ok(refusal),
                };
                match answer(io, "UGFzc3dvcmQ6", None).await? {
                    Ok(password) => Some((user, password)),
                    Err(refusal) => return Ok(refusal),
                }
            }
            _ => return Ok("504 5.5.4 Unrecognized authentication type".to_owned()),
        };
        let Some((user, password)) = login else {
            return Ok("501 5.5.2 Malformed AUTH PLAIN response".to_owned());
        };
        let (good_user, good_password) = self.config.login;
        if user == good_user.as_bytes() && password == good_password.as_bytes() {
            self.auth_user = Some(good_user.to_owned());
            Ok("235 2.7.0 Authentication successful".to_owned())
        } else {
            Ok("535 5.7.8 Authentication credentials invalid".to_owned())
        }
    }
}

/// A client's answer to a `334` challenge (or the initial response if it sent one), decoded
/// from base64; `Err` holds the reply when it cancelled or sent something undecodable.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    challenge: &str,
    initial: Option<&str>,
) -> io::Result<Result<Vec<u8>, String>> {
    let encoded = match initial {
        Some(initial) => initial.to_owned(),
        None => {
            reply(io, &format!("334 {challenge}")).await?;
            read_command(io)
                .await?
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?
        }
    };
    Ok(match encoded.trim() {
        "*" => Err("501 5.7.0 Authentication cancelled".to_owned()),
        // An empty initial response (RFC 4954, section 4).
        "=" => Ok(Vec::new()),
        encoded => STANDARD
            .decode(encoded)
            .map_err(|_| "501 5.5.2 Cannot decode the base64 response".to_owned()),
    })
}

/// AUTH PLAIN's response `authzid NUL authcid NUL password` as (authcid, password).
fn split_plain(response: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut parts = response.split(|&b| b == 0);
    let (_authzid, user, password) = (parts.next()?, parts.next()?, parts.next()?);
    parts
        .next()
        .is_none()
        .then(|| (user.to_vec(), password.to_vec()))
}
