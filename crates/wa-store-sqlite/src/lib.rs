#![doc = include_str!("../README.md")]

mod backend;

pub use backend::{MAX_READERS, SqliteBackend, SqliteConfig, Synchronous};
