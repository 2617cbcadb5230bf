//! A companion that is a Signal party, and stanza helpers for the messaging tests.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use rand_core::OsRng;
use wa_binary::{Jid, Node, Server};
use wa_proto::e2e::Message;
use wa_signal::{
    CiphertextType, InMemoryStore, PreKeyBundle, SignalRepository, SignedPreKeyRecord, pad_message,
    unpad_message,
};
use wa_sim::Sim;

use super::{Client, Creds, attr, iq, login, register};

pub type Repo = SignalRepository<InMemoryStore, OsRng>;

/// A linked companion: its keys, JID and Signal state.
pub struct Dev {
    pub creds: Creds,
    pub jid: Jid,
    pub repo: Repo,
}

impl Dev {
    pub async fn link(sim: &Sim, phone: &str) -> Dev {
        let creds = Creds::new();
        let jid = register(sim, phone, &creds).await;
        let store = InMemoryStore::new(creds.identity.clone(), creds.registration_id);
        let signature = creds
            .identity
            .sign(&creds.signed_prekey.public.serialize(), &mut OsRng);
        store.add_signed_pre_key(SignedPreKeyRecord {
            id: 1,
            key_pair: creds.signed_prekey.clone(),
            signature,
            timestamp: 0,
        });
        Dev {
            creds,
            jid,
            repo: SignalRepository::new(store, OsRng),
        }
    }

    /// Logs in; returns the client and the nodes up to `<ib><offline>`.
    pub async fn login(&self, sim: &Sim) -> (Client, Vec<Node>) {
        login(sim, &self.creds, &self.jid).await
    }

    /// Fetches `device`'s bundle from the server and starts a session with it.
    pub async fn start_session(&self, c: &mut Client, device: &Jid) -> PreKeyBundle {
        let reply = c
            .query(iq(
                "keys-1",
                "get",
                "encrypt",
                vec![
                    Node::builder("key")
                        .children([Node::builder("user").attr("jid", device.clone()).build()])
                        .build(),
                ],
            ))
            .await;
        let user = reply
            .child_by_path(&["list", "user"])
            .expect("a <user> entry");
        let (_, bundle) = PreKeyBundle::from_user_node(user).expect("a bundle");
        self.repo
            .inject_e2e_session(device, &bundle)
            .await
            .expect("session");
        bundle
    }

    pub async fn encrypt(&self, device: &Jid, m: &Message) -> Node {
        let enc = self
            .repo
            .encrypt_message(device, &pad_message(&m.encode_to_vec(), &mut OsRng))
            .await
            .expect("encrypt");
        Node::builder("enc")
            .attr("v", "2")
            .attr("type", enc.kind.as_str())
            .bytes(Bytes::from(enc.ciphertext))
            .build()
    }

    pub async fn decrypt(&self, msg: &Node) -> Message {
        let from: Jid = msg.attr("from").expect("from");
        let enc = msg.child("enc").expect("enc");
        let kind = CiphertextType::from_name(&attr(enc, "type").unwrap()).unwrap();
        let padded = self
            .repo
            .decrypt_message(&from, kind, enc.content_bytes().unwrap())
            .await
            .expect("decrypt");
        Message::decode(unpad_message(&padded).unwrap()).expect("message")
    }
}

pub fn pn(phone: &str, device: u16) -> Jid {
    Jid::with_device(phone.to_owned(), Server::Pn, device)
}

pub fn text(s: &str) -> Message {
    Message {
        conversation: Some(s.to_owned()),
        ..Default::default()
    }
}

/// A dummy `<enc>` (routing does not look inside).
pub fn blob(tag: u8) -> Node {
    Node::builder("enc")
        .attr("v", "2")
        .attr("type", "msg")
        .bytes(vec![tag; 16])
        .build()
}

pub fn message(id: &str, to: &Jid, tos: Vec<(Jid, Node)>) -> Node {
    Node::builder("message")
        .attr("id", id.to_owned())
        .attr("to", to.clone())
        .attr("type", "text")
        .children([Node::builder("participants")
            .children(
                tos.into_iter()
                    .map(|(jid, enc)| Node::builder("to").attr("jid", jid).children([enc]).build()),
            )
            .build()])
        .build()
}

/// The next node with this tag (others are skipped).
pub async fn next_tag(c: &mut Client, tag: &str) -> Node {
    loop {
        let n = c.next().await.expect("closed while waiting");
        if n.tag() == tag {
            return n;
        }
    }
}

/// Nothing with this tag arrives within a short while.
pub async fn assert_quiet(c: &mut Client, tag: &str) {
    let until = tokio::time::Instant::now() + Duration::from_millis(300);
    while let Ok(Some(n)) = tokio::time::timeout_at(until, c.recv()).await {
        assert_ne!(n.tag(), tag, "unexpected {n}");
    }
}

pub fn receipt(id: &str, to: &Jid, ty: Option<&'static str>) -> Node {
    Node::builder("receipt")
        .attr("id", id.to_owned())
        .attr("to", to.clone())
        .attr_opt("type", ty)
        .build()
}

pub fn ack(class: &'static str, id: &str, to: &Jid) -> Node {
    Node::builder("ack")
        .attr("class", class)
        .attr("id", id.to_owned())
        .attr("to", to.clone())
        .build()
}

pub async fn eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached");
}
