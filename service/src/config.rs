//! Configuration: a TOML file, the environment and the command line, in that order of
//! precedence (the command line wins), checked as a whole at start with every problem
//! named by its field. Secrets ([`Secret`]) never show in `Debug` output or logs.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! database_url = "postgres://postgres@127.0.0.1:5432/sequences"
//!
//! [[api_keys]]
//! tenant = "acme"
//! key = "a long random key"
//!
//! [tracking]
//! base_url = "https://t.example.com/t"
//! secret = "32 random bytes, base64 or not"
//!
//! [smtp]
//! host = "smtp.example.com"
//! port = 465
//! security = "tls"          # tls | starttls | plain (plain only with allow_plain)
//! username = "ana@example.com"
//! password = "app password"
//!
//! [smtp.mailboxes."bea@example.com"]   # a mailbox with a server of its own
//! host = "smtp.other.example"
//! security = "starttls"
//! username = "bea@example.com"
//! password = "her app password"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

/// A value that must not be shown: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself, for the one place that needs it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One tenant's API key, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The tenant's name (letters, digits, `-`, `_`).
    pub tenant: String,
    /// The key a client sends as `Authorization: Bearer <key>`.
    pub key: Secret,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// TLS from the first byte (port 465).
    Tls,
    /// STARTTLS required (port 587).
    Starttls,
    /// No encryption: only with `allow_plain`, for a relay on this machine.
    Plain,
}

/// The SMTP relay every mailbox sends through.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Server host.
    pub host: String,
    /// Server port (the security's usual port when absent).
    #[serde(default)]
    pub port: Option<u16>,
    /// How the connection is secured.
    pub security: SmtpSecurity,
    /// Allow `plain` (never for a server across a network).
    #[serde(default)]
    pub allow_plain: bool,
    /// Login, if the server wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for `username`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// `mailto:` address for `List-Unsubscribe`, if any.
    #[serde(default)]
    pub unsubscribe_mailto: Option<String>,
    /// Mailboxes with a server of their own, by sending address (case-insensitive); the
    /// others send through the relay above.
    #[serde(default)]
    pub mailboxes: BTreeMap<String, MailboxSmtpConfig>,
}

/// The SMTP server and login of one mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxSmtpConfig {
    /// Server host.
    pub host: String,
    /// Server port (the security's usual port when absent).
    #[serde(default)]
    pub port: Option<u16>,
    /// How the connection is secured.
    pub security: SmtpSecurity,
    /// Allow `plain` (never for a server across a network).
    #[serde(default)]
    pub allow_plain: bool,
    /// Login, if the server wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for `username`.
    #[serde(default)]
    pub password: Option<Secret>,
}

/// Problems of one server's settings, with `at` before each field.
fn check_server(
    at: &str,
    host: &str,
    security: SmtpSecurity,
    allow_plain: bool,
    login: (bool, bool),
    problems: &mut Vec<String>,
) {
    if host.trim().is_empty() {
        problems.push(format!("{at}.host: required"));
    }
    if security == SmtpSecurity::Plain && !allow_plain {
        problems.push(format!("{at}.security: plain needs allow_plain = true"));
    }
    if login == (false, true) {
        problems.push(format!("{at}.username: required with a password"));
    }
}

/// Open/click tracking and unsubscribe links.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingConfig {
    /// The public URL the `/t/...` routes are reached at (`https://t.example.com/t`);
    /// `http://{listen}/t` when absent.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The HMAC secret of tracking tokens (at least 16 bytes). Required with PostgreSQL;
    /// with `--memory` a random one is made at start.
    #[serde(default)]
    pub secret: Option<Secret>,
}

/// Request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// The largest request body accepted, in bytes (413 past it).
    #[serde(default = "default_body_bytes")]
    pub body_bytes: usize,
    /// How long a request may take, in seconds (503 past it).
    #[serde(default = "default_timeout_secs")]
    pub request_timeout_secs: u64,
    /// How long a client may take to send a request's head (request line and headers), in
    /// seconds, counted from when the connection opens or, on a kept-alive connection, from
    /// the end of the previous response; past it the connection is closed without an
    /// answer. It bounds how long a client that sends its head slowly (slowloris), or idles
    /// on a kept-alive connection, holds a connection.
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
}

fn default_body_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_timeout_secs() -> u64 {
    30
}
fn default_header_read_timeout_secs() -> u64 {
    10
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: default_body_bytes(),
            request_timeout_secs: default_timeout_secs(),
            header_read_timeout_secs: default_header_read_timeout_secs(),
        }
    }
}

impl Limits {
    /// The request timeout.
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// The header-read timeout.
    #[must_use]
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }
}

