//! Automation layer: resticprofile-compatible profile files, option routing, hooks, secrets,
//! monitors (Healthchecks, HTTP hooks, status file, Prometheus), local locks, schedules and the
//! run flow that ties a profile run together. The engine is reached through
//! [`run::Engine`], implemented by the binary, so this crate does not depend on it.

pub mod config;
pub mod dotenv;
pub mod gates;
pub mod hooks;
pub mod locks;
pub mod monitor;
pub mod options;
pub mod output;
pub mod run;
pub mod schedule;
pub mod secrets;
pub mod types;
