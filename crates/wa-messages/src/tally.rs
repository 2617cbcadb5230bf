//! Poll and event results from the votes and responses reported as
//! [`Event::AddOn`](wa_types::Event::AddOn): each voter's latest vote counts, as
//! Baileys' `updateMessageWithPollUpdate` and `getAggregateVotesInPollMessage` (and
//! their event-response twins) count them.

use std::collections::HashMap;

use wa_binary::Jid;
use wa_proto::e2e::Message;
use wa_proto::e2e::event_response_message::EventResponseType;
use wa_types::{AddOnKind, AddOnUpdate, MessageKey};

use crate::secret::poll_option_hash;

/// Most voters or responders a tally keeps; later newcomers are not counted.
pub const MAX_TALLY_VOTERS: usize = 10_000;

/// Most options a vote selects that are counted (a poll has at most a few dozen).
const MAX_SELECTED: usize = 64;

/// The options of the poll `message` creates (any of its versions), `None` when it
/// creates none.
pub fn poll_options(message: &Message) -> Option<Vec<String>> {
    let creation = message
        .poll_creation_message
        .as_deref()
        .or(message.poll_creation_message_v2.as_deref())
        .or(message.poll_creation_message_v3.as_deref())
        .or(message.poll_creation_message_v5.as_deref())
        .or(message.poll_creation_message_v6.as_deref())?;
    Some(
        creation
            .options
            .iter()
            .map(|o| o.option_name.clone().unwrap_or_default())
            .collect(),
    )
}

/// One option of a poll and who chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollOptionVotes {
    /// The option's name; `None` for a hash that names none of the poll's options.
    pub name: Option<String>,
    /// SHA-256 of the name, as votes carry it.
    pub hash: [u8; 32],
    /// Who chose it, in the order their current votes arrived.
    pub voters: Vec<Jid>,
}

/// The votes on one poll: give it each [`AddOnUpdate`] reported for the poll; a voter's
/// later vote replaces the earlier (an empty one withdraws it).
#[derive(Debug, Clone)]
pub struct PollTally {
    poll: MessageKey,
    options: Vec<(String, [u8; 32])>,
    /// Per voter, the hashes it chose.
    votes: Latest<Vec<[u8; 32]>>,
}

impl PollTally {
    /// A tally for the poll `poll` (its key as this device knows it) with `options`.
    pub fn new(poll: MessageKey, options: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let options = options
            .into_iter()
            .map(Into::into)
            .map(|name: String| {
                let hash = poll_option_hash(&name);
                (name, hash)
            })
            .collect();
        Self {
            poll,
            options,
            votes: Latest::default(),
        }
    }

    /// A tally for the poll a reported message creates; `None` when it creates none.
    pub fn for_message(message: &wa_types::WaMessage) -> Option<Self> {
        Some(Self::new(
            message.key.clone(),
            poll_options(&message.message)?,
        ))
    }

    /// Counts `update` when it is a vote on this poll and not older than the voter's
    /// current vote; returns whether the tally changed.
    pub fn apply(&mut self, update: &AddOnUpdate) -> bool {
        let AddOnKind::PollVote { selected_options } = &update.kind else {
            return false;
        };
        if !same_message(&update.target, &self.poll) {
            return false;
        }
        let chosen: Vec<[u8; 32]> = selected_options
            .iter()
            .filter_map(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
            .take(MAX_SELECTED)
            .collect();
        let chosen = (!chosen.is_empty()).then_some(chosen);
        self.votes.offer(
            update.sender.to_non_ad(),
            update.sender_timestamp_ms,
            chosen,
        )
    }

    /// Each option with its voters, in the poll's order, then any hash no option names.
    pub fn results(&self) -> Vec<PollOptionVotes> {
        let mut out: Vec<PollOptionVotes> = self
            .options
            .iter()
            .map(|(name, hash)| PollOptionVotes {
                name: Some(name.clone()),
                hash: *hash,
                voters: Vec::new(),
            })
            .collect();
        for (voter, chosen) in self.votes.in_arrival_order() {
            for hash in chosen {
                match out.iter_mut().position(|o| o.hash == *hash) {
                    Some(i) => out[i].voters.push(voter.clone()),
                    None => out.push(PollOptionVotes {
                        name: None,
                        hash: *hash,
                        voters: vec![voter.clone()],
                    }),
                }
            }
        }
        out
    }
}

/// The responses to one event: give it each [`AddOnUpdate`] reported for the event; a
/// responder's later response replaces the earlier.
#[derive(Debug, Clone)]
pub struct EventTally {
    event: MessageKey,
    /// Per responder, the answer and the guests it brings.
    responses: Latest<(EventResponseType, u32)>,
}

/// Who gave one answer to an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventResponders {
    /// The answer.
    pub response: EventResponseType,
    /// Who gave it, in the order their current answers arrived.
    pub responders: Vec<Jid>,
    /// The guests they bring along, together.
    pub extra_guests: u32,
}

