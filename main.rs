//! The `osum` command line: parse, apply the global options (threads, profiler, memory budget),
//! run the subcommand (code in `cli/`), and always finish the profile, on success and on error.
//! Exit codes (`cli/exit.rs`): 0 ok, 1 the command failed on its input, 2 usage error (from
//! clap), 3 internal error (a bug: a panic, reported in one line).

mod cli;

use clap::Parser;
use cli::exit;
use osum::engine::profiler;
use std::process::ExitCode;

fn main() -> ExitCode {
    exit::restore_sigpipe();
    exit::install_panic_hook();
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
            return exit::code(exit::USAGE);
        }
    }
    if let Some(n) = args.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("error: cannot set {n} threads: {e}");
            return exit::code(exit::USAGE);
        }
    }
    osum::model::weights::budget::set_limit(args.max_memory);
    osum::model::weights::finite::set_enabled(args.check_weights);
    let mut code = match cli::run(args.command, &args.device) {
        Ok(()) => exit::code(exit::OK),
        Err(e) => {
            eprintln!("error: {e}");
            exit::code(exit::INPUT)
        }
    };
    if let Err(e) = profiler::finish() {
        eprintln!("error: {e}");
        code = exit::code(exit::INPUT);
    }
    code
}