/// The configuration file's shape.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    memory: bool,
    #[serde(default)]
    database_url: Option<Secret>,
    #[serde(default)]
    api_keys: Vec<ApiKeyConfig>,
    #[serde(default)]
    tracking: TrackingConfig,
    #[serde(default)]
    smtp: Option<SmtpConfig>,
    #[serde(default)]
    limits: Limits,
}

/// Where the service keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// In memory: gone at exit. For a try-out.
    Memory,
    /// PostgreSQL at this URL (it may hold a password).
    Postgres(Secret),
}

/// The checked configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The store.
    pub store: StoreConfig,
    /// The tenants' API keys.
    pub api_keys: Vec<ApiKeyConfig>,
    /// Tracking links.
    pub tracking: TrackingConfig,
    /// The SMTP relay; `None` logs each message instead of sending it (`--memory` only).
    pub smtp: Option<SmtpConfig>,
    /// Request limits.
    pub limits: Limits,
}

/// The command line (each option also read from the environment variable it names).
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "sequence_service",
    version,
    about = "The sequence engine's REST service"
)]
pub struct Cli {
    /// A TOML configuration file.
    #[arg(long, env = "SEQUENCE_SERVICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Keep everything in memory (a try-out; nothing survives a restart).
    #[arg(long)]
    pub memory: bool,
    /// The PostgreSQL URL. (Not read from a plain `DATABASE_URL`, which tools and CI set for
    /// their own databases.)
    #[arg(long, env = "SEQUENCE_SERVICE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The address to listen on, e.g. `127.0.0.1:8080`.
    #[arg(long, env = "SEQUENCE_SERVICE_LISTEN")]
    pub listen: Option<String>,
    /// A tenant's API key as `TENANT=KEY` (repeatable; in the environment, comma-separated).
    #[arg(
        long = "api-key",
        value_name = "TENANT=KEY",
        env = "SEQUENCE_SERVICE_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,
    /// The tracking links' HMAC secret (at least 16 bytes).
    #[arg(long, env = "SEQUENCE_SERVICE_TRACKING_SECRET", hide_env_values = true)]
    pub tracking_secret: Option<String>,
    /// The public base URL of the tracking routes, e.g. `https://t.example.com/t`.
    #[arg(long, env = "SEQUENCE_SERVICE_TRACKING_URL")]
    pub tracking_url: Option<String>,
    /// The SMTP relay's host (replaces the file's `[smtp]` relay, keeping its mailboxes).
    #[arg(long, env = "SEQUENCE_SERVICE_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// The SMTP relay's port.
    #[arg(long, env = "SEQUENCE_SERVICE_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    /// `tls`, `starttls` or `plain` (`plain` only for a relay on this machine).
    #[arg(long, env = "SEQUENCE_SERVICE_SMTP_SECURITY", default_value = "tls")]
    pub smtp_security: String,
    /// The SMTP login.
    #[arg(long, env = "SEQUENCE_SERVICE_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    /// The SMTP password.
    #[arg(long, env = "SEQUENCE_SERVICE_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<String>,
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML of the right shape.
    #[error("the configuration file {path} is invalid: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// Values are missing or wrong; every problem is listed with its field.
    #[error("invalid configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl Config {
    /// The configuration from `cli`, the environment variables `cli` read, and the file it
    /// names, checked.
    ///
    /// # Errors
    /// The file cannot be read or parsed, or values are missing or wrong.
    pub fn load(cli: &Cli) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source: Box::new(source),
                })?
            }
            None => FileConfig::default(),
        };
        Self::merge(cli, file)
    }

    fn merge(cli: &Cli, file: FileConfig) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let listen_text = cli
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|e| {
            problems.push(format!("listen: {listen_text:?} is not an address ({e})"));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        let database_url = cli.database_url.clone().map(Secret).or(file.database_url);
        let store = match (cli.memory || file.memory, database_url) {
            (true, None) => StoreConfig::Memory,
            (false, Some(url)) => StoreConfig::Postgres(url),
            (true, Some(_)) => {
                problems.push("memory: --memory and a database URL exclude each other".into());
                StoreConfig::Memory
            }
            (false, None) => {
                problems.push(
                    "database_url: give --database-url (or SEQUENCE_SERVICE_DATABASE_URL), or \
                     --memory for a try-out"
                        .into(),
                );
                StoreConfig::Memory
            }
        };
        let mut api_keys = file.api_keys;
        for (i, pair) in cli.api_keys.iter().enumerate() {
            match pair.split_once('=') {
                Some((tenant, key)) => api_keys.push(ApiKeyConfig {
                    tenant: tenant.trim().to_owned(),
                    key: Secret(key.to_owned()),
                }),
                None => problems.push(format!("api_key[{i}]: expected TENANT=KEY")),
            }
        }
        check_keys(&api_keys, &mut problems);
        let mut tracking = file.tracking;
        if let Some(secret) = &cli.tracking_secret {
            tracking.secret = Some(Secret(secret.clone()));
        }
        if let Some(url) = &cli.tracking_url {
            tracking.base_url = Some(url.clone());
        }
        if tracking.secret.as_ref().is_some_and(|s| s.0.len() < 16) {
            problems.push("tracking.secret: must be at least 16 bytes".into());
        }
        let smtp = relay_from_cli(cli, file.smtp, &mut problems);
        let postgres = matches!(store, StoreConfig::Postgres(_));
        if postgres && tracking.secret.is_none() {
            problems.push(
                "tracking.secret: required with PostgreSQL, so that links in sent mail keep \
                 working after a restart"
                    .into(),
            );
        }
        if postgres && smtp.is_none() {
            problems.push("smtp: required with PostgreSQL (only --memory logs mail)".into());
        }
        if let Some(smtp) = &smtp {
            check_server(
                "smtp",
                &smtp.host,
                smtp.security,
                smtp.allow_plain,
                (smtp.username.is_some(), smtp.password.is_some()),
                &mut problems,
            );
            for (address, m) in &smtp.mailboxes {
                let at = format!("smtp.mailboxes.{address:?}");
                if !address.contains('@') {
                    problems.push(format!("{at}: the key must be the mailbox's address"));
                }
                check_server(
                    &at,
                    &m.host,
                    m.security,
                    m.allow_plain,
                    (m.username.is_some(), m.password.is_some()),
                    &mut problems,
                );
            }
        }
        if file.limits.body_bytes < 1024 {
            problems.push("limits.body_bytes: at least 1024".into());
        }
        if file.limits.request_timeout_secs == 0 {
            problems.push("limits.request_timeout_secs: at least 1".into());
        }
        if file.limits.header_read_timeout_secs == 0 {
            problems.push("limits.header_read_timeout_secs: at least 1".into());
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        Ok(Self {
            listen,
            store,
            api_keys,
            tracking,
            smtp,
            limits: file.limits,
        })
    }
}

