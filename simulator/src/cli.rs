//! The command line of `simulate`:
//!
//! ```text
//! simulate --scenario PATH.json --out DIR [--backend memory|postgres] [--database-url URL]
//!          [--check] [--quiet]
//! ```
//!
//! Exit codes: 0 on success; 2 on an invalid scenario (one line per problem on stderr, no
//! output files); 1 when the run itself fails or, with `--check`, breaks a rule.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::simulate::{Backend, Options, Progress};
use crate::{check, report, scenario, simulate};

/// The store a simulation runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// The in-memory store.
    Memory,
    /// PostgreSQL (a fresh schema per run).
    Postgres,
}

/// `simulate`: run a scenario through the real engine in virtual time.
#[derive(Debug, Parser)]
#[command(name = "simulate", version, about)]
pub struct Args {
    /// The scenario file (JSON, see shared/scenario-format.md).
    #[arg(long, value_name = "PATH.json")]
    pub scenario: PathBuf,
    /// Where to write sends.jsonl, summary.json, forecast.txt and volume.svg.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The store to run on.
    #[arg(long, value_enum, default_value = "memory")]
    pub backend: BackendArg,
    /// The PostgreSQL server, for `--backend postgres` (default: $DATABASE_URL).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Check the rules on the run before writing it; exit 1 when one is broken.
    #[arg(long)]
    pub check: bool,
    /// No progress on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the run failed or broke a rule.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: the scenario (or the command line) is invalid.
pub const EXIT_INVALID: u8 = 2;

/// Run `simulate` with `args` (the program name first), writing messages to `stderr`.
/// Returns the exit code. Builds its own runtime: call it outside one.
pub fn main_with(args: impl IntoIterator<Item = OsString>, stderr: &mut dyn Write) -> u8 {
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = write!(stderr, "{e}");
            return if e.use_stderr() {
                EXIT_INVALID
            } else {
                EXIT_OK
            };
        }
    };
    let text = match std::fs::read_to_string(&args.scenario) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(stderr, "$: cannot read {}: {e}", args.scenario.display());
            return EXIT_INVALID;
        }
    };
    let scenario = match scenario::parse(&text) {
        Ok(s) => s,
        Err(invalid) => {
            // `path: reason`, one line each.
            for p in &invalid.problems {
                let _ = writeln!(stderr, "{p}");
            }
            return EXIT_INVALID;
        }
    };
    let backend = match args.backend {
        BackendArg::Memory => Backend::Memory,
        BackendArg::Postgres => Backend::Postgres(
            args.database_url
                .clone()
                .or_else(|| std::env::var("DATABASE_URL").ok())
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned()),
        ),
    };
    let progress = if args.quiet {
        Progress::Quiet
    } else {
        Progress::Stderr
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(stderr, "simulate: cannot start the runtime: {e}");
            return EXIT_FAILED;
        }
    };
    let options = Options::default().backend(backend).progress(progress);
    let run = match runtime.block_on(simulate::run(&scenario, &options)) {
        Ok(run) => run,
        Err(e) => {
            let _ = writeln!(stderr, "simulate: {e}");
            return EXIT_FAILED;
        }
    };
    if args.check {
        let problems = check::check(&scenario, &run);
        if !problems.is_empty() {
            for p in &problems {
                let _ = writeln!(stderr, "{p}");
            }
            let _ = writeln!(stderr, "simulate: {} rule violations", problems.len());
            return EXIT_FAILED;
        }
    }
    if let Err(e) = report::write_all(&args.out, &scenario, &run) {
        let _ = writeln!(stderr, "simulate: {e}");
        return EXIT_FAILED;
    }
    if !args.quiet {
        let _ = writeln!(
            stderr,
            "simulate: {} attempts, {} enrollments, {:.2} s wall; wrote {}",
            run.attempts.len(),
            run.summary.enrollments.len(),
            run.summary.wall_seconds,
            args.out.display()
        );
    }
    EXIT_OK
}
