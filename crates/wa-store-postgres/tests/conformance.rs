//! The wa-store conformance suite on a real PostgreSQL server (`WA_TEST_POSTGRES_URL`),
//! bare and behind the cache.

mod common;

mod postgres {
    wa_store::backend_conformance_tests!(super::common::backend());
}

mod cached {
    wa_store::backend_conformance_tests!(super::common::cached_backend());
}
