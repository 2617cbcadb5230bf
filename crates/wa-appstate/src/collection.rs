use std::fmt;

/// The app-state collections (patch names). The name is part of the snapshot and patch
/// MACs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Collection {
    /// `critical_block`: push name, locale, security notifications.
    CriticalBlock,
    /// `critical_unblock_low`: the contact list.
    CriticalUnblockLow,
    /// `regular_high`: mute, star, delete/clear chat, delete-for-me.
    RegularHigh,
    /// `regular_low`: pin, archive, mark read, the unarchive setting.
    RegularLow,
    /// `regular`: labels, quick replies and other settings.
    Regular,
}

impl Collection {
    /// Every collection, in the order WhatsApp clients sync them.
    pub const ALL: [Collection; 5] = [
        Collection::CriticalBlock,
        Collection::CriticalUnblockLow,
        Collection::RegularHigh,
        Collection::Regular,
        Collection::RegularLow,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Collection::CriticalBlock => "critical_block",
            Collection::CriticalUnblockLow => "critical_unblock_low",
            Collection::RegularHigh => "regular_high",
            Collection::RegularLow => "regular_low",
            Collection::Regular => "regular",
        }
    }

    /// Parses a wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Collection::ALL {
            assert_eq!(Collection::from_name(c.as_str()), Some(c));
            assert_eq!(c.to_string(), c.as_str());
        }
        assert_eq!(Collection::from_name("regular_mid"), None);
    }
}
