//! `doctor`, and the subcommands that fit credlock into the tools people already use: `exec`, the git and
//! docker credential helpers and their URL mappings, JSON output and `status`, shell
//! completions and the man page.

pub mod docker;
pub mod doctor;
pub mod exec;
pub mod generate;
pub mod git;
pub mod helper_map;
pub mod list;
pub mod login;
pub mod maintenance;
pub mod migrate;
pub mod status;
