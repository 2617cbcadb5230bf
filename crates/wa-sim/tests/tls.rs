//! `wss://`: the same protocol over TLS.

mod common;

use std::sync::Arc;

use common::*;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use wa_sim::{Sim, SimConfig};

#[tokio::test]
async fn registration_over_tls() {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let sim = Sim::start(SimConfig {
        tls: Some(Arc::new(server)),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert!(sim.ws_url().starts_with("wss://127.0.0.1:"));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));

    let creds = Creds::new();
    let mut c = Client::connect_with(
        &sim.ws_url(),
        sim.root_public_key(),
        &creds.noise,
        &creds.registration_payload(),
        None,
        Some(&connector),
    )
    .await
    .unwrap();
    let pd = c.next().await.unwrap();
    assert_eq!(refs(&pd).len(), 6);
}
