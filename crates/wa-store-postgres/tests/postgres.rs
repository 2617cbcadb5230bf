//! PostgreSQL-specific behaviour: migrations, schema version, a row damaged in the database.

mod common;

use std::sync::Arc;

use wa_store::{AccountStore, AuthCreds, CredsStore, Error, SessionStore};
use wa_store_postgres::PostgresBackend;

#[tokio::test]
async fn migrations_are_idempotent_across_workers() {
    let Some(url) = common::url() else { return };
    let (a, b) = tokio::join!(
        PostgresBackend::connect(&url),
        PostgresBackend::connect(&url)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.schema_version().await.unwrap(), 1);
    assert_eq!(b.schema_version().await.unwrap(), 1);
}

#[tokio::test]
async fn row_damaged_in_the_database_is_a_typed_error_for_that_row_only() {
    let Some(url) = common::url() else { return };
    let backend = PostgresBackend::connect(&url).await.unwrap();
    let s = AccountStore::new(Arc::new(backend), wa_store::testing::fresh_account());
    s.save_creds(&AuthCreds::generate(&mut rand_core::OsRng))
        .await
        .unwrap();
    for d in 0..4 {
        s.put_session("u", d, format!("session {d}").as_bytes())
            .await
            .unwrap();
    }
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let n = client
        .execute(
            "UPDATE wa_items SET value = '\\x01deadbeef00'::bytea \
             WHERE account = $1 AND scope = 'u' AND key = '2'",
            &[&s.account().as_str()],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(matches!(
        s.get_session("u", 2).await,
        Err(Error::Corrupt { key, .. }) if key == "2"
    ));
    for d in [0, 1, 3] {
        assert_eq!(
            s.get_session("u", d).await.unwrap().unwrap(),
            format!("session {d}").as_bytes()
        );
    }
    assert!(s.load_creds().await.unwrap().is_some());
}