impl EventTally {
    /// A tally for the event `event` (its key as this device knows it).
    pub fn new(event: MessageKey) -> Self {
        Self {
            event,
            responses: Latest::default(),
        }
    }

    /// Counts `update` when it is a response to this event and not older than the
    /// responder's current one; returns whether the tally changed.
    pub fn apply(&mut self, update: &AddOnUpdate) -> bool {
        let AddOnKind::EventResponse {
            response,
            extra_guests,
        } = &update.kind
        else {
            return false;
        };
        if !same_message(&update.target, &self.event) {
            return false;
        }
        let answer = (*response, extra_guests.unwrap_or(0));
        self.responses.offer(
            update.sender.to_non_ad(),
            update.sender_timestamp_ms,
            Some(answer),
        )
    }

    /// Going, not going and maybe, each with its responders (the unknown answer
    /// included only when someone gave it).
    pub fn results(&self) -> Vec<EventResponders> {
        let mut out: Vec<EventResponders> = [
            EventResponseType::Going,
            EventResponseType::NotGoing,
            EventResponseType::Maybe,
        ]
        .into_iter()
        .map(|response| EventResponders {
            response,
            responders: Vec::new(),
            extra_guests: 0,
        })
        .collect();
        for (who, (response, guests)) in self.responses.in_arrival_order() {
            let i = match out.iter().position(|o| o.response == *response) {
                Some(i) => i,
                None => {
                    out.push(EventResponders {
                        response: *response,
                        responders: Vec::new(),
                        extra_guests: 0,
                    });
                    out.len() - 1
                }
            };
            out[i].responders.push(who.clone());
            out[i].extra_guests = out[i].extra_guests.saturating_add(*guests);
        }
        out
    }
}

/// Each sender's latest answer by the sender's own clock, for at most
/// [`MAX_TALLY_VOTERS`] senders.
#[derive(Debug, Clone)]
struct Latest<T> {
    /// Per sender: when it answered (ms), when the answer arrived (a counter), the answer.
    by: HashMap<Jid, (i64, u64, T)>,
    arrivals: u64,
}

impl<T> Default for Latest<T> {
    fn default() -> Self {
        Self {
            by: HashMap::new(),
            arrivals: 0,
        }
    }
}

impl<T> Latest<T> {
    /// Takes `who`'s answer made at `at` (`None` withdraws it) unless its current one
    /// is newer, or `who` is new and the tally full; returns whether it was taken.
    fn offer(&mut self, who: Jid, at: i64, answer: Option<T>) -> bool {
        match self.by.get(&who) {
            Some((t, ..)) if *t > at => return false,
            None if self.by.len() >= MAX_TALLY_VOTERS => return false,
            _ => {}
        }
        match answer {
            None => {
                self.by.remove(&who);
            }
            Some(a) => {
                self.arrivals += 1;
                self.by.insert(who, (at, self.arrivals, a));
            }
        }
        true
    }

    /// The senders and their answers, in the order the answers arrived.
    fn in_arrival_order(&self) -> Vec<(&Jid, &T)> {
        let mut all: Vec<_> = self.by.iter().collect();
        all.sort_unstable_by_key(|(_, (_, arrived, _))| *arrived);
        all.into_iter().map(|(who, (_, _, a))| (who, a)).collect()
    }
}

