//! The benchmark workloads, shared by `benches/codec.rs` and
//! `examples/codec_loop.rs`.

use wa_binary::{Jid, Node, Server};

/// A `<message>` to `devices` devices, each
/// `<to jid="N:D@s.whatsapp.net"><enc v="2" type="msg">` + 200 bytes.
pub(crate) fn fanout(devices: usize) -> Node {
    let participants = (0..devices).map(|i| {
        let user = format!("1555{:07}", i / 8);
        let jid = Jid::with_device(user, Server::Pn, (i % 8) as u16 + 1);
        let payload: Vec<u8> = (0..200u32).map(|b| (b as usize * 7 + i) as u8).collect();
        Node::builder("to")
            .attr("jid", jid)
            .children([Node::builder("enc")
                .attr("v", "2")
                .attr("type", "msg")
                .bytes(payload)
                .build()])
            .build()
    });
    Node::builder("message")
        .attr("id", "3EB0C5A7E0F1D2C3B4A5")
        .attr("to", Jid::group("120363012345678901"))
        .attr("type", "text")
        .attr("t", "1700000000")
        .children([
            Node::builder("participants").children(participants).build(),
            Node::builder("device-identity")
                .bytes(vec![0xab; 150])
                .build(),
        ])
        .build()
}

/// A usync reply with `users` users of `devices` devices each.
pub(crate) fn usync(users: usize, devices: usize) -> Node {
    let list = (0..users).map(|u| {
        let device_list = (0..devices).map(|d| {
            let b = Node::builder("device").attr("id", d.to_string());
            if d == 0 {
                b.build()
            } else {
                b.attr("key-index", d.to_string()).build()
            }
        });
        Node::builder("user")
            .attr("jid", Jid::pn(format!("1555{u:07}")))
            .children([Node::builder("devices")
                .children([
                    Node::builder("device-list").children(device_list).build(),
                    Node::builder("key-index-list")
                        .attr("ts", "1700000000")
                        .bytes(vec![u as u8; 24])
                        .build(),
                ])
                .build()])
            .build()
    });
    Node::builder("iq")
        .attr("from", Jid::server_jid())
        .attr("id", "28376.12938-3")
        .attr("type", "result")
        .children([Node::builder("usync")
            .attr("sid", "28376.12938-2")
            .attr("index", "0")
            .attr("last", "true")
            .attr("mode", "query")
            .attr("context", "message")
            .children([Node::builder("list").children(list).build()])
            .build()])
        .build()
}

/// One `<enc>` node holding `len` bytes.
pub(crate) fn payload(len: usize) -> Node {
    let data: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
    Node::builder("enc")
        .attr("v", "2")
        .attr("type", "msg")
        .bytes(data)
        .build()
}
