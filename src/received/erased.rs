//! `_state/erased.json`: who was erased, without saying who. An erased participant's EANs and
//! installation ids are kept only as salted SHA-256 hashes, so that the bulk feed (which is not
//! per connection and may go on carrying an erased EAN) and the installation passes can leave
//! their data out without the lake holding the identifiers themselves. The salt is per lake:
//! the same EAN hashes differently in another lake, and a list of hashes is no list of EANs.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::lake::Lake;

/// `_state/erased.json`.
pub const ERASED_STATE: &str = "erased";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Erased {
    /// 32 hex digits, made on the first erasure.
    salt: String,
    /// Hex SHA-256 of `salt`, a NUL and the identifier.
    hashes: BTreeSet<String>,
}

impl Erased {
    pub fn load(lake: &Lake) -> Result<Self> {
        Ok(lake.read_state(ERASED_STATE)?.unwrap_or_default())
    }

    fn hash(&self, id: &str) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(self.salt.as_bytes());
        ctx.update(&[0]);
        ctx.update(id.as_bytes());
        ctx.finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `id` (an EAN or an installation id) belongs to an erased participant.
    pub fn contains(&self, id: &str) -> bool {
        !self.hashes.is_empty() && self.hashes.contains(&self.hash(id))
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub fn add(&mut self, id: &str) {
        if self.salt.is_empty() {
            self.salt = uuid::Uuid::new_v4().simple().to_string();
        }
        let h = self.hash(id);
        self.hashes.insert(h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_hashes_not_identifiers() {
        let mut e = Erased::default();
        assert!(!e.contains("871685900012345678"));
        e.add("871685900012345678");
        assert!(e.contains("871685900012345678"));
        assert!(!e.contains("871685900012345679"));
        let json = serde_json::to_string(&e).unwrap();
        assert!(!json.contains("871685900012345678"), "{json}");
        assert_eq!(e.hashes.iter().next().unwrap().len(), 64);
    }
}
