//! `simulate`: run a scenario through the real engine in virtual time. See
//! [`sequence_simulator::cli`] for the flags and `shared/scenario-format.md` for the file.

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = sequence_simulator::cli::main_with(std::env::args_os(), &mut std::io::stderr());
    ExitCode::from(code)
}
