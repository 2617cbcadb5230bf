//! Group admin bot: in groups where it is an admin, `!add <phone>`, `!kick <phone>`,
//! `!promote <phone>`, `!subject <text>` and `!lock` / `!unlock` from admins are carried
//! out; everyone who joins is greeted.
//!
//! `cargo run -p wa --example group_admin_bot -- [auth.db]`

#![allow(clippy::print_stdout, clippy::print_stderr)]

use wa::prelude::*;
use wa::{GroupChange, GroupSetting, ParticipantAction};

fn phone_jid(arg: &str) -> Option<Jid> {
    let digits: String = arg.chars().filter(char::is_ascii_digit).collect();
    (digits.len() >= 5).then(|| Jid::pn(digits))
}

async fn command(sock: &WaSocket, m: &WaMessage, text: &str) -> Result<(), wa::Error> {
    let group = &m.key.remote_jid;
    let Some(sender) = &m.key.participant else {
        return Ok(());
    };
    let meta = sock.groups().metadata(group).await?;
    let is_admin = |j: &Jid| {
        meta.participants
            .iter()
            .any(|p| p.jid.user == j.user && p.role.is_admin())
    };
    if !is_admin(sender) {
        return Ok(());
    }
    let (cmd, arg) = text.split_once(' ').unwrap_or((text, ""));
    let groups = sock.groups();
    match (cmd, phone_jid(arg)) {
        ("!add", Some(j)) => drop(
            groups
                .participants_update(group, &[j], ParticipantAction::Add)
                .await?,
        ),
        ("!kick", Some(j)) => drop(
            groups
                .participants_update(group, &[j], ParticipantAction::Remove)
                .await?,
        ),
        ("!promote", Some(j)) => drop(
            groups
                .participants_update(group, &[j], ParticipantAction::Promote)
                .await?,
        ),
        ("!subject", _) if !arg.is_empty() => groups.update_subject(group, arg).await?,
        ("!lock", _) => groups.setting_update(group, GroupSetting::Locked).await?,
        ("!unlock", _) => groups.setting_update(group, GroupSetting::Unlocked).await?,
        _ => return Ok(()),
    }
    sock.reply(m, MessageContent::text("done")).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), wa::Error> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "admin-bot.db".into());
    let sock = make_wa_socket(WaConfig::new(wa::sqlite_store(&path, "default").await?))?;
    let mut events = sock.events();
    while let Some(event) = events.next().await {
        match event {
            Event::Connection(u) if u.qr.is_some() => {
                println!("link this device: {}", u.qr.unwrap_or_default());
            }
            Event::MessagesUpsert(up) => {
                for m in up.messages.iter().filter(|m| m.key.remote_jid.is_group()) {
                    if let Some(text) = message_text(&m.message).filter(|t| t.starts_with('!'))
                        && let Err(e) = command(&sock, m, text).await
                    {
                        eprintln!("{text}: {e}");
                    }
                }
            }
            Event::GroupUpdate(u) => {
                for change in &u.changes {
                    if let GroupChange::Added(who) = change {
                        let names: Vec<String> =
                            who.iter().map(|j| format!("+{}", j.user)).collect();
                        let hello = MessageContent::text(format!("Welcome {}!", names.join(", ")));
                        if let Err(e) = sock.send_message(&u.group, hello).await {
                            eprintln!("greeting: {e}");
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}
