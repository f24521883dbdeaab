//! Pod sandboxes: pinned network/IPC/UTS namespaces, the CNI invoker and the
//! sandbox store.

pub mod cni;
