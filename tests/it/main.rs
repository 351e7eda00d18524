//! The integration tests as one binary, as ripgrep and cargo build theirs: each module runs
//! the built binary against the fakes in tests/support for one behaviour, and `layering`
//! reads src/ to keep its floors. The tests that need root, podman or qemu are binaries of
//! their own: tests/image.rs and tests/scratch.rs.

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod breakdown;
mod config;
mod credentials;
mod damage;
mod deliver;
mod demo;
mod eventbridge;
mod fakes;
mod hostile_peers;
mod ids;
mod layering;
mod ledger;
mod lying_answers;
mod manifest;
mod network;
mod no_panic;
mod pull;
mod refusals;
mod reliability;
mod revise;
mod state_records;
mod status;
mod stop_signals;