/// Whether two keys name the same message: the same id in the same chat (the chat's
/// device part and the participant's form may differ).
fn same_message(a: &MessageKey, b: &MessageKey) -> bool {
    a.id == b.id && a.remote_jid.to_non_ad() == b.remote_jid.to_non_ad()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll() -> MessageKey {
        MessageKey::new(Jid::pn("1000"), true, "POLL1")
    }

    fn vote(voter: &str, at: i64, options: &[&str]) -> AddOnUpdate {
        AddOnUpdate {
            target: poll(),
            key: MessageKey::new(Jid::pn("1000"), false, format!("V{voter}{at}")),
            sender: Jid::pn(voter.to_owned()),
            sender_timestamp_ms: at,
            kind: AddOnKind::PollVote {
                selected_options: options
                    .iter()
                    .map(|o| poll_option_hash(o).to_vec())
                    .collect(),
            },
        }
    }

    fn names(t: &PollTally) -> Vec<(Option<String>, Vec<String>)> {
        t.results()
            .into_iter()
            .map(|o| {
                let voters = o.voters.iter().map(|v| v.user.to_string()).collect();
                (o.name, voters)
            })
            .collect()
    }

    #[test]
    fn the_latest_vote_of_each_voter_counts() {
        let mut t = PollTally::new(poll(), ["pizza", "sushi", "salad"]);
        assert!(t.apply(&vote("1", 10, &["pizza", "sushi"])));
        assert!(t.apply(&vote("2", 11, &["sushi"])));
        // 1 changes its mind; an older vote arriving late does not count.
        assert!(t.apply(&vote("1", 20, &["salad"])));
        assert!(!t.apply(&vote("1", 15, &["pizza"])));
        let s = |x: &str| Some(x.to_owned());
        assert_eq!(
            names(&t),
            vec![
                (s("pizza"), vec![]),
                (s("sushi"), vec!["2".to_owned()]),
                (s("salad"), vec!["1".to_owned()]),
            ]
        );
        // An empty vote withdraws; a hash no option names is listed unnamed.
        assert!(t.apply(&vote("2", 30, &[])));
        assert!(t.apply(&vote("3", 31, &["pasta"])));
        assert_eq!(
            names(&t),
            vec![
                (s("pizza"), vec![]),
                (s("sushi"), vec![]),
                (s("salad"), vec!["1".to_owned()]),
                (None, vec!["3".to_owned()]),
            ]
        );
        assert_eq!(t.results()[3].hash, poll_option_hash("pasta"));
    }

    #[test]
    fn updates_for_other_messages_or_of_other_kinds_are_ignored() {
        let mut t = PollTally::new(poll(), ["a"]);
        let mut other = vote("1", 1, &["a"]);
        other.target.id = "OTHER".into();
        assert!(!t.apply(&other));
        let mut response = vote("1", 1, &[]);
        response.kind = AddOnKind::EventResponse {
            response: EventResponseType::Going,
            extra_guests: None,
        };
        assert!(!t.apply(&response));
        let mut reaction = vote("1", 1, &[]);
        reaction.kind = AddOnKind::Reaction {
            text: "👍".into()
        };
        assert!(!t.apply(&reaction));
        assert!(t.results()[0].voters.is_empty());
    }

    #[test]
    fn event_responses_are_counted_per_responder() {
        let event =
            MessageKey::new(Jid::group("1203"), false, "EV1").with_participant(Jid::pn("9"));
        let answer = |who: &str, at: i64, r: EventResponseType, guests: Option<u32>| AddOnUpdate {
            target: event.clone(),
            key: MessageKey::new(Jid::group("1203"), false, format!("R{who}{at}")),
            sender: Jid::pn(who.to_owned()),
            sender_timestamp_ms: at,
            kind: AddOnKind::EventResponse {
                response: r,
                extra_guests: guests,
            },
        };
        let mut t = EventTally::new(event.clone());
        assert!(t.apply(&answer("1", 1, EventResponseType::Going, Some(2))));
        assert!(t.apply(&answer("2", 2, EventResponseType::Maybe, None)));
        assert!(t.apply(&answer("2", 3, EventResponseType::Going, Some(1))));
        assert!(!t.apply(&answer("1", 0, EventResponseType::NotGoing, None)));
        let r = t.results();
        assert_eq!(r[0].response, EventResponseType::Going);
        assert_eq!(r[0].responders, vec![Jid::pn("1"), Jid::pn("2")]);
        assert_eq!(r[0].extra_guests, 3);
        assert!(r[1].responders.is_empty() && r[2].responders.is_empty());
    }

    #[test]
    fn a_tally_keeps_a_bounded_number_of_voters() {
        let mut t = PollTally::new(poll(), ["a"]);
        for i in 0..MAX_TALLY_VOTERS {
            assert!(t.apply(&vote(&i.to_string(), 1, &["a"])));
        }
        assert!(!t.apply(&vote("newcomer", 1, &["a"])));
        // Those already counted may still change their vote.
        assert!(t.apply(&vote("0", 2, &[])));
        assert_eq!(t.results()[0].voters.len(), MAX_TALLY_VOTERS - 1);
    }
}
