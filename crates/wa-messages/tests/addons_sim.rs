//! Poll votes and event responses built and opened with the message secrets the
//! messenger stores for every message it sends or receives: one to one (both ways, on
//! every device of both accounts, across a restart) and in a group; received ones are
//! also reported opened (`Event::AddOn`), reactions too (plain or encrypted), and member
//! labels as `Event::MemberLabel`.

mod common;

use common::*;
use tokio::sync::broadcast;
use wa_binary::Jid;
use wa_messages::{
    Error, EventTally, MessageContent, Poll, PollTally, ScheduledEvent, poll_option_hash,
};
use wa_proto::e2e::event_response_message::EventResponseType;
use wa_sim::{Sim, SimConfig};
use wa_socket::Event;
use wa_testkit::next_upsert;
use wa_types::{AddOnKind, AddOnUpdate, MessageKey};

/// The next event `f` picks something out of (others are skipped).
async fn next_event<T>(
    rx: &mut broadcast::Receiver<Event>,
    mut f: impl FnMut(Event) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    if let Some(t) = f(e) {
                        return t;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .expect("event in time")
}

/// The options `vote` selects, opened by `reader` with the poll's stored secret.
async fn selected(reader: &Client, vote: &wa_types::WaMessage) -> Vec<Vec<u8>> {
    reader
        .messenger
        .decrypt_poll_vote(vote)
        .await
        .expect("the vote opens")
        .selected_options
}

/// The decrypted add-on carried by the message `id`.
async fn next_addon(rx: &mut broadcast::Receiver<Event>, id: &str) -> AddOnUpdate {
    next_event(rx, |e| match e {
        Event::AddOn(a) if a.key.id == id => Some(*a),
        _ => None,
    })
    .await
}

const A: &str = "15550000011";
const B: &str = "15550000012";

fn lunch() -> MessageContent {
    MessageContent::Poll(Poll {
        name: "lunch?".into(),
        options: vec!["pizza".into(), "sushi".into(), "salad".into()],
        selectable_count: 2,
        to_announcement_group: false,
    })
}

fn party() -> MessageContent {
    MessageContent::Event(ScheduledEvent {
        name: "party".into(),
        description: Some("bring snacks".into()),
        start_time: 2_000_000_000,
        end_time: None,
        location: None,
        join_link: None,
        cancelled: false,
        extra_guests_allowed: true,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_and_responses_open_with_stored_secrets_on_every_device() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("a1")).await;
    let mut a2 = link(&sim, A, memory_store("a2")).await;
    let mut b1 = link(&sim, B, memory_store("b1")).await;
    let (a, b) = (Jid::pn(A), Jid::pn(B));

    // A poll from b1; a1 votes on it by the key it received, without handling the secret.
    let poll = b1.messenger.send_message(&a, lunch()).await.unwrap();
    let seen = next_upsert(&mut a1.events, |m| m.key.id == poll.id).await;
    next_upsert(&mut a2.events, |m| m.key.id == poll.id).await;
    let vote = a1
        .messenger
        .vote_poll(&seen.key, &["sushi", "salad"])
        .await
        .unwrap();
    let expected = vec![
        poll_option_hash("sushi").to_vec(),
        poll_option_hash("salad").to_vec(),
    ];
    // The poll's creator opens it, and so does A's other companion (its copy of the vote).
    let got = next_upsert(&mut b1.events, |m| m.key.id == vote.id).await;
    let opened = b1.messenger.decrypt_poll_vote(&got).await.unwrap();
    assert_eq!(opened.selected_options, expected);
    // It was also opened on arrival and reported against the poll's key as b1 knows it.
    let auto = next_addon(&mut b1.events, &vote.id).await;
    assert_eq!(auto.target, poll);
    assert_eq!(auto.sender, a);
    assert!(auto.sender_timestamp_ms > 0);
    assert_eq!(
        auto.kind,
        AddOnKind::PollVote {
            selected_options: expected.clone()
        }
    );
    let copy = next_upsert(&mut a2.events, |m| m.key.id == vote.id).await;
    let auto = next_addon(&mut a2.events, &vote.id).await;
    assert_eq!(
        auto.target,
        MessageKey::new(b.clone(), false, poll.id.clone())
    );
    assert_eq!(auto.sender, a);
    assert!(copy.key.from_me);
    assert_eq!(selected(&a2, &copy).await, expected);
    // So does the voter, on its own report of what it sent.
    let own = next_upsert(&mut a1.events, |m| m.key.id == vote.id).await;
    assert_eq!(selected(&a1, &own).await, expected);

    // The creator votes on its own poll (the key says fromMe) and withdraws the vote.
    let own_vote = b1.messenger.vote_poll(&poll, &["pizza"]).await.unwrap();
    let got = next_upsert(&mut a1.events, |m| m.key.id == own_vote.id).await;
    assert_eq!(
        selected(&a1, &got).await,
        vec![poll_option_hash("pizza").to_vec()]
    );
    let none: [&str; 0] = [];
    let withdrawn = b1.messenger.vote_poll(&poll, &none).await.unwrap();
    let got = next_upsert(&mut a1.events, |m| m.key.id == withdrawn.id).await;
    assert!(selected(&a1, &got).await.is_empty());

    // An event from a1; b1 answers it; the secret survives b1's restart.
    let event = a1.messenger.send_message(&b, party()).await.unwrap();
    let seen = next_upsert(&mut b1.events, |m| m.key.id == event.id).await;
    let b1_jid = b1.jid.clone();
    let b1_store = b1.store.clone();
    b1.socket.close().await;
    drop(b1);
    wait_until("b1 offline", || !sim.is_online(&b1_jid)).await;
    let b1 = restart(&sim, b1_store, b1_jid).await;
    let answer = b1
        .messenger
        .respond_to_event(&seen.key, EventResponseType::Going, Some(2))
        .await
        .unwrap();
    for c in [&mut a1, &mut a2] {
        let got = next_upsert(&mut c.events, |m| m.key.id == answer.id).await;
        assert_eq!(
            got.message.enc_event_response_message.as_ref().map(|_| ()),
            Some(())
        );
        let r = c.messenger.decrypt_event_response(&got).await.unwrap();
        assert_eq!(r.response(), EventResponseType::Going);
        assert_eq!(r.extra_guest_count, Some(2));
        assert!(r.timestamp_ms.unwrap_or(0) > 0);
        let auto = next_addon(&mut c.events, &answer.id).await;
        assert_eq!(auto.target, event);
        assert_eq!(auto.sender, b);
        assert_eq!(
            auto.kind,
            AddOnKind::EventResponse {
                response: EventResponseType::Going,
                extra_guests: Some(2)
            }
        );
    }

    // What is not a vote, or belongs to a message never seen here, is a typed error.
    assert!(matches!(
        b1.messenger.decrypt_poll_vote(&seen).await,
        Err(Error::NotAnAddOn(_))
    ));
    let unknown = MessageKey::new(a.clone(), false, "3EB0000000000000000000");
    assert!(matches!(
        b1.messenger.vote_poll(&unknown, &["x"]).await,
        Err(Error::NoMessageSecret(id)) if id == unknown.id
    ));
    // A vote whose ciphertext was altered does not authenticate.
    let mut forged = (*got_vote(&mut a1, &b1, &poll).await).clone();
    let enc = forged
        .message_mut()
        .poll_update_message
        .as_mut()
        .and_then(|u| u.vote.as_mut())
        .and_then(|v| v.enc_payload.as_mut())
        .unwrap();
    enc[0] ^= 1;
    assert!(matches!(
        a1.messenger.decrypt_poll_vote(&forged).await,
        Err(Error::SecretPayloadAuth)
    ));
}

/// b1 votes on its own poll once more and returns a1's report of the vote.
async fn got_vote(a1: &mut Client, b1: &Client, poll: &MessageKey) -> Box<wa_types::WaMessage> {
    let v = b1.messenger.vote_poll(poll, &["salad"]).await.unwrap();
    Box::new(next_upsert(&mut a1.events, |m| m.key.id == v.id).await)
}

trait MessageMut {
    fn message_mut(&mut self) -> &mut wa_proto::e2e::Message;
}

impl MessageMut for wa_types::WaMessage {
    fn message_mut(&mut self) -> &mut wa_proto::e2e::Message {
        std::sync::Arc::make_mut(&mut self.message)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_vote_and_respond() {
    use wa_groups::{Groups, GroupsConfig};

    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("ga1")).await;
    let mut b1 = link(&sim, B, memory_store("gb1")).await;
    a1.messenger = a1
        .messenger
        .with_groups(Groups::new(a1.socket.clone(), &GroupsConfig::default()));
    b1.messenger = b1
        .messenger
        .with_groups(Groups::new(b1.socket.clone(), &GroupsConfig::default()));
    let g = sim
        .phone_create_group(A, "team", &[Jid::pn(B)])
        .expect("group created");

    let poll = a1.messenger.send_message(&g, lunch()).await.unwrap();
    let event = a1.messenger.send_message(&g, party()).await.unwrap();
    let seen_poll = next_upsert(&mut b1.events, |m| m.key.id == poll.id).await;
    let seen_event = next_upsert(&mut b1.events, |m| m.key.id == event.id).await;
    assert_eq!(seen_poll.key.participant, Some(Jid::pn(A)));

    let vote = b1
        .messenger
        .vote_poll(&seen_poll.key, &["pizza"])
        .await
        .unwrap();
    let answer = b1
        .messenger
        .respond_to_event(&seen_event.key, EventResponseType::Maybe, None)
        .await
        .unwrap();
    let got = next_upsert(&mut a1.events, |m| m.key.id == vote.id).await;
    assert_eq!(got.key.remote_jid, g);
    assert_eq!(
        selected(&a1, &got).await,
        vec![poll_option_hash("pizza").to_vec()]
    );
    let auto = next_addon(&mut a1.events, &vote.id).await;
    assert_eq!(
        auto.target, poll,
        "from_me, with the creator as participant"
    );
    assert_eq!(auto.target.participant, Some(Jid::pn(A)));
    // The poll's results, from the reported votes (the poll as b1 received it names
    // the same message).
    let mut tally = PollTally::for_message(&seen_poll).expect("a poll");
    assert!(tally.apply(&auto));
    let results = tally.results();
    assert_eq!(results[0].name.as_deref(), Some("pizza"));
    assert_eq!(results[0].voters, vec![Jid::pn(B)]);
    assert!(results[1..].iter().all(|o| o.voters.is_empty()));
    let got = next_upsert(&mut a1.events, |m| m.key.id == answer.id).await;
    let r = a1.messenger.decrypt_event_response(&got).await.unwrap();
    assert_eq!(r.response(), EventResponseType::Maybe);
    assert_eq!(r.extra_guest_count, None);
    let auto = next_addon(&mut a1.events, &answer.id).await;
    let mut tally = EventTally::new(event.clone());
    assert!(tally.apply(&auto));
    let maybe = &tally.results()[2];
    assert_eq!(maybe.response, EventResponseType::Maybe);
    assert_eq!(maybe.responders, vec![Jid::pn(B)]);

    // A member label set by a1 reaches b1 as its own event, after the message.
    let label = a1
        .messenger
        .send_message(
            &g,
            MessageContent::MemberLabel {
                label: "organiser".into(),
                timestamp_secs: 1_800_000_000,
            },
        )
        .await
        .unwrap();
    next_upsert(&mut b1.events, |m| m.key.id == label.id).await;
    let update = next_event(&mut b1.events, |e| match e {
        Event::MemberLabel(u) => Some(*u),
        _ => None,
    })
    .await;
    assert_eq!(update.group, g);
    assert_eq!(update.participant, Jid::pn(A));
    assert_eq!(update.label, "organiser");
    assert_eq!(update.timestamp, 1_800_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_open_when_the_chat_moved_to_lids() {
    use wa_sim::{Fault, SenderAddressing};

    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("la1")).await;
    let mut b1 = link(&sim, B, memory_store("lb1")).await;
    // The server names senders by LID (with sender_pn), as for chats moved to LIDs.
    sim.fault(Fault::SenderAddressing(SenderAddressing::Lid));
    let a_lid = sim.account(A).unwrap().lid;
    let b_lid = sim.account(B).unwrap().lid;

    // a1 sends the poll to B's phone number; b1 sees it in the LID chat.
    let poll = a1
        .messenger
        .send_message(&Jid::pn(B), lunch())
        .await
        .unwrap();
    let seen = next_upsert(&mut b1.events, |m| m.key.id == poll.id).await;
    assert_eq!(seen.key.remote_jid, a_lid);
    // b1 votes in that chat (as its LID); a1 finds the secret it stored under B's phone
    // number and opens the vote.
    let vote = b1.messenger.vote_poll(&seen.key, &["pizza"]).await.unwrap();
    let got = next_upsert(&mut a1.events, |m| m.key.id == vote.id).await;
    assert_eq!(got.key.remote_jid, b_lid);
    assert_eq!(
        selected(&a1, &got).await,
        vec![poll_option_hash("pizza").to_vec()]
    );
    let auto = next_addon(&mut a1.events, &vote.id).await;
    assert_eq!(auto.target.id, poll.id);
    assert!(auto.target.from_me);
    // And the other way: a poll from b1, a vote from a1 by the LID key it received.
    let poll2 = b1.messenger.send_message(&a_lid, lunch()).await.unwrap();
    let seen2 = next_upsert(&mut a1.events, |m| m.key.id == poll2.id).await;
    let vote2 = a1
        .messenger
        .vote_poll(&seen2.key, &["salad"])
        .await
        .unwrap();
    let got2 = next_upsert(&mut b1.events, |m| m.key.id == vote2.id).await;
    let auto2 = next_addon(&mut b1.events, &vote2.id).await;
    assert_eq!(auto2.target.id, poll2.id);
    assert_eq!(
        auto2.kind,
        AddOnKind::PollVote {
            selected_options: vec![poll_option_hash("salad").to_vec()]
        }
    );
    assert!(b1.messenger.decrypt_poll_vote(&got2).await.is_ok());
}

/// The reaction `rx` reports for the message `id`: its target and emoji.
async fn next_reaction(rx: &mut broadcast::Receiver<Event>, id: &str) -> (MessageKey, String) {
    let a = next_addon(rx, id).await;
    match a.kind {
        AddOnKind::Reaction { text } => (a.target, text),
        other => panic!("not a reaction: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_are_reported_on_the_message_they_react_to() {
    use rand_core::OsRng;
    use wa_messages::{SecretContext, SecretUse};
    use wa_proto::common;
    use wa_proto::e2e::{EncReactionMessage, Message, ReactionMessage};

    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("ra1")).await;
    let mut a2 = link(&sim, A, memory_store("ra2")).await;
    let mut b1 = link(&sim, B, memory_store("rb1")).await;
    let (a, b) = (Jid::pn(A), Jid::pn(B));

    // b1 reacts to a1's message by the key it received; A's devices see it on their own
    // message (from_me), with the reactor and its time.
    let hello = a1
        .messenger
        .send_message(&b, MessageContent::text("hello"))
        .await
        .unwrap();
    let seen = next_upsert(&mut b1.events, |m| m.key.id == hello.id).await;
    let hello_secret = seen
        .message
        .message_context_info
        .as_ref()
        .and_then(|c| c.message_secret.clone())
        .expect("the message carries a secret");
    let react = |key: &MessageKey, emoji: &str| MessageContent::Reaction {
        key: key.clone(),
        emoji: emoji.to_owned(),
        sender_timestamp_ms: 1_800_000_000_000,
    };
    let thumbs = b1
        .messenger
        .send_message(&a, react(&seen.key, "👍"))
        .await
        .unwrap();
    let auto = next_addon(&mut a1.events, &thumbs.id).await;
    assert_eq!(auto.target, hello);
    assert_eq!(auto.sender, b);
    assert_eq!(auto.sender_timestamp_ms, 1_800_000_000_000);
    assert_eq!(
        auto.kind,
        AddOnKind::Reaction {
            text: "👍".into()
        }
    );
    assert_eq!(
        next_reaction(&mut a2.events, &thumbs.id).await,
        (hello.clone(), "👍".to_owned())
    );

    // a1 reacts to b1's reply; b1 sees it on its message, a2 (the copy) on B's.
    let reply = b1
        .messenger
        .send_message(&a, MessageContent::text("hi"))
        .await
        .unwrap();
    let seen = next_upsert(&mut a1.events, |m| m.key.id == reply.id).await;
    let heart = a1
        .messenger
        .send_message(&b, react(&seen.key, "❤"))
        .await
        .unwrap();
    assert_eq!(
        next_reaction(&mut b1.events, &heart.id).await,
        (reply.clone(), "❤".to_owned())
    );
    assert_eq!(
        next_reaction(&mut a2.events, &heart.id).await,
        (
            MessageKey::new(b.clone(), false, reply.id.clone()),
            "❤".to_owned()
        )
    );
    // Taken back: an empty emoji.
    let gone = a1
        .messenger
        .send_message(&b, react(&seen.key, ""))
        .await
        .unwrap();
    assert_eq!(
        next_reaction(&mut b1.events, &gone.id).await,
        (reply.clone(), String::new())
    );

    // A reaction naming no usable message is reported as a message only.
    let mut junk = seen.key.clone();
    junk.id = "X".repeat(200);
    let odd = a1
        .messenger
        .send_message(&b, react(&junk, "?"))
        .await
        .unwrap();
    next_upsert(&mut b1.events, |m| m.key.id == odd.id).await;
    let addon = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        loop {
            if let Ok(Event::AddOn(a)) = b1.events.recv().await
                && a.key.id == odd.id
            {
                return a;
            }
        }
    })
    .await;
    assert!(addon.is_err(), "no add-on for {:?}", addon);

    // An encrypted reaction from b1 to a1's message opens with that message's secret.
    let plain = ReactionMessage {
        text: Some("🎉".into()),
        sender_timestamp_ms: Some(1_800_000_000_001),
        ..Default::default()
    };
    let ctx = SecretContext {
        message_id: &hello.id,
        creator: &a,
        modifier: &b,
        message_secret: &hello_secret,
    };
    let (payload, iv) = ctx
        .encrypt(
            SecretUse::Reaction,
            &prost::Message::encode_to_vec(&plain),
            &mut OsRng,
        )
        .unwrap();
    let enc = Message {
        enc_reaction_message: Some(Box::new(EncReactionMessage {
            target_message_key: Some(common::MessageKey {
                remote_jid: Some(a.to_string()),
                from_me: Some(false),
                id: Some(hello.id.clone()),
                ..Default::default()
            }),
            enc_payload: Some(payload),
            enc_iv: Some(iv.to_vec()),
            ..Default::default()
        })),
        ..Default::default()
    };
    let party = b1
        .messenger
        .send_message(&a, MessageContent::Prepared(Box::new(enc)))
        .await
        .unwrap();
    let auto = next_addon(&mut a1.events, &party.id).await;
    assert_eq!(auto.target, hello);
    assert_eq!(auto.sender_timestamp_ms, 1_800_000_000_001);
    assert_eq!(
        auto.kind,
        AddOnKind::Reaction {
            text: "🎉".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_reactions_comments_and_edits_open_with_the_target_secret() {
    use rand_core::OsRng;
    use wa_messages::{SecretContext, SecretUse};
    use wa_proto::e2e::{Message, SecretEncryptedMessage, secret_encrypted_message};

    let sim = Sim::start(SimConfig::default()).await.unwrap();
    sim.add_account(A).await;
    sim.add_account(B).await;
    let mut a1 = link(&sim, A, memory_store("ea1")).await;
    let mut b1 = link(&sim, B, memory_store("eb1")).await;
    let (a, b) = (Jid::pn(A), Jid::pn(B));
    let hello = a1
        .messenger
        .send_message(&b, MessageContent::text("hello"))
        .await
        .unwrap();
    let seen = next_upsert(&mut b1.events, |m| m.key.id == hello.id).await;

    // b1 reacts encrypted by the key it received; a1 opens it on its own message.
    let fire = b1.messenger.react_encrypted(&seen.key, "🔥").await.unwrap();
    let got = next_addon(&mut a1.events, &fire.id).await;
    assert_eq!(got.target, hello);
    assert_eq!(got.sender, b);
    assert_eq!(
        got.kind,
        AddOnKind::Reaction {
            text: "🔥".into()
        }
    );

    // b1 comments; a1 gets the comment as a message and opens it.
    let text = |t: &str| Message {
        conversation: Some(t.to_owned()),
        ..Default::default()
    };
    let key = b1
        .messenger
        .comment(&seen.key, &text("nice"))
        .await
        .unwrap();
    let comment = next_upsert(&mut a1.events, |m| m.key.id == key.id).await;
    let target = comment
        .message
        .enc_comment_message
        .as_ref()
        .and_then(|c| c.target_message_key.as_ref())
        .expect("a comment names its target");
    assert_eq!(
        target.participant.as_deref(),
        Some(A.to_owned() + "@s.whatsapp.net").as_deref()
    );
    let opened = a1.messenger.decrypt_comment(&comment).await.unwrap();
    assert_eq!(opened.conversation.as_deref(), Some("nice"));
    // Not a comment: a typed error.
    assert!(matches!(
        a1.messenger.decrypt_comment(&seen).await,
        Err(Error::NotAnAddOn(_))
    ));

    // a1 edits its message secretly (as WhatsApp edits events and polls); b1 opens it.
    let secret = seen
        .message
        .message_context_info
        .as_ref()
        .and_then(|c| c.message_secret.clone())
        .expect("the message carries a secret");
    let ctx = SecretContext {
        message_id: &hello.id,
        creator: &a,
        modifier: &a,
        message_secret: &secret,
    };
    let (payload, iv) = ctx
        .encrypt(
            SecretUse::MessageEdit,
            &prost::Message::encode_to_vec(&text("hello, edited")),
            &mut OsRng,
        )
        .unwrap();
    let edit = Message {
        secret_encrypted_message: Some(Box::new(SecretEncryptedMessage {
            target_message_key: Some(wa_messages::key_to_proto(&hello)),
            enc_payload: Some(payload),
            enc_iv: Some(iv.to_vec()),
            secret_enc_type: Some(secret_encrypted_message::SecretEncType::MessageEdit as i32),
            ..Default::default()
        })),
        ..Default::default()
    };
    let key = a1
        .messenger
        .send_message(&b, MessageContent::Prepared(Box::new(edit)))
        .await
        .unwrap();
    let got = next_upsert(&mut b1.events, |m| m.key.id == key.id).await;
    let inside = b1.messenger.decrypt_secret_message(&got).await.unwrap();
    assert_eq!(inside.conversation.as_deref(), Some("hello, edited"));
    assert!(matches!(
        b1.messenger.decrypt_secret_message(&seen).await,
        Err(Error::NotAnAddOn(_))
    ));
}
