//! The pure builders and parsers: request shapes, well-formed replies, and hostile or
//! malformed replies (typed errors, bounded output, no panics).

use wa_binary::{Jid, Node};
use wa_business::{
    BusinessHours, DayHours, Error, MAX_COLLECTIONS, MAX_LIST, MAX_PRODUCTS, ProductCreate,
    ProductUpdate, ProfileUpdate, build_catalog_query, build_collections_query, build_order_query,
    build_product_create, build_product_delete, build_product_update, build_profile_query,
    build_profile_update, parse_catalog_reply, parse_collections_reply, parse_delete_reply,
    parse_order_reply, parse_product, parse_product_edit_reply, parse_profile_reply,
};

fn text(tag: &str, s: &str) -> Node {
    Node::builder(tag.to_owned())
        .bytes(s.as_bytes().to_vec())
        .build()
}

fn child_text(n: &Node, tag: &str) -> Option<String> {
    n.child(tag)
        .and_then(Node::content_bytes)
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
}

fn iq(children: Vec<Node>) -> Node {
    Node::builder("iq")
        .attr("type", "result")
        .children(children)
        .build()
}

fn product(id: &str, price: &str) -> Node {
    Node::builder("product")
        .attr("is_hidden", "false")
        .children([
            text("id", id),
            text("name", "Tea"),
            text("description", "green"),
            text("retailer_id", "R1"),
            text("url", "https://wa.me/p/1"),
            Node::builder("media")
                .children([Node::builder("image")
                    .children([text("request_image_url", "https://img/1")])
                    .build()])
                .build(),
            text("price", price),
            text("currency", "EUR"),
            Node::builder("status_info")
                .children([text("status", "APPROVED")])
                .build(),
        ])
        .build()
}

#[test]
fn profile_requests_have_the_expected_shape() {
    let q = build_profile_query(&Jid::pn("15550000001"));
    assert_eq!(q.attr::<&str>("xmlns").unwrap(), "w:biz");
    assert_eq!(q.attr::<&str>("type").unwrap(), "get");
    let p = q.child_by_path(&["business_profile", "profile"]).unwrap();
    assert_eq!(p.attr::<Jid>("jid").unwrap(), Jid::pn("15550000001"));

    let mut u = ProfileUpdate::default();
    u.email = Some("a@b.c".to_owned());
    u.websites = Some(vec!["https://x".to_owned(), "https://y".to_owned()]);
    u.hours = Some(BusinessHours {
        timezone: "UTC".to_owned(),
        days: vec![DayHours {
            day: "mon".to_owned(),
            mode: "specific_hours".to_owned(),
            open_minutes: Some(60),
            close_minutes: Some(120),
        }],
    });
    let n = build_profile_update(&u).unwrap();
    assert_eq!(n.attr::<&str>("type").unwrap(), "set");
    let bp = n.child("business_profile").unwrap();
    assert_eq!(bp.attr::<&str>("mutation_type").unwrap(), "delta");
    assert_eq!(child_text(bp, "email").as_deref(), Some("a@b.c"));
    assert!(bp.child("address").is_none(), "unset fields are not sent");
    assert_eq!(bp.children_by_tag("website").count(), 2);
    let cfg = bp
        .child_by_path(&["business_hours", "business_hours_config"])
        .unwrap();
    assert_eq!(cfg.attr::<u32>("open_time").unwrap(), 60);

    assert!(matches!(
        build_profile_update(&ProfileUpdate::default()),
        Err(Error::InvalidRequest(_))
    ));
    let mut long = ProfileUpdate::default();
    long.description = Some("d".repeat(100_000));
    assert!(matches!(
        build_profile_update(&long),
        Err(Error::InvalidRequest(_))
    ));
}

