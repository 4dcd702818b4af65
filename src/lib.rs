//! vmguard: compiles libvirt domains' owned addresses into OpenFlow guard flows for Open vSwitch.
pub mod battery;
pub mod compile;
pub mod config;
pub mod domain;
pub mod engine;
pub mod flow;
pub mod frames;
pub mod model;
pub mod openflow;
pub mod ovs;
pub mod pipeline;
pub mod provision;
