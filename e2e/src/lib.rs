//! Harness for end-to-end tests; see `Daemon`.
