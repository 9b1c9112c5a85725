//! The `osum` command line: parse, apply the global options (threads, profiler), run the
//! subcommand (code in `cli/`), and always finish the profile, on success and on error.
//! Exit codes: 0 ok, 1 the command failed on its input, 2 usage error (from clap).

mod cli;

use clap::Parser;
use osum::engine::profiler;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before the first tensor: freed activation buffers stay in the heap for reuse.
    osum::engine::cpu::heap::keep_freed_buffers();
    let args = cli::Cli::parse();
    if let Err(e) = args.validate() {
        e.exit();
    }
    // Before anything creates a device: the profiler wraps devices only from then on.
    if let Some(path) = &args.profile {
        if !profiler::enable(path) {
            eprintln!("error: the profiler was already configured before --profile was read");
            return ExitCode::from(2);
        }
    }
    if let Some(n) = args.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("error: cannot set {n} threads: {e}");
            return ExitCode::from(2);
        }
    }
    let mut code = match cli::run(args.command, &args.device) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    };
    if let Err(e) = profiler::finish() {
        eprintln!("error: {e}");
        code = ExitCode::from(1);
    }
    code
}
