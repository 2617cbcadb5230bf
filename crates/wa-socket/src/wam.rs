//! WAM, WhatsApp's binary analytics format (Baileys' `encodeWAM` / `sendWAMBuffer`).
//!
//! A buffer is an 8-byte header (`WAM`, protocol version 5, a flag byte, a big-endian
//! sequence number, the channel) and then records. Each record starts with a flag byte
//! (low two bits: global attribute, event or field; bit 2: last record of its event;
//! bit 3: two-byte key; high four bits: the value's type) and its key, then the value:
//! integers 0 and 1 are carried in the type alone, other integers in 1, 2 or 4
//! little-endian bytes (larger ones, and fractions, as a little-endian double), strings
//! with a 1, 2 or 4-byte length. An event's value is minus its weight; its global
//! attributes come before it and its fields after it.
//!
//! Events and attributes are named as WhatsApp Web names them ([`WamEvent::named`],
//! [`WamEvent::set`], [`WamEvent::set_global`]) or given by id ([`WamEvent::new`],
//! [`WamEvent::field`], [`WamEvent::global`]). [`encode`] makes the buffer and
//! [`Socket::send_wam_buffer`](crate::Socket::send_wam_buffer) sends it; [`decode`]
//! reads one back.
//!
//! One difference from Baileys' encoder: a field that is not an event's last is flagged
//! as a field; Baileys flags it as an event, which makes a reader take it as the start
//! of another event. Buffers with at most one field per event are byte for byte the
//! same.

use crate::Error;

/// An event definition of the table.
pub(crate) struct EventDef {
    pub(crate) name: &'static str,
    pub(crate) id: u16,
    pub(crate) weight: i32,
    pub(crate) fields: &'static [(&'static str, u16)],
}

/// A global attribute definition of the table.
pub(crate) struct GlobalDef {
    pub(crate) name: &'static str,
    pub(crate) id: u16,
}

const FLAG_GLOBAL: u8 = 0;
const FLAG_EVENT: u8 = 1;
const FLAG_FIELD: u8 = 2;
const FLAG_LAST: u8 = 4;
const FLAG_WIDE_KEY: u8 = 8;

/// The protocol version the header names.
pub const PROTOCOL_VERSION: u8 = 5;

/// A value of a field or global attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum WamValue {
    /// A flag, carried as the integer 0 or 1.
    Bool(bool),
    /// An integer. Beyond 32 bits it is carried as a double, as WhatsApp Web does.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// A string.
    Str(String),
}

impl From<bool> for WamValue {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}
impl From<i64> for WamValue {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}
impl From<i32> for WamValue {
    fn from(v: i32) -> Self {
        Self::Int(v.into())
    }
}
impl From<u32> for WamValue {
    fn from(v: u32) -> Self {
        Self::Int(v.into())
    }
}
impl From<f64> for WamValue {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}
impl From<&str> for WamValue {
    fn from(v: &str) -> Self {
        Self::Str(v.to_owned())
    }
}
impl From<String> for WamValue {
    fn from(v: String) -> Self {
        Self::Str(v)
    }
}

/// One event to report: its id and weight, its fields and the global attributes sent
/// with it.
#[derive(Debug, Clone, PartialEq)]
pub struct WamEvent {
    id: u16,
    weight: i32,
    def: Option<&'static EventDef>,
    fields: Vec<(u16, WamValue)>,
    globals: Vec<(u16, WamValue)>,
}

impl PartialEq for EventDef {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl std::fmt::Debug for EventDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl WamEvent {
    /// The event with this id and weight (WhatsApp Web samples events by weight: one in
    /// `weight` is sent).
    pub fn new(id: u16, weight: i32) -> Self {
        Self {
            id,
            weight,
            def: None,
            fields: Vec::new(),
            globals: Vec::new(),
        }
    }