/// The file's SMTP settings, with the relay of the command line or environment instead of
/// the file's when `--smtp-host` is given.
fn relay_from_cli(
    cli: &Cli,
    file: Option<SmtpConfig>,
    problems: &mut Vec<String>,
) -> Option<SmtpConfig> {
    let Some(host) = &cli.smtp_host else {
        return file;
    };
    let security = match cli.smtp_security.to_ascii_lowercase().as_str() {
        "tls" => SmtpSecurity::Tls,
        "starttls" => SmtpSecurity::Starttls,
        "plain" => SmtpSecurity::Plain,
        other => {
            problems.push(format!(
                "smtp.security: {other:?} is not tls, starttls or plain"
            ));
            SmtpSecurity::Tls
        }
    };
    let (unsubscribe_mailto, mailboxes) = file
        .map(|f| (f.unsubscribe_mailto, f.mailboxes))
        .unwrap_or_default();
    Some(SmtpConfig {
        host: host.clone(),
        port: cli.smtp_port,
        security,
        // Asked for on the command line: plain is what the operator chose there.
        allow_plain: security == SmtpSecurity::Plain,
        username: cli.smtp_username.clone(),
        password: cli.smtp_password.clone().map(Secret),
        unsubscribe_mailto,
        mailboxes,
    })
}

