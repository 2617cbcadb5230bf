//! wa-messages benchmarks: building a quoted text message, padding + encoding it, decoding
//! it back, generating a message id, and encrypting and decrypting a poll vote.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use wa_binary::Jid;
use wa_messages::{
    MessageBuilder, MessageContent, MessageKey, Quote, SecretContext, decode_plaintext,
    decrypt_poll_vote, encode_plaintext, encrypt_poll_vote, generate_message_id, poll_option_hash,
};
use wa_proto::e2e::{Message, PollVoteMessage};

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let chat: Jid = "120363000000000001@g.us".parse().expect("jid");
    let own = Jid::pn("15550000001");
    let member = Jid::pn("15550000002");
    let quoted_key = MessageKey::new(chat.clone(), false, "3EB0AAAAAAAAAAAAAAAA")
        .with_participant(member.clone());
    let quoted = Message {
        conversation: Some("the quoted one".into()),
        ..Default::default()
    };
    let build = |rng: &mut StdRng| {
        MessageBuilder::new(
            chat.clone(),
            MessageContent::text("hi @15550000002, see you at noon"),
        )
        .mentions([member.clone()])
        .quote(Quote::new(quoted_key.clone(), quoted.clone(), &own))
        .ephemeral_expiration(86_400)
        .build(rng)
        .expect("builds")
    };
    c.bench_function("build_quoted_text", |b| {
        b.iter(|| black_box(build(&mut rng)))
    });
    let msg = build(&mut rng);
    c.bench_function("encode_plaintext", |b| {
        b.iter(|| black_box(encode_plaintext(black_box(&msg), &mut rng)))
    });
    let padded = encode_plaintext(&msg, &mut rng);
    c.bench_function("decode_plaintext", |b| {
        b.iter(|| black_box(decode_plaintext(black_box(&padded)).expect("decodes")))
    });
    c.bench_function("generate_message_id", |b| {
        b.iter(|| black_box(generate_message_id(1_700_000_000, Some(&own), &mut rng)))
    });
    let secret = [9u8; 32];
    let ctx = SecretContext {
        message_id: "3EB0AAAAAAAAAAAAAAAA",
        creator: &own,
        modifier: &member,
        message_secret: &secret,
    };
    let vote = PollVoteMessage {
        selected_options: vec![poll_option_hash("pizza").to_vec()],
        ..Default::default()
    };
    c.bench_function("poll_vote_encrypt", |b| {
        b.iter(|| black_box(encrypt_poll_vote(&ctx, &vote, &mut rng).expect("encrypts")))
    });
    let enc = encrypt_poll_vote(&ctx, &vote, &mut rng).expect("encrypts");
    c.bench_function("poll_vote_decrypt", |b| {
        b.iter(|| black_box(decrypt_poll_vote(&ctx, black_box(&enc)).expect("decrypts")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
