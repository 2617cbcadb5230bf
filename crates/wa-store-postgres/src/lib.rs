#![doc = include_str!("../README.md")]

mod backend;
mod lease;

pub use backend::{PostgresBackend, PostgresConfig};
pub use lease::AccountLease;
