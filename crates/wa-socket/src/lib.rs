#![doc = include_str!("../README.md")]

mod error;
mod transport;

pub use error::Error;
pub use transport::{Proxy, WsConnector, WsReader, WsUrl, WsWriter};
