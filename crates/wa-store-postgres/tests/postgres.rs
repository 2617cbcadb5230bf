//! PostgreSQL-specific behaviour: migrations, schema version, a row damaged in the database,
//! values of a drifted schema that do not convert.

mod common;

use std::sync::Arc;

use wa_store::{AccountStore, AuthCreds, CredsStore, Error, SessionStore};
use wa_store_postgres::{PostgresBackend, PostgresConfig};

#[tokio::test]
async fn migrations_are_idempotent_across_workers() {
    let Some(url) = common::url() else { return };
    let (a, b) = tokio::join!(
        PostgresBackend::connect(&url),
        PostgresBackend::connect(&url)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.schema_version().await.unwrap(), 2);
    assert_eq!(b.schema_version().await.unwrap(), 2);
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

/// A database of schema version 1 held U+0001 in its text as it was; version 2 escapes
/// it (and U+0000, which version 1 could not store at all). The upgrade rewrites the old
/// rows, and each reads back under the key it was written with.
#[tokio::test]
async fn rows_of_version_1_with_control_characters_survive_the_upgrade() {
    use wa_store::{AccountId, Backend, Role};

    let Some(url) = common::url() else { return };
    let db = OwnDb::create(&url, "wa_test_upgrade").await;
    let client = db.client().await;
    // Version 1 as a worker of that version left it.
    client
        .batch_execute(include_str!("../migrations/0001_init.sql"))
        .await
        .unwrap();
    client
        .batch_execute(
            "CREATE TABLE wa_schema_version (version BIGINT NOT NULL); \
             INSERT INTO wa_schema_version (version) VALUES (1)",
        )
        .await
        .unwrap();
    let sealed = |v: &[u8]| wa_store::seal(v).to_vec();
    let contact = Role::Contact.code();
    let rows: [(&str, &str, &str, &[u8]); 5] = [
        ("acct\u{1}", "", "k", b"account with U+0001"),
        ("a", "s\u{1}", "k", b"scope with U+0001"),
        ("a", "s", "k\u{1}", b"key with U+0001"),
        ("a", "s", "k\u{1}\u{2}", b"key with U+0001 U+0002"),
        ("a", "s", "plain", b"plain"),
    ];
    for (account, scope, key, value) in rows {
        client
            .execute(
                "INSERT INTO wa_items (account, role, scope, key, value) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[&account, &contact, &scope, &key, &sealed(value)],
            )
            .await
            .unwrap();
    }
    let backend = PostgresBackend::connect(&db.url).await.unwrap();
    assert_eq!(backend.schema_version().await.unwrap(), 2);
    for (account, scope, key, value) in rows {
        let got = backend
            .get(&AccountId::new(account).unwrap(), Role::Contact, scope, key)
            .await
            .unwrap()
            .map(|v| wa_store::open(Role::Contact, scope, key, v).unwrap());
        assert_eq!(got.as_deref(), Some(value), "{account:?} {scope:?} {key:?}");
    }
    let listed: Vec<String> = backend
        .list(&AccountId::new("a").unwrap(), Role::Contact, "s")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(listed, ["k\u{1}", "k\u{1}\u{2}", "plain"]);

    drop((backend, client));
    db.drop_db().await;
}

/// A database of a test's own, for tests that alter the schema or start from an old one.
struct OwnDb {
    admin: tokio_postgres::Client,
    name: String,
    url: String,
}

impl OwnDb {
    async fn create(url: &str, prefix: &str) -> OwnDb {
        use rand_core::RngCore as _;
        let (admin, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let name = format!("{prefix}_{:016x}", rand_core::OsRng.next_u64());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = PostgresConfig::new(url).with_database(&name).url;
        OwnDb { admin, name, url }
    }

    /// A plain client of the database.
    async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }

    async fn drop_db(self) {
        self.admin
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn values_that_do_not_convert_are_a_typed_error_not_a_panic() {
    use wa_store::{AccountId, Backend, Role};

    let Some(url) = common::url() else { return };
    // The table is altered below: use a database of our own.
    let db = OwnDb::create(&url, "wa_test_drift").await;
    let db_url = db.url.clone();
    PostgresBackend::connect(&db_url).await.unwrap();
    let client = db.client().await;
    let account = AccountId::new("a").unwrap();
    let (session, creds) = (Role::Session.code(), Role::Creds.code());

    // A value that is NULL (a column someone made nullable).
    client
        .batch_execute(&format!(
            "ALTER TABLE wa_items ALTER COLUMN value DROP NOT NULL; \
             INSERT INTO wa_items (account, role, scope, key, value) VALUES \
             ('a', {session}, 'u', '1', NULL), ('a', {creds}, '', '', '\\x00'::bytea)"
        ))
        .await
        .unwrap();
    let backend = PostgresBackend::connect(&db_url).await.unwrap();
    let got = backend.get(&account, Role::Session, "u", "1").await;
    assert!(matches!(got, Err(Error::Backend(_))), "{got:?}");
    let many = backend
        .get_many(&account, Role::Session, &[("u", "1")])
        .await;
    assert!(matches!(many, Err(Error::Backend(_))), "{many:?}");
    let listed = backend.list(&account, Role::Session, "u").await;
    assert!(matches!(listed, Err(Error::Backend(_))), "{listed:?}");

    // An account that is NULL.
    client
        .batch_execute(&format!(
            "ALTER TABLE wa_items DROP CONSTRAINT wa_items_pkey, \
             ALTER COLUMN account DROP NOT NULL; \
             INSERT INTO wa_items (account, role, scope, key, value) VALUES \
             (NULL, {creds}, '', '', '\\x00'::bytea)"
        ))
        .await
        .unwrap();
    let backend = PostgresBackend::connect(&db_url).await.unwrap();
    let accounts = backend.accounts().await;
    assert!(matches!(accounts, Err(Error::Backend(_))), "{accounts:?}");

    drop((backend, client));
    db.drop_db().await;
}
