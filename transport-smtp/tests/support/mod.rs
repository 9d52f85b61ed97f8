//! Test support: the loopback SMTP server (`tests/smtp_server.py`, Python's aiosmtpd) as a
//! child process, killed on drop, and what it received.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

const HINT: &str = "the SMTP tests need Python 3 with aiosmtpd: apt-get install python3-aiosmtpd \
                    (or set SMTP_TEST_PYTHON to a python that has it)";

/// A python interpreter that can import aiosmtpd.
fn python() -> &'static str {
    static PYTHON: OnceLock<Option<String>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| {
        let candidates = std::env::var("SMTP_TEST_PYTHON")
            .ok()
            .into_iter()
            .chain(["/usr/bin/python3".to_owned(), "python3".to_owned()]);
        candidates.into_iter().find(|python| {
            Command::new(python)
                .args(["-c", "import aiosmtpd"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    });
    match found {
        Some(python) => python,
        None => panic!("{HINT}"),
    }
}

/// What the server received.
#[derive(Debug)]
pub struct Received {
    pub peer: Value,
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub data: Vec<u8>,
    pub tls: bool,
    pub auth_user: Option<String>,
}

/// A running test server.
pub struct Server {
    child: Child,
    pub port: u16,
    events: Receiver<Value>,
}

impl Server {
    /// Start `tests/smtp_server.py` with `args` and wait until it listens.
    pub fn start(args: &[&str]) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_server.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {script}: {e}; {HINT}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(e) => eprintln!("smtp_server.py printed {line:?}: {e}"),
                }
            }
        });
        let mut server = Self {
            child,
            port: 0,
            events,
        };
        match server.events.recv_timeout(Duration::from_secs(30)) {
            Ok(v) if v["event"] == "ready" => {
                server.port = v["port"].as_u64().expect("port") as u16;
            }
            Ok(v) => panic!("unexpected first event {v}"),
            Err(e) => {
                let status = server.child.try_wait();
                panic!("smtp_server.py did not start ({e}, exit {status:?}); {HINT}");
            }
        }
        server
    }

    /// The next message the server received (waits up to 15 s).
    pub fn next_message(&self) -> Received {
        let v = self
            .events
            .recv_timeout(Duration::from_secs(15))
            .expect("the server received no message");
        assert_eq!(v["event"], "message", "{v}");
        Received {
            peer: v["peer"].clone(),
            mail_from: v["mail_from"].as_str().unwrap_or_default().to_owned(),
            rcpt_tos: v["rcpt_tos"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            data: base64::engine::general_purpose::STANDARD
                .decode(v["data"].as_str().unwrap_or_default())
                .expect("base64 data"),
            tls: v["tls"].as_bool().unwrap_or(false),
            auth_user: v["auth_user"].as_str().map(str::to_owned),
        }
    }

    /// Check that no message arrives within `within`.
    pub fn assert_no_message(&self, within: Duration) {
        match self.events.recv_timeout(within) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(v) => panic!("unexpected event {v}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the server stopped"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed certificate for `localhost`, written to files: (cert PEM, cert path, key
/// path). The files are removed when the returned guard drops.
pub struct TestCert {
    pub pem: String,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl TestCert {
    pub fn localhost() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("generate certificate");
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir();
        let stem = format!("transport-smtp-test-{}-{n}", std::process::id());
        let cert_path = dir.join(format!("{stem}.crt"));
        let key_path = dir.join(format!("{stem}.key"));
        let pem = certified.cert.pem();
        std::fs::write(&cert_path, &pem).expect("write cert");
        std::fs::write(&key_path, certified.key_pair.serialize_pem()).expect("write key");
        Self {
            pem,
            cert_path,
            key_path,
        }
    }

    pub fn args(&self, flag: &'static str) -> Vec<String> {
        vec![
            flag.to_owned(),
            self.cert_path.display().to_string(),
            self.key_path.display().to_string(),
        ]
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.cert_path);
        let _ = std::fs::remove_file(&self.key_path);
    }
}
