//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_core::{CryptoRng, RngCore};

/// Runs a future whose IO is in memory (it never waits on anything external).
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// A random source that hands out recorded 32-byte private keys, in order, for each
/// 32-byte draw, and a seeded stream for every other draw (signature nonces, padding).
pub(crate) struct ReplayRng {
    keys: VecDeque<[u8; 32]>,
    other: StdRng,
}

impl ReplayRng {
    pub(crate) fn new(keys: impl IntoIterator<Item = [u8; 32]>) -> Self {
        Self {
            keys: keys.into_iter().collect(),
            other: StdRng::seed_from_u64(99),
        }
    }
}

impl RngCore for ReplayRng {
    fn next_u32(&mut self) -> u32 {
        self.other.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.other.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if dest.len() == 32 {
            match self.keys.pop_front() {
                Some(k) => dest.copy_from_slice(&k),
                None => panic!("more key draws than recorded"),
            }
        } else {
            self.other.fill_bytes(dest);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for ReplayRng {}
