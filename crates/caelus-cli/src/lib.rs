//! The `caelus` binary as a library, so tests can inspect its commands.

pub mod certify_commands;
pub mod chart_push;
pub mod cli;
pub mod client;
pub mod client_commands;
pub mod config;
pub mod dev_catalog;
pub mod jsonpath;
pub mod ops;
pub mod orphan_commands;
pub mod output;
pub mod processes;
