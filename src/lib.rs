//! source-aws-billing: yesterday's AWS cost per service, delivered daily as CloudEvents.

pub mod answer;
pub mod bounds;
pub mod breakdown;
pub mod cli;
pub mod config;
pub mod costexplorer;
pub mod credentials;
pub mod decimal;
pub mod deliver;
pub mod event;
mod event_de;
pub mod http;
pub mod log;
pub mod pull;
pub mod retry;
pub mod revise;
pub mod revise_cmd;
pub mod schedule;
pub mod service;
pub mod sign;
pub mod signal;
pub mod snapshot;
pub mod spend;
pub mod state;
pub mod status;
pub mod summary;
pub mod urls;
