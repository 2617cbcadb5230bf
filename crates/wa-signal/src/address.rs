use std::fmt;

/// A Signal protocol address: a name (for WhatsApp, the JID user, plus `_<domain>` when the
/// JID's addressing domain is not 0) and a device id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProtocolAddress {
    /// The address name.
    pub name: String,
    /// The device id (0 = the primary phone).
    pub device_id: u32,
}

impl ProtocolAddress {
    /// Builds an address.
    pub fn new(name: impl Into<String>, device_id: u32) -> Self {
        Self {
            name: name.into(),
            device_id,
        }
    }
}

impl fmt::Display for ProtocolAddress {
    /// `name.device`, the form libsignal uses as a store key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.name, self.device_id)
    }
}

/// Anything that names one Signal peer device (a [`ProtocolAddress`] itself, or a JID).
pub trait SignalAddress {
    /// The Signal address of this device.
    fn signal_address(&self) -> ProtocolAddress;
}

impl SignalAddress for ProtocolAddress {
    fn signal_address(&self) -> ProtocolAddress {
        self.clone()
    }
}

impl<T: SignalAddress + ?Sized> SignalAddress for &T {
    fn signal_address(&self) -> ProtocolAddress {
        (**self).signal_address()
    }
}

/// The name of one sender's sender-key chain in one group: the group id (the group JID as a
/// string) and the sender's address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SenderKeyName {
    /// The group id (e.g. `120363000000000001@g.us`).
    pub group_id: String,
    /// The sending device.
    pub sender: ProtocolAddress,
}

impl SenderKeyName {
    /// Builds a sender-key name.
    pub fn new(group_id: impl Into<String>, sender: ProtocolAddress) -> Self {
        Self {
            group_id: group_id.into(),
            sender,
        }
    }
}

impl fmt::Display for SenderKeyName {
    /// `group::name::device`, the form Baileys uses as a store key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}::{}::{}",
            self.group_id, self.sender.name, self.sender.device_id
        )
    }
}
