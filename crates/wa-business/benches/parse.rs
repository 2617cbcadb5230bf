//! Parsing a catalog page of 100 products, a business profile and an order.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use wa_binary::{Jid, Node};
use wa_business::{parse_catalog_reply, parse_order_reply, parse_profile_reply};

fn text(tag: &str, s: &str) -> Node {
    Node::builder(tag.to_owned())
        .bytes(s.as_bytes().to_vec())
        .build()
}

fn product(i: u32) -> Node {
    Node::builder("product")
        .attr("is_hidden", "false")
        .children([
            text("id", &format!("70000000000{i:05}")),
            text("name", &format!("Product {i}")),
            text(
                "description",
                "A product description of ordinary length, a sentence or two.",
            ),
            text("retailer_id", &format!("SKU-{i}")),
            text(
                "url",
                &format!("https://wa.me/p/70000000000{i:05}/15550000001"),
            ),
            Node::builder("media")
                .children([Node::builder("image")
                    .children([text(
                        "request_image_url",
                        "https://mmg.whatsapp.net/p/image.jpg",
                    )])
                    .build()])
                .build(),
            text("price", "129900"),
            text("currency", "EUR"),
            Node::builder("status_info")
                .children([text("status", "APPROVED")])
                .build(),
        ])
        .build()
}

fn bench(c: &mut Criterion) {
    let catalog = Node::builder("iq")
        .children([Node::builder("product_catalog")
            .children(
                (0..100).map(product).chain([Node::builder("paging")
                    .children([text("after", "100")])
                    .build()]),
            )
            .build()])
        .build();
    let profile = Node::builder("iq")
        .children([Node::builder("business_profile")
            .children([Node::builder("profile")
                .attr("jid", Jid::pn("15550000001"))
                .children([
                    text("address", "1 Market Street"),
                    text("description", "Tea and coffee"),
                    text("website", "https://example.com"),
                    text("email", "shop@example.com"),
                    Node::builder("categories")
                        .children([text("category", "Retail")])
                        .build(),
                    Node::builder("business_hours")
                        .attr("timezone", "Europe/Berlin")
                        .children(["mon", "tue", "wed", "thu", "fri"].map(|d| {
                            Node::builder("business_hours_config")
                                .attr("day_of_week", d)
                                .attr("mode", "specific_hours")
                                .attr("open_time", "540")
                                .attr("close_time", "1080")
                                .build()
                        }))
                        .build(),
                ])
                .build()])
            .build()])
        .build();
    let order = Node::builder("iq")
        .children([Node::builder("order")
            .children(
                (0..10)
                    .map(|i| {
                        Node::builder("product")
                            .children([
                                text("id", &i.to_string()),
                                text("name", "Tea"),
                                Node::builder("image")
                                    .children([text("url", "https://img")])
                                    .build(),
                                text("price", "4500"),
                                text("currency", "EUR"),
                                text("quantity", "2"),
                            ])
                            .build()
                    })
                    .chain([Node::builder("price")
                        .children([text("total", "90000"), text("currency", "EUR")])
                        .build()]),
            )
            .build()])
        .build();

    c.bench_function("parse_catalog_reply (100 products)", |b| {
        b.iter(|| parse_catalog_reply(black_box(&catalog)).unwrap())
    });
    c.bench_function("parse_profile_reply", |b| {
        b.iter(|| parse_profile_reply(black_box(&profile)).unwrap())
    });
    c.bench_function("parse_order_reply (10 lines)", |b| {
        b.iter(|| parse_order_reply(black_box(&order)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
