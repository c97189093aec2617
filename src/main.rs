//! The `dspm-audit` binary: parse arguments, run one mode, exit.

use dspm_audit::cli;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match cli::parse(&args) {
        Ok(command) => cli::run(command),
        Err(message) => {
            eprintln!("dspm-audit: {message}\n\n{}", cli::USAGE);
            cli::EXIT_FAILED
        }
    };
    std::process::exit(code);
}
