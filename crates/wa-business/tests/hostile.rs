//! Random stanza trees built from the business vocabulary through every parser: each call
//! returns (an error or a value) instead of panicking, and lists stay within bounds.

use proptest::prelude::*;
use wa_binary::Node;
use wa_business::{
    MAX_COLLECTIONS, MAX_LIST, MAX_PRODUCTS, parse_catalog_reply, parse_collections_reply,
    parse_delete_reply, parse_order_reply, parse_product, parse_product_edit_reply,
    parse_profile_reply,
};

const TAGS: &[&str] = &[
    "business_profile",
    "profile",
    "address",
    "description",
    "website",
    "email",
    "categories",
    "category",
    "business_hours",
    "business_hours_config",
    "product_catalog",
    "product",
    "id",
    "name",
    "price",
    "currency",
    "quantity",
    "media",
    "image",
    "url",
    "paging",
    "after",
    "collections",
    "collection",
    "status_info",
    "status",
    "order",
    "total",
    "product_catalog_add",
    "product_catalog_delete",
];
const KEYS: &[&str] = &[
    "jid",
    "is_hidden",
    "timezone",
    "day_of_week",
    "mode",
    "open_time",
    "close_time",
    "deleted_count",
];
const VALUES: &[&str] = &[
    "15550000001@s.whatsapp.net",
    "true",
    "7",
    "-1",
    "",
    "abc",
    "99999999999999999999",
    "mon",
    "open_24h",
];

fn arb_attrs() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
    prop::collection::vec(
        (prop::sample::select(KEYS), prop::sample::select(VALUES)),
        0..4,
    )
}

fn build(tag: &'static str, attrs: Vec<(&'static str, &'static str)>) -> wa_binary::NodeBuilder {
    let mut b = Node::builder(tag);
    for (k, v) in attrs {
        b = b.attr(k, v);
    }
    b
}

fn arb_node() -> impl Strategy<Value = Node> {
    let leaf = (
        prop::sample::select(TAGS),
        arb_attrs(),
        prop_oneof![
            Just(None),
            prop::sample::select(VALUES).prop_map(|v| Some(v.as_bytes().to_vec())),
            prop::collection::vec(any::<u8>(), 0..32).prop_map(Some),
        ],
    )
        .prop_map(|(t, a, b)| match b {
            Some(b) => build(t, a).bytes(b).build(),
            None => build(t, a).build(),
        });
    leaf.prop_recursive(5, 128, 8, |inner| {
        (
            prop::sample::select(TAGS),
            arb_attrs(),
            prop::collection::vec(inner, 0..8),
        )
            .prop_map(|(t, a, c)| build(t, a).children(c).build())
    })
}

proptest! {
    #[test]
    fn parsers_never_panic_on_random_trees(node in arb_node()) {
        let reply = Node::builder("iq").children([node.clone()]).build();
        if let Ok(Some(p)) = parse_profile_reply(&reply) {
            prop_assert!(p.websites.len() <= MAX_LIST);
        }
        if let Ok(c) = parse_catalog_reply(&reply) {
            prop_assert!(c.products.len() <= MAX_PRODUCTS);
        }
        if let Ok(c) = parse_collections_reply(&reply) {
            prop_assert!(c.len() <= MAX_COLLECTIONS);
        }
        let _ = parse_order_reply(&reply);
        let _ = parse_delete_reply(&reply);
        let _ = parse_product(&node);
        let _ = parse_product_edit_reply(&reply, "product_catalog_add");
    }
}
