//! The runtime side of CNI: finding the network configuration and plugins,
//! and running them.

mod config;
mod invoke;

pub use config::{CniConfigError, NetworkConfigList, find_plugin, load_network};
pub use invoke::{Attachment, Cni, CniError, IFNAME, result_ips};
