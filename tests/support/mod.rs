//! Shared by the integration tests and the demo: a fake Cost Explorer, a fake receiver, and a runner for the built binary.
#![allow(dead_code, unused_imports)]

pub mod cost_explorer;
pub mod http;
pub mod receiver;
pub mod runner;

use std::thread;
use std::time::{Duration, Instant};

pub use cost_explorer::{CeOptions, FakeCostExplorer, Line};
pub use receiver::{Event, FakeReceiver, Mode, Received, Reply};
pub use runner::{Cmd, Finished, Running, Sandbox};

/// The access key id every test secret uses and the fake Cost Explorer expects.
pub const ACCESS_KEY_ID: &str = "AKIDFAKEEXAMPLE12345";
/// Never allowed in any output (the runner checks every run).
pub const SECRET_ACCESS_KEY: &str = "fakeSecret/DoNotPrint+wJalrXUtnFEMIK7MDENGbPxRfiCY";
pub const SESSION_TOKEN: &str = "FakeSessionToken/DoNotPrint+IQoJb3JpZ2luX2VjEJr==";

/// Poll `condition` until it holds or `within` has passed; true if it held.
pub fn wait_until(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}
