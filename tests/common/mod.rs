//! Shared support code for vmguard's integration tests.
//!
//! Use it from a test file with `mod common;` and `use common::Ovs;`.
//! Every test file compiles this module separately and uses only part of it,
//! hence the module-wide `dead_code` allowance.
#![allow(dead_code)]

pub mod cli;
pub mod counters;
pub mod ovs;
mod pcap;

#[allow(unused_imports)]
pub use ovs::{datapath_actions, Ovs};
