//! Shell completions and the man page, generated from the clap definition of the CLI, so
//! they cannot drift from it: `credlock completions bash|zsh|fish` and `credlock man`
//! print them on standard output; `credlock man --dir DIR` writes a page per
//! subcommand (README, "Shell completions and man page").

use crate::Failure;
use std::io::Write;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

pub fn completions(mut cli: clap::Command, shell: Shell) -> Result<(), Failure> {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    // Into memory first: clap_complete panics on a write error (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cli, "credlock", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .map_err(|e| crate::usage(format!("cannot write the completions: {e}")))
}

/// The man page on standard output, or with `dir` one page per command written there
/// (`credlock.1`, `credlock-exec.1`, `credlock-helper-map.1`, ...).
pub fn man(cli: clap::Command, dir: Option<&std::path::Path>) -> Result<(), Failure> {
    if let Some(dir) = dir {
        return clap_mangen::generate_to(cli, dir).map_err(|e| Failure {
            code: credlock_core::error::exit::IO,
            message: format!("cannot write the man pages to {}: {e}", dir.display()),
            hint: None,
        });
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(cli)
        .render(&mut page)
        .map_err(|e| crate::usage(format!("cannot render the man page: {e}")))?;
    let mut out = std::io::stdout().lock();
    out.write_all(&page)
        .and_then(|()| out.flush())
        .map_err(|e| crate::usage(format!("cannot write the man page: {e}")))
}
