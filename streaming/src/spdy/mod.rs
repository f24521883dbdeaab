//! A focused SPDY/3.1 implementation: what Kubernetes' `httpstream/spdy`
//! needs from both ends of a connection, and no more (no server push, no
//! priorities, no credential frames).

pub mod compress;
pub mod conn;
pub mod frame;

pub use compress::Headers;
pub use conn::{Connection, Incoming, Options, Role, Stream};
pub use frame::{Frame, FrameError, parse};
