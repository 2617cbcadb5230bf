//! The handful of protobuf messages the handshake exchanges, declared locally with prost
//! until the generated `wa-proto` types are available. Field numbers follow the
//! `HandshakeMessage` and `CertChain` schemas (proto2, every field optional).

/// `HandshakeMessage`: exactly one of the three parts is set per message.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HandshakeMessage {
    #[prost(message, optional, tag = "2")]
    pub(crate) client_hello: Option<Hello>,
    #[prost(message, optional, tag = "3")]
    pub(crate) server_hello: Option<Hello>,
    #[prost(message, optional, tag = "4")]
    pub(crate) client_finish: Option<ClientFinish>,
}

/// `ClientHello` and `ServerHello` share their first three fields.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Hello {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub(crate) ephemeral: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub(crate) r#static: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub(crate) payload: Option<Vec<u8>>,
}

/// `HandshakeMessage.ClientFinish`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ClientFinish {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub(crate) r#static: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub(crate) payload: Option<Vec<u8>>,
}

/// `CertChain`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CertChain {
    #[prost(message, optional, tag = "1")]
    pub(crate) leaf: Option<NoiseCertificate>,
    #[prost(message, optional, tag = "2")]
    pub(crate) intermediate: Option<NoiseCertificate>,
}

/// `CertChain.NoiseCertificate`: `details` is an encoded [`Details`], signed as raw bytes.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct NoiseCertificate {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub(crate) details: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub(crate) signature: Option<Vec<u8>>,
}

/// `CertChain.NoiseCertificate.Details`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Details {
    #[prost(uint32, optional, tag = "1")]
    pub(crate) serial: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pub(crate) issuer_serial: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub(crate) key: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "4")]
    pub(crate) not_before: Option<u64>,
    #[prost(uint64, optional, tag = "5")]
    pub(crate) not_after: Option<u64>,
}
