//! For the optional interoperability check only: Python's aiosmtpd as a child process
//! (`python3 -m aiosmtpd -n -l 127.0.0.1:PORT`, its command line server with the Debugging
//! handler, which prints each message it receives). The other tests never start it.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// A running aiosmtpd, killed on drop.
pub(crate) struct Aiosmtpd {
    child: Child,
    /// The port it listens on.
    pub(crate) port: u16,
    lines: Receiver<String>,
}

impl Aiosmtpd {
    /// Start `python` (`python3` unless `SMTP_INTEROP_PYTHON` names another) with aiosmtpd
    /// on a free loopback port, and wait until it accepts connections.
    pub(crate) fn start() -> Self {
        let python = std::env::var("SMTP_INTEROP_PYTHON").unwrap_or_else(|_| "python3".into());
        // A port free a moment ago; aiosmtpd binds it next.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let mut child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {python} -m aiosmtpd: {e}"));
        let stdout = child.stdout.take().expect("aiosmtpd's piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{python} -m aiosmtpd exited ({status}): is aiosmtpd installed?");
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd is not listening on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port, lines }
    }

    /// What aiosmtpd printed of the next message it received, up to its `END MESSAGE` line
    /// (waits up to 15 s).
    pub(crate) fn next_message(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut printed = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("aiosmtpd printed no whole message ({e}): {printed}"));
            if line.contains("END MESSAGE") {
                return printed;
            }
            printed.push_str(&line);
            printed.push('\n');
        }
    }
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
