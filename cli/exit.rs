//! How the `osum` process ends: its exit codes, a panic hook that turns a bug into one clear
//! "internal error" line and the internal exit code, and the default SIGPIPE action so that
//! `osum ... | head` ends quietly instead of failing on a closed stdout.

use std::process::ExitCode;

/// The command did what was asked.
pub const OK: u8 = 0;
/// The command failed on its input (a missing or malformed file, a bad value): the message says
/// which and what was expected.
pub const INPUT: u8 = 1;
/// The command line itself is wrong (clap's usage errors use this code too).
pub const USAGE: u8 = 2;
/// A bug in osum (a panic): never the user's fault, and reported as such.
pub const INTERNAL: u8 = 3;

/// An [`ExitCode`] from one of the codes above.
pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}

/// Replace the default panic report (a "thread panicked" line and a backtrace hint) by one
/// line that says this is an internal error, where it happened and what to do, then exit with
/// [`INTERNAL`] at once: a panic in a worker thread must not leave the process half alive.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let what = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "unknown cause".to_string()
        };
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "internal error (a bug in osum, not in your input; please report it): {what}{at}"
        );
        std::process::exit(INTERNAL as i32);
    }));
}

/// Restore the default action of SIGPIPE (end the process), which the Rust runtime sets to
/// "ignore": otherwise every `println!` into a closed pipe would be a panic.
pub fn restore_sigpipe() {
    #[cfg(unix)]
    {
        use std::os::raw::c_int;
        extern "C" {
            fn signal(signum: c_int, handler: usize) -> usize;
        }
        // POSIX: SIGPIPE is 13 on Linux and the BSDs; SIG_DFL is the null handler.
        const SIGPIPE: c_int = 13;
        const SIG_DFL: usize = 0;
        // SAFETY: setting a signal's disposition to the default action installs no Rust code
        // as a handler; it runs before any other thread exists.
        unsafe {
            signal(SIGPIPE, SIG_DFL);
        }
    }
}