    /// The event WhatsApp Web calls `name` (e.g. `"WamDroppedEvent"`), with its id and
    /// weight from the table.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a name the table does not have.
    pub fn named(name: &str) -> Result<Self, Error> {
        let def = crate::wam_table::EVENTS
            .binary_search_by(|e| e.name.cmp(name))
            .map(|i| &crate::wam_table::EVENTS[i])
            .map_err(|_| Error::InvalidInput("unknown WAM event"))?;
        Ok(Self {
            def: Some(def),
            ..Self::new(def.id, def.weight)
        })
    }

    /// Adds the field with id `id`.
    #[must_use]
    pub fn field(mut self, id: u16, value: impl Into<WamValue>) -> Self {
        self.fields.push((id, value.into()));
        self
    }

    /// Adds the field this event calls `name` (an event made with [`WamEvent::named`]).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the event has no such field (or was made by id).
    pub fn set(self, name: &str, value: impl Into<WamValue>) -> Result<Self, Error> {
        let id = self
            .def
            .and_then(|d| d.fields.iter().find(|(n, _)| *n == name))
            .map(|(_, id)| *id)
            .ok_or_else(|| Error::InvalidInput("unknown WAM field"))?;
        Ok(self.field(id, value))
    }

    /// Adds the global attribute with id `id`, sent before the event.
    #[must_use]
    pub fn global(mut self, id: u16, value: impl Into<WamValue>) -> Self {
        self.globals.push((id, value.into()));
        self
    }

    /// Adds the global attribute WhatsApp Web calls `name` (e.g. `"appBuild"`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a name the table does not have.
    pub fn set_global(self, name: &str, value: impl Into<WamValue>) -> Result<Self, Error> {
        let id = crate::wam_table::GLOBALS
            .binary_search_by(|g| g.name.cmp(name))
            .map(|i| crate::wam_table::GLOBALS[i].id)
            .map_err(|_| Error::InvalidInput("unknown WAM global attribute"))?;
        Ok(self.global(id, value))
    }
}

fn record(out: &mut Vec<u8>, kind: u8, id: u16, value: &WamValue) {
    let header = |out: &mut Vec<u8>, ty: u8| {
        if let Ok(small) = u8::try_from(id) {
            out.extend_from_slice(&[kind | (ty << 4), small]);
        } else {
            out.push(kind | FLAG_WIDE_KEY | (ty << 4));
            out.extend_from_slice(&id.to_le_bytes());
        }
    };
    match value {
        WamValue::Bool(b) => header(out, 1 + u8::from(*b)),
        WamValue::Int(v @ (0 | 1)) => header(out, 1 + u8::from(*v == 1)),
        WamValue::Int(v) => {
            if let Ok(x) = i8::try_from(*v) {
                header(out, 3);
                out.extend_from_slice(&x.to_le_bytes());
            } else if let Ok(x) = i16::try_from(*v) {
                header(out, 4);
                out.extend_from_slice(&x.to_le_bytes());
            } else if let Ok(x) = i32::try_from(*v) {
                header(out, 5);
                out.extend_from_slice(&x.to_le_bytes());
            } else {
                header(out, 7);
                #[allow(clippy::cast_precision_loss)]
                out.extend_from_slice(&(*v as f64).to_le_bytes());
            }
        }
        WamValue::Float(f) => {
            header(out, 7);
            out.extend_from_slice(&f.to_le_bytes());
        }
        WamValue::Str(s) => {
            let b = s.as_bytes();
            if let Ok(n) = u8::try_from(b.len()) {
                header(out, 8);
                out.push(n);
            } else if let Ok(n) = u16::try_from(b.len()) {
                header(out, 9);
                out.extend_from_slice(&n.to_le_bytes());
            } else {
                header(out, 10);
                let n = u32::try_from(b.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&n.to_le_bytes());
            }
            let n = b.len().min(u32::MAX as usize);
            out.extend_from_slice(&b[..n]);
        }
    }
}

/// The WAM buffer with sequence number `sequence` holding `events` in order, each
/// preceded by its global attributes.
pub fn encode(sequence: u16, events: &[WamEvent]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"WAM");
    out.push(PROTOCOL_VERSION);
    out.push(1);
    out.extend_from_slice(&sequence.to_be_bytes());
    out.push(0);
    for e in events {
        for (id, v) in &e.globals {
            record(&mut out, FLAG_GLOBAL, *id, v);
        }
        let flag = if e.fields.is_empty() {
            FLAG_EVENT | FLAG_LAST
        } else {
            FLAG_EVENT
        };
        record(&mut out, flag, e.id, &WamValue::Int(-i64::from(e.weight)));
        for (i, (id, v)) in e.fields.iter().enumerate() {
            let flag = if i + 1 == e.fields.len() {
                FLAG_FIELD | FLAG_LAST
            } else {
                FLAG_FIELD
            };
            record(&mut out, flag, *id, v);
        }
    }
    out
}

