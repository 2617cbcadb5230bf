//! Shared helpers of the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;

use rand_core::{CryptoRng, RngCore};
use serde_json::Value;

pub const KEY_ID: [u8; 6] = [0, 0, 0, 0, 0, 10];

pub fn vectors() -> Value {
    serde_json::from_str(include_str!("../vectors/app_state.json")).expect("vector JSON")
}

pub fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

pub fn arr32(v: &[u8]) -> [u8; 32] {
    v.try_into().expect("32 bytes")
}

pub fn arr128(v: &[u8]) -> [u8; 128] {
    v.try_into().expect("128 bytes")
}

/// The vectors' sync key, as a key lookup.
pub fn keys() -> HashMap<Vec<u8>, Vec<u8>> {
    HashMap::from([(KEY_ID.to_vec(), vec![0x7f; 32])])
}

/// An "RNG" that replays fixed bytes (the IVs Baileys drew), then fails the test.
pub struct Replay(pub Vec<u8>);

impl RngCore for Replay {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        assert!(self.0.len() >= dest.len(), "replay RNG exhausted");
        let rest = self.0.split_off(dest.len());
        dest.copy_from_slice(&self.0);
        self.0 = rest;
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Replay {}
