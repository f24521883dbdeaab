//! The runtime side of CNI: finding the network configuration and plugins.

mod config;

pub use config::{CniConfigError, NetworkConfigList, find_plugin, load_network};