#[test]
fn profile_reply_parses_and_tolerates_missing_fields() {
    let reply = iq(vec![
        Node::builder("business_profile")
            .children([Node::builder("profile")
                .attr("jid", Jid::pn("15550000001"))
                .children([
                    text("address", "Main St"),
                    text("description", "Shop"),
                    text("website", "https://a"),
                    text("website", "https://b"),
                    text("email", "e@x"),
                    Node::builder("categories")
                        .children([
                            Node::builder("category")
                                .attr("id", "133436743388217")
                                .bytes(b"Retail".to_vec())
                                .build(),
                            Node::builder("category")
                                .attr("id", "1")
                                .bytes(b"Coffee".to_vec())
                                .build(),
                        ])
                        .build(),
                    Node::builder("business_hours")
                        .attr("timezone", "UTC")
                        .children([
                            Node::builder("business_hours_config")
                                .attr("day_of_week", "tue")
                                .attr("mode", "open_24h")
                                .build(),
                            // Missing mode: skipped.
                            Node::builder("business_hours_config")
                                .attr("day_of_week", "wed")
                                .build(),
                        ])
                        .build(),
                ])
                .build()])
            .build(),
    ]);
    let p = parse_profile_reply(&reply).unwrap().unwrap();
    assert_eq!(p.address.as_deref(), Some("Main St"));
    assert_eq!(p.websites, ["https://a", "https://b"]);
    assert_eq!(p.category.as_deref(), Some("Retail"));
    assert_eq!(
        p.categories,
        [
            ("133436743388217".to_owned(), "Retail".to_owned()),
            ("1".to_owned(), "Coffee".to_owned())
        ]
    );
    let h = p.hours.unwrap();
    assert_eq!(h.days.len(), 1);
    assert_eq!(h.days[0].mode, "open_24h");

    // No profile element: the account has none.
    let none = iq(vec![Node::new("business_profile")]);
    assert_eq!(parse_profile_reply(&none).unwrap(), None);
    // Malformed: no business_profile, profile without (valid) jid.
    assert!(matches!(
        parse_profile_reply(&iq(vec![])),
        Err(Error::Malformed(_))
    ));
    let no_jid = iq(vec![
        Node::builder("business_profile")
            .children([Node::new("profile")])
            .build(),
    ]);
    assert!(matches!(
        parse_profile_reply(&no_jid),
        Err(Error::Malformed(_))
    ));
    // Invalid UTF-8 is replaced, not a panic; a website flood is cut.
    let hostile = iq(vec![
        Node::builder("business_profile")
            .children([Node::builder("profile")
                .attr("jid", Jid::pn("1555"))
                .children(
                    std::iter::once(Node::builder("address").bytes(vec![0xFF, 0xFE]).build())
                        .chain((0..10_000).map(|_| text("website", "w"))),
                )
                .build()])
            .build(),
    ]);
    let p = parse_profile_reply(&hostile).unwrap().unwrap();
    assert_eq!(p.websites.len(), MAX_LIST);
    assert_eq!(p.address.as_deref(), Some("\u{FFFD}\u{FFFD}"));
}

#[test]
fn product_requests_have_the_expected_shape() {
    let mut c = ProductCreate::new("Tea", 4500, "EUR");
    c.image_urls = vec!["https://img".to_owned()];
    let n = build_product_create(&c).unwrap();
    assert_eq!(n.attr::<&str>("xmlns").unwrap(), "w:biz:catalog");
    let add = n.child("product_catalog_add").unwrap();
    let p = add.child("product").unwrap();
    assert!(p.child("id").is_none());
    assert_eq!(child_text(p, "price").as_deref(), Some("4500"));
    assert_eq!(p.attr::<&str>("is_hidden").unwrap(), "false");
    assert_eq!(
        p.attr::<&str>("compliance_category").unwrap(),
        "COUNTRY_ORIGIN_EXEMPT"
    );
    c.origin_country = Some("IN".to_owned());
    let n = build_product_create(&c).unwrap();
    let p = n
        .child_by_path(&["product_catalog_add", "product"])
        .unwrap();
    assert!(p.get_attr("compliance_category").is_none());
    assert_eq!(
        child_text(p.child("compliance_info").unwrap(), "country_code_origin").as_deref(),
        Some("IN")
    );

    let mut u = ProductUpdate::default();
    u.name = Some("Better tea".to_owned());
    let n = build_product_update("P1", &u).unwrap();
    let p = n
        .child_by_path(&["product_catalog_edit", "product"])
        .unwrap();
    assert_eq!(child_text(p, "id").as_deref(), Some("P1"));
    assert!(p.child("price").is_none() && p.get_attr("is_hidden").is_none());

    let d = build_product_delete(&["a", "b"]).unwrap();
    assert_eq!(
        d.child("product_catalog_delete")
            .unwrap()
            .children_by_tag("product")
            .count(),
        2
    );

    for bad in [
        build_product_create(&ProductCreate::new(" ", 1, "EUR")),
        build_product_create(&ProductCreate::new("x", 1, "")),
        build_product_update("", &u),
        build_product_delete(&[]),
        build_product_delete(&[""]),
    ] {
        assert!(matches!(bad, Err(Error::InvalidRequest(_))));
    }
    let mut empty_name = ProductUpdate::default();
    empty_name.name = Some(String::new());
    assert!(build_product_update("P1", &empty_name).is_err());
}

