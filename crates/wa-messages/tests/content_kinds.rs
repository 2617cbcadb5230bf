//! Group invites, button and list replies and albums, built byte-identically with what
//! Baileys 7.0.0-rc14's `generateWAMessageContent` produced (tests/vectors/NOTE.md).

use prost::Message as _;
use rand_core::OsRng;
use serde_json::Value;
use wa_binary::Jid;
use wa_messages::{MessageBuilder, MessageContent, MessageKey};

fn case(name: &str) -> (Vec<u8>, [u8; 32]) {
    let v: Value = serde_json::from_str(include_str!("vectors/content_kinds.json"))
        .expect("vector file parses");
    let c = v["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"));
    let bytes = hex::decode(c["messageHex"].as_str().expect("hex")).expect("hex decodes");
    let secret = hex::decode(c["secret"].as_str().expect("secret")).expect("hex decodes");
    (bytes, secret.try_into().expect("32 bytes"))
}

fn built(content: MessageContent, secret: [u8; 32]) -> MessageBuilder {
    MessageBuilder::new(Jid::pn("15550000002"), content).message_secret(secret)
}

fn check(name: &str, content: MessageContent) {
    let (expected, secret) = case(name);
    let m = built(content, secret).build(&mut OsRng).expect("builds");
    assert_eq!(
        hex::encode(m.encode_to_vec()),
        hex::encode(expected),
        "{name}"
    );
}

#[test]
fn group_invite() {
    check(
        "group_invite",
        MessageContent::GroupInvite {
            group: "120363000000000001@g.us".parse().unwrap(),
            code: "AbCdEf123456".into(),
            expiration: 1_700_600_000,
            group_name: "Team".into(),
            caption: Some("join us".into()),
            jpeg_thumbnail: None,
        },
    );
}

#[test]
fn button_replies() {
    check(
        "button_reply_template",
        MessageContent::ButtonReply {
            id: "btn-yes".into(),
            display_text: "Yes please".into(),
            index: 1,
            template: true,
        },
    );
    check(
        "button_reply_plain",
        MessageContent::ButtonReply {
            id: "btn-no".into(),
            display_text: "No thanks".into(),
            index: 0,
            template: false,
        },
    );
}

#[test]
fn list_reply() {
    check(
        "list_reply",
        MessageContent::ListReply {
            title: "Pizza".into(),
            row_id: "row-2".into(),
            description: Some("with cheese".into()),
        },
    );
}

#[test]
fn album_head_and_item() {
    check(
        "album",
        MessageContent::Album {
            images: 3,
            videos: 1,
        },
    );
    let (expected, secret) = case("album_item_text");
    let parent = MessageKey::new(Jid::pn("15550000002"), true, "3EB0ALBUM0000000000001");
    let m = built(MessageContent::text("item"), secret)
        .album_parent(parent)
        .build(&mut OsRng)
        .expect("builds");
    assert_eq!(hex::encode(m.encode_to_vec()), hex::encode(expected));
}

#[test]
fn replies_carry_quotes_like_other_content() {
    let (_, secret) = case("list_reply");
    let quoted = wa_proto::e2e::Message {
        conversation: Some("pick one".into()),
        ..Default::default()
    };
    let key = MessageKey::new(Jid::pn("15550000002"), false, "3EB0LIST000000000000001");
    let m = built(
        MessageContent::ListReply {
            title: "Pizza".into(),
            row_id: "row-2".into(),
            description: None,
        },
        secret,
    )
    .quote(wa_messages::Quote::new(
        key,
        quoted,
        &Jid::pn("15550000001"),
    ))
    .build(&mut OsRng)
    .expect("builds");
    let ci = m
        .list_response_message
        .as_ref()
        .and_then(|l| l.context_info.as_ref())
        .expect("context on the reply");
    assert_eq!(ci.stanza_id.as_deref(), Some("3EB0LIST000000000000001"));
}

#[test]
fn product_card_names_its_business_and_takes_a_quote() {
    use wa_proto::e2e::ImageMessage;
    use wa_proto::e2e::product_message::ProductSnapshot;
    let image = ImageMessage {
        mimetype: Some("image/jpeg".into()),
        direct_path: Some("/product/abc".into()),
        ..Default::default()
    };
    let snapshot = ProductSnapshot {
        product_image: Some(Box::new(image.clone())),
        product_id: Some("P-1".into()),
        title: Some("Mug".into()),
        currency_code: Some("EUR".into()),
        price_amount1000: Some(12_500),
        ..Default::default()
    };
    let shop = Jid::pn("15550000009");
    let key = MessageKey::new(Jid::pn("15550000002"), false, "3EB0Q00000000000000001");
    let quoted = wa_proto::e2e::Message {
        conversation: Some("how much?".into()),
        ..Default::default()
    };
    let m = MessageBuilder::new(
        Jid::pn("15550000002"),
        MessageContent::Product {
            product: Box::new(snapshot.clone()),
            business_owner: shop.clone(),
            body: Some("our best mug".into()),
            footer: None,
        },
    )
    .quote(wa_messages::Quote::new(
        key,
        quoted,
        &Jid::pn("15550000001"),
    ))
    .build(&mut OsRng)
    .expect("builds");
    let p = m.product_message.as_deref().expect("product");
    assert_eq!(
        p.business_owner_jid.as_deref(),
        Some("15550000009@s.whatsapp.net")
    );
    assert_eq!(p.body.as_deref(), Some("our best mug"));
    assert_eq!(
        p.product.as_ref().and_then(|s| s.title.as_deref()),
        Some("Mug")
    );
    assert_eq!(
        p.product.as_ref().and_then(|s| s.product_image.as_deref()),
        Some(&image)
    );
    assert_eq!(
        p.context_info.as_ref().and_then(|c| c.stanza_id.as_deref()),
        Some("3EB0Q00000000000000001")
    );
    assert_eq!(
        m.message_context_info
            .as_ref()
            .and_then(|c| c.message_secret.as_ref())
            .map(Vec::len),
        Some(32)
    );
}

#[test]
fn a_fetched_page_becomes_the_text_preview() {
    let mut info = wa_media::UrlInfo::default();
    info.matched_text = "https://example.com/a".into();
    info.title = "Example".into();
    info.description = Some("about".into());
    info.jpeg_thumbnail = Some(vec![0xFF, 0xD8, 1]);
    let preview = wa_messages::LinkPreview::from(info);
    let m = MessageBuilder::new(
        Jid::pn("15550000002"),
        MessageContent::Text {
            text: "see https://example.com/a".into(),
            link_preview: Some(preview),
        },
    )
    .build(&mut OsRng)
    .expect("builds");
    let ext = m.extended_text_message.as_deref().expect("text");
    assert_eq!(ext.matched_text.as_deref(), Some("https://example.com/a"));
    assert_eq!(ext.title.as_deref(), Some("Example"));
    assert_eq!(ext.description.as_deref(), Some("about"));
    assert_eq!(ext.jpeg_thumbnail.as_deref(), Some(&[0xFF, 0xD8, 1][..]));
    assert_eq!(ext.preview_type, Some(0));
}