fn check_keys(keys: &[ApiKeyConfig], problems: &mut Vec<String>) {
    if keys.is_empty() {
        problems.push("api_keys: at least one (--api-key TENANT=KEY)".into());
    }
    let mut seen = std::collections::HashSet::new();
    for (i, k) in keys.iter().enumerate() {
        let name_ok = !k.tenant.is_empty()
            && k.tenant.len() <= 64
            && k.tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            problems.push(format!(
                "api_keys[{i}].tenant: {:?} must be 1-64 letters, digits, '-' or '_'",
                k.tenant
            ));
        }
        if k.key.0.trim().is_empty() {
            problems.push(format!("api_keys[{i}].key: must not be empty"));
        }
        if !seen.insert(&k.key.0) {
            problems.push(format!("api_keys[{i}].key: the same key is given twice"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["sequence_service"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    #[test]
    fn the_command_line_alone_is_enough_for_a_try_out() {
        let c = Config::merge(
            &cli(&[
                "--memory",
                "--listen",
                "127.0.0.1:9",
                "--api-key",
                "acme=KEY1",
            ]),
            FileConfig::default(),
        )
        .unwrap();
        assert_eq!(c.store, StoreConfig::Memory);
        assert_eq!(c.listen.port(), 9);
        assert_eq!(c.api_keys[0].tenant, "acme");
        // The key never shows.
        assert!(!format!("{c:?}").contains("KEY1"));
    }

    #[test]
    fn every_problem_is_named() {
        let err = Config::merge(
            &cli(&[
                "--listen",
                "nowhere",
                "--api-key",
                "bad name=k",
                "--api-key",
                "x",
            ]),
            FileConfig::default(),
        )
        .unwrap_err()
        .to_string();
        for field in ["listen", "database_url", "api_keys[0].tenant", "api_key[1]"] {
            assert!(err.contains(field), "{field} in {err}");
        }
        let err = Config::merge(
            &cli(&[
                "--database-url",
                "postgres://u:hunter2@h/db",
                "--api-key",
                "a=k",
            ]),
            FileConfig::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("tracking.secret") && err.contains("smtp"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn the_smtp_relay_can_come_from_the_command_line() {
        let c = Config::merge(
            &cli(&[
                "--database-url",
                "postgres://h/db",
                "--api-key",
                "a=k",
                "--tracking-secret",
                "sixteen bytes or more",
                "--smtp-host",
                "relay.example",
                "--smtp-security",
                "starttls",
                "--smtp-username",
                "u",
                "--smtp-password",
                "p4ss",
            ]),
            FileConfig::default(),
        )
        .unwrap();
        let smtp = c.smtp.as_ref().unwrap();
        assert_eq!(
            (smtp.host.as_str(), smtp.security),
            ("relay.example", SmtpSecurity::Starttls)
        );
        assert!(!format!("{c:?}").contains("p4ss"));
        let err = Config::merge(
            &cli(&[
                "--memory",
                "--api-key",
                "a=k",
                "--smtp-host",
                "h",
                "--smtp-security",
                "rot13",
            ]),
            FileConfig::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("smtp.security"), "{err}");
    }

    #[test]
    fn a_file_is_read_and_the_command_line_wins() {
        let file: FileConfig = toml::from_str(
            r#"
            listen = "127.0.0.1:1"
            memory = true
            [[api_keys]]
            tenant = "acme"
            key = "file-key"
            [smtp]
            host = "127.0.0.1"
            port = 2525
            security = "plain"
            allow_plain = true
            "#,
        )
        .unwrap();
        let c = Config::merge(&cli(&["--listen", "127.0.0.1:2"]), file).unwrap();
        assert_eq!(c.listen.port(), 2);
        assert_eq!(c.smtp.as_ref().map(|s| s.port), Some(Some(2525)));
        assert!(toml::from_str::<FileConfig>("lisen = 1").is_err());
        let file: FileConfig = toml::from_str(
            r#"
            memory = true
            [[api_keys]]
            tenant = "acme"
            key = "k"
            [smtp]
            host = "relay.example"
            security = "tls"
            [smtp.mailboxes."bea@x.example"]
            host = "own.example"
            security = "plain"
            password = "her-secret"
            "#,
        )
        .unwrap();
        let err = Config::merge(&cli(&[]), file).unwrap_err().to_string();
        for field in [
            "smtp.mailboxes.\"bea@x.example\".security",
            "smtp.mailboxes.\"bea@x.example\".username",
        ] {
            assert!(err.contains(field), "{field} in {err}");
        }
        assert!(!err.contains("her-secret"), "{err}");
    }

    #[test]
    fn the_limits_have_defaults_and_are_checked() {
        let file: FileConfig =
            toml::from_str("memory = true\n[limits]\nbody_bytes = 2048").unwrap();
        let c = Config::merge(&cli(&["--api-key", "a=k"]), file).unwrap();
        assert_eq!(
            (c.limits.body_bytes, c.limits.request_timeout().as_secs()),
            (2048, 30)
        );
        assert_eq!(c.limits.header_read_timeout(), Duration::from_secs(10));
        let file: FileConfig = toml::from_str(
            "memory = true\n[limits]\nrequest_timeout_secs = 0\nheader_read_timeout_secs = 0",
        )
        .unwrap();
        let err = Config::merge(&cli(&["--api-key", "a=k"]), file)
            .unwrap_err()
            .to_string();
        for field in [
            "limits.request_timeout_secs",
            "limits.header_read_timeout_secs",
        ] {
            assert!(err.contains(field), "{field} in {err}");
        }
    }
}