#[test]
fn catalog_collection_and_order_queries_have_the_expected_shape() {
    let q = build_catalog_query(&Jid::pn("1"), 1000, Some("CUR"));
    let pc = q.child("product_catalog").unwrap();
    assert_eq!(child_text(pc, "limit").as_deref(), Some("100"), "clamped");
    assert_eq!(child_text(pc, "after").as_deref(), Some("CUR"));
    let c = build_collections_query(&Jid::pn("1"), 5);
    assert_eq!(c.attr::<&str>("smax_id").unwrap(), "35");
    assert_eq!(
        c.child("collections")
            .unwrap()
            .attr::<Jid>("biz_jid")
            .unwrap(),
        Jid::pn("1")
    );
    let o = build_order_query("O1", "TOK");
    assert_eq!(o.attr::<&str>("xmlns").unwrap(), "fb:thrift_iq");
    let order = o.child("order").unwrap();
    assert_eq!(order.attr::<&str>("op").unwrap(), "get");
    assert_eq!(child_text(order, "token").as_deref(), Some("TOK"));
}

#[test]
fn products_and_catalogs_parse() {
    let p = parse_product(&product("P1", "4500")).unwrap();
    assert_eq!(p.id, "P1");
    assert_eq!(p.price, Some(4500));
    assert_eq!(p.image_urls, ["https://img/1"]);
    assert_eq!(p.review_status.as_deref(), Some("APPROVED"));
    assert_eq!(p.url.as_deref(), Some("https://wa.me/p/1"));

    let reply = iq(vec![
        Node::builder("product_catalog")
            .children([
                product("P1", "1"),
                product("P2", "2"),
                Node::builder("paging")
                    .children([text("after", "NEXT")])
                    .build(),
            ])
            .build(),
    ]);
    let c = parse_catalog_reply(&reply).unwrap();
    assert_eq!(c.products.len(), 2);
    assert_eq!(c.next_cursor.as_deref(), Some("NEXT"));

    let edit = iq(vec![
        Node::builder("product_catalog_add")
            .children([product("P9", "9")])
            .build(),
    ]);
    assert_eq!(
        parse_product_edit_reply(&edit, "product_catalog_add")
            .unwrap()
            .id,
        "P9"
    );
    assert!(matches!(
        parse_product_edit_reply(&edit, "product_catalog_edit"),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn malformed_products_are_typed_errors() {
    assert!(matches!(
        parse_product(&Node::new("product")),
        Err(Error::Malformed(_))
    ));
    assert!(matches!(
        parse_product(&product("", "1")),
        Err(Error::Malformed(_))
    ));
    for price in ["NaN", "-5", "1e3", "99999999999999999999999"] {
        assert!(
            matches!(
                parse_product(&product("P", price)),
                Err(Error::Malformed(_))
            ),
            "{price}"
        );
    }
    // One bad product fails the page rather than silently vanishing.
    let reply = iq(vec![
        Node::builder("product_catalog")
            .children([product("P1", "1"), product("P2", "x")])
            .build(),
    ]);
    assert!(parse_catalog_reply(&reply).is_err());
    assert!(parse_catalog_reply(&iq(vec![])).is_err());
    // A flood is cut at the bound.
    let flood = iq(vec![
        Node::builder("product_catalog")
            .children((0..MAX_PRODUCTS + 10).map(|i| product(&i.to_string(), "1")))
            .build(),
    ]);
    assert_eq!(
        parse_catalog_reply(&flood).unwrap().products.len(),
        MAX_PRODUCTS
    );
}

#[test]
fn collections_parse_and_refuse_malformed_entries() {
    let col = |id: Option<&str>| {
        let mut children = vec![text("name", "Teas"), product("P1", "1")];
        if let Some(id) = id {
            children.insert(0, text("id", id));
        }
        Node::builder("collection").children(children).build()
    };
    let reply = iq(vec![
        Node::builder("collections")
            .children([col(Some("C1"))])
            .build(),
    ]);
    let cols = parse_collections_reply(&reply).unwrap();
    assert_eq!(cols[0].id, "C1");
    assert_eq!(cols[0].products.len(), 1);
    let bad = iq(vec![
        Node::builder("collections").children([col(None)]).build(),
    ]);
    assert!(matches!(
        parse_collections_reply(&bad),
        Err(Error::Malformed(_))
    ));
    assert!(parse_collections_reply(&iq(vec![])).is_err());
    let flood = iq(vec![
        Node::builder("collections")
            .children((0..MAX_COLLECTIONS * 3).map(|_| col(Some("C"))))
            .build(),
    ]);
    assert_eq!(
        parse_collections_reply(&flood).unwrap().len(),
        MAX_COLLECTIONS
    );
}

fn order_reply(qty: &str, total: Option<&str>) -> Node {
    let mut price = vec![text("currency", "EUR")];
    if let Some(t) = total {
        price.push(text("total", t));
    }
    iq(vec![
        Node::builder("order")
            .children([
                Node::builder("product")
                    .children([
                        text("id", "P1"),
                        text("name", "Tea"),
                        Node::builder("image")
                            .children([text("url", "https://img")])
                            .build(),
                        text("price", "4500"),
                        text("currency", "EUR"),
                        text("quantity", qty),
                    ])
                    .build(),
                Node::builder("price").children(price).build(),
            ])
            .build(),
    ])
}

#[test]
fn orders_parse_and_refuse_malformed_ones() {
    let o = parse_order_reply(&order_reply("2", Some("9000"))).unwrap();
    assert_eq!(o.total, 9000);
    assert_eq!(o.currency, "EUR");
    assert_eq!(o.products[0].quantity, 2);
    assert_eq!(o.products[0].image_url.as_deref(), Some("https://img"));
    for bad in [
        order_reply("two", Some("9000")),
        order_reply("2", None),
        order_reply("2", Some("")),
        iq(vec![]),
        iq(vec![Node::new("order")]),
    ] {
        assert!(matches!(parse_order_reply(&bad), Err(Error::Malformed(_))));
    }
}

#[test]
fn delete_counts_parse() {
    let ok = iq(vec![
        Node::builder("product_catalog_delete")
            .attr("deleted_count", "3")
            .build(),
    ]);
    assert_eq!(parse_delete_reply(&ok).unwrap(), 3);
    let absent = iq(vec![Node::new("product_catalog_delete")]);
    assert_eq!(parse_delete_reply(&absent).unwrap(), 0);
    let bad = iq(vec![
        Node::builder("product_catalog_delete")
            .attr("deleted_count", "lots")
            .build(),
    ]);
    assert!(matches!(parse_delete_reply(&bad), Err(Error::Malformed(_))));
    assert!(parse_delete_reply(&iq(vec![])).is_err());
}

#[test]
fn cover_photo_requests_are_profile_deltas() {
    let n = wa_business::build_cover_photo_update("4242", "c2ln", "1700000000").unwrap();
    assert_eq!(n.attr_opt::<&str>("xmlns").unwrap(), Some("w:biz"));
    assert_eq!(n.attr_opt::<&str>("type").unwrap(), Some("set"));
    let bp = n.child("business_profile").unwrap();
    assert_eq!(bp.attr_opt::<&str>("v").unwrap(), Some("3"));
    assert_eq!(bp.attr_opt::<&str>("mutation_type").unwrap(), Some("delta"));
    let c = bp.child("cover_photo").unwrap();
    for (k, v) in [
        ("id", "4242"),
        ("op", "update"),
        ("token", "c2ln"),
        ("ts", "1700000000"),
    ] {
        assert_eq!(c.attr_opt::<&str>(k).unwrap(), Some(v), "{k}");
    }
    let r = wa_business::build_cover_photo_removal("4242").unwrap();
    let c = r
        .child("business_profile")
        .unwrap()
        .child("cover_photo")
        .unwrap();
    assert_eq!(c.attr_opt::<&str>("op").unwrap(), Some("delete"));
    assert_eq!(c.attr_opt::<&str>("id").unwrap(), Some("4242"));
    assert!(wa_business::build_cover_photo_update("", "t", "1").is_err());
    assert!(wa_business::build_cover_photo_update("1", &"x".repeat(100_000), "1").is_err());
    assert!(wa_business::build_cover_photo_removal("").is_err());
}
