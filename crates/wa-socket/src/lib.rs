#![doc = include_str!("../README.md")]

mod backoff;
mod dispatch;
mod error;
mod stream_error;
mod transport;

pub use backoff::Backoff;
pub use dispatch::{Dispatched, Dispatcher, Filter};
pub use error::Error;
pub use stream_error::disconnect_reason;
pub use transport::{Proxy, WsConnector, WsReader, WsUrl, WsWriter};