/// What a record of a decoded buffer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WamRecordKind {
    /// A global attribute.
    Global,
    /// The start of an event (its value is minus its weight).
    Event,
    /// A field of the event before it.
    Field,
}

/// One record of a decoded buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct WamRecord {
    /// What it is.
    pub kind: WamRecordKind,
    /// Its key: the attribute's, event's or field's id.
    pub id: u16,
    /// Whether it is flagged as its event's last record.
    pub last: bool,
    /// Its value (`None` for a null).
    pub value: Option<WamValue>,
}

/// A decoded WAM buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct WamBuffer {
    /// The header's protocol version.
    pub version: u8,
    /// The header's sequence number.
    pub sequence: u16,
    /// The header's channel byte (0: regular).
    pub channel: u8,
    /// The records, in order.
    pub records: Vec<WamRecord>,
}

/// Reads a WAM buffer.
///
/// # Errors
/// [`Error::InvalidInput`] for a buffer without the header, a record cut short, an
/// unknown value type or record kind, or a string that is not UTF-8.
pub fn decode(bytes: &[u8]) -> Result<WamBuffer, Error> {
    let bad = |what| Error::InvalidInput(what);
    let mut r = Reader { bytes, at: 0 };
    if r.take(3)? != b"WAM" {
        return Err(bad("not a WAM buffer"));
    }
    let version = r.u8()?;
    let _flag = r.u8()?;
    let sequence = u16::from_be_bytes([r.u8()?, r.u8()?]);
    let channel = r.u8()?;
    let mut records = Vec::new();
    while r.at < bytes.len() {
        let flag = r.u8()?;
        let kind = match flag & 3 {
            0 => WamRecordKind::Global,
            1 => WamRecordKind::Event,
            2 => WamRecordKind::Field,
            _ => return Err(bad("unknown WAM record kind")),
        };
        let id = if flag & FLAG_WIDE_KEY != 0 {
            u16::from_le_bytes([r.u8()?, r.u8()?])
        } else {
            u16::from(r.u8()?)
        };
        let value = match flag >> 4 {
            0 => None,
            1 => Some(WamValue::Int(0)),
            2 => Some(WamValue::Int(1)),
            3 => Some(WamValue::Int(i8::from_le_bytes([r.u8()?]).into())),
            4 => Some(WamValue::Int(i16::from_le_bytes(r.array()?).into())),
            5 => Some(WamValue::Int(i32::from_le_bytes(r.array()?).into())),
            6 => Some(WamValue::Int(i64::from_le_bytes(r.array()?))),
            7 => Some(WamValue::Float(f64::from_le_bytes(r.array()?))),
            t @ 8..=10 => {
                let n = match t {
                    8 => usize::from(r.u8()?),
                    9 => usize::from(u16::from_le_bytes(r.array()?)),
                    _ => usize::try_from(u32::from_le_bytes(r.array()?))
                        .map_err(|_| bad("WAM string too long"))?,
                };
                let s = std::str::from_utf8(r.take(n)?).map_err(|_| bad("WAM string not UTF-8"))?;
                Some(WamValue::Str(s.to_owned()))
            }
            _ => return Err(bad("unknown WAM value type")),
        };
        records.push(WamRecord {
            kind,
            id,
            last: flag & FLAG_LAST != 0,
            value,
        });
    }
    Ok(WamBuffer {
        version,
        sequence,
        channel,
        records,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| Error::InvalidInput("WAM buffer cut short"))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

/// Largest WAM buffer sent in one request.
pub const MAX_BUFFER: usize = 64 * 1024;

impl crate::Socket {
    /// Sends a WAM buffer (made with [`encode`]) to WhatsApp's analytics endpoint:
    /// `<iq xmlns="w:stats" type="set"><add t>` with the buffer, as Baileys'
    /// `sendWAMBuffer` does. Nothing is sent unless the application calls this.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty buffer, one beyond [`MAX_BUFFER`] or one
    /// without the WAM header; socket errors and the server's.
    pub async fn send_wam_buffer(&self, buffer: Vec<u8>) -> Result<(), Error> {
        if buffer.is_empty() || buffer.len() > MAX_BUFFER || !buffer.starts_with(b"WAM") {
            return Err(Error::InvalidInput("not a WAM buffer of at most 64 KiB"));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let add = wa_binary::Node::builder("add")
            .attr("t", now.to_string())
            .bytes(buffer)
            .build();
        self.query(crate::socket::server_iq("w:stats", "set", add))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_are_sorted_by_name_for_lookup() {
        let events = crate::wam_table::EVENTS;
        assert!(events.windows(2).all(|w| w[0].name < w[1].name));
        let globals = crate::wam_table::GLOBALS;
        assert!(globals.windows(2).all(|w| w[0].name < w[1].name));
        assert_eq!(WamEvent::named("WamDroppedEvent").unwrap().id, 4358);
        assert!(WamEvent::named("NoSuchEvent").is_err());
        assert!(
            WamEvent::named("WamDroppedEvent")
                .unwrap()
                .set("noSuchField", 1)
                .is_err()
        );
        assert!(WamEvent::new(4358, 1).set("droppedEventCode", 1).is_err());
        assert!(WamEvent::new(1, 1).set_global("noSuchGlobal", 1).is_err());
    }

    #[test]
    fn fields_are_flagged_as_fields_and_the_last_as_last() {
        let e = WamEvent::named("WamDroppedEvent")
            .unwrap()
            .set("droppedEventCode", 2)
            .unwrap()
            .set("droppedEventCount", 3)
            .unwrap()
            .set("isFromWamsys", false)
            .unwrap();
        let b = decode(&encode(10, &[e])).unwrap();
        assert_eq!((b.version, b.sequence, b.channel), (5, 10, 0));
        let kinds: Vec<_> = b.records.iter().map(|r| (r.kind, r.id, r.last)).collect();
        assert_eq!(
            kinds,
            [
                (WamRecordKind::Event, 4358, false),
                (WamRecordKind::Field, 1, false),
                (WamRecordKind::Field, 2, false),
                (WamRecordKind::Field, 3, true),
            ]
        );
        assert_eq!(b.records[0].value, Some(WamValue::Int(-1)));
        assert_eq!(b.records[3].value, Some(WamValue::Int(0)));
    }

    #[test]
    fn hostile_buffers_are_refused() {
        for bad in [
            &b""[..],
            b"WAX\x05\x01\x00\x00\x00",
            b"WAM\x05\x01\x00",
            b"WAM\x05\x01\x00\x00\x00\x03\x01",
            b"WAM\x05\x01\x00\x00\x00\xb1\x01",
            b"WAM\x05\x01\x00\x00\x00\x81\x01\x05ab",
            b"WAM\x05\x01\x00\x00\x00\xa1\x01\xff\xff\xff\xff",
            b"WAM\x05\x01\x00\x00\x00\x81\x01\x02\xff\xfe",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }
}
