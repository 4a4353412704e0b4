//! The `dsm-client` binary's own parts: its command line ([`args`]) and the interactive REPL
//! ([`editor`]), and `top` ([`top`]); the commands themselves run in the library's [`dsm_client::repl::Shell`].

pub mod args;
pub mod editor;
pub mod top;
