//! Conversion between Baileys' JSON node form and our `Node`.
#![allow(dead_code)]

use bytes::Bytes;
use serde_json::{Map, Value as Json, json};
use wa_binary::{Content, Jid, Node, Str, Value};

pub(crate) fn vectors() -> Json {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/binary_nodes.json"
    ))
    .expect("vector file");
    serde_json::from_str(&text).expect("vector JSON")
}

/// Baileys' node JSON -> our node, typing values as Baileys' encoder does:
/// a string that contains '@' and parses as a JID is a JID.
pub(crate) fn node_from_json(j: &Json) -> Node {
    let tag = j["tag"].as_str().expect("tag").to_owned();
    let mut b = Node::builder(tag);
    if let Some(attrs) = j["attrs"].as_object() {
        for (k, v) in attrs {
            b = b.attr(
                k.clone(),
                Value::sniff(v.as_str().expect("attr string").to_owned()),
            );
        }
    }
    let content = match j.get("content") {
        None => Content::None,
        Some(Json::String(s)) => match Value::sniff(s.clone()) {
            Value::Jid(jid) => Content::Jid(Box::new(jid)),
            Value::Str(s) => Content::Text(s),
        },
        Some(Json::Array(items)) => Content::Nodes(items.iter().map(node_from_json).collect()),
        Some(Json::Object(o)) => Content::Bytes(Bytes::from(
            hex::decode(o["hex"].as_str().expect("hex")).expect("hex"),
        )),
        Some(other) => panic!("unexpected content {other}"),
    };
    b.content(content).build()
}

/// Our node -> Baileys' decoded JSON form (attribute values as strings,
/// byte content as {"hex"}, text and JID content as strings).
pub(crate) fn node_to_json(n: &Node) -> Json {
    let mut attrs = Map::new();
    for (k, v) in n.attrs.iter() {
        attrs.insert(k.to_string(), Json::String(v.to_string()));
    }
    let mut o = Map::new();
    o.insert("tag".into(), Json::String(n.tag.to_string()));
    o.insert("attrs".into(), Json::Object(attrs));
    match &n.content {
        Content::None => {}
        Content::Nodes(c) => {
            o.insert(
                "content".into(),
                Json::Array(c.iter().map(node_to_json).collect()),
            );
        }
        Content::Bytes(b) => {
            o.insert("content".into(), json!({ "hex": hex::encode(b) }));
        }
        Content::Text(s) => {
            o.insert("content".into(), Json::String(s.to_string()));
        }
        Content::Jid(j) => {
            o.insert("content".into(), Json::String(j.to_string()));
        }
    }
    Json::Object(o)
}

pub(crate) fn jid(s: &str) -> Jid {
    s.parse().expect("jid")
}

pub(crate) fn s(x: &str) -> Str {
    Str::copy_from(x)
}
