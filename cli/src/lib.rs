//! Command-line plumbing shared by the dsm binaries: typed getopts values and usage errors
//! ([`Cli`]), `ADDR[,ADDR...]` lists ([`addr`]) and logging to stderr ([`log_setup`]).

pub mod addr;
mod cli;
pub mod log_setup;
pub use cli::{fail_text, print_or_exit, Cli, VERSION};
