//! source-aws-billing: yesterday's AWS cost per service, delivered daily as CloudEvents.

pub mod cli;
pub mod config;
pub mod costexplorer;
pub mod deliver;
pub mod event;
pub mod http;
pub mod log;
pub mod pull;
pub mod retry;
pub mod schedule;
pub mod service;
pub mod sign;
pub mod signal;
pub mod spend;
pub mod state;
pub mod status;
