//! The websocket under the Noise pipe: TCP, an optional proxy tunnel, TLS for `wss://`,
//! the HTTP upgrade, then binary messages in both directions.

mod proxy;
mod ws;

pub use proxy::Proxy;
pub use ws::{WsConnector, WsReader, WsUrl, WsWriter};
