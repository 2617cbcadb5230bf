//! AES-256-CBC encryption stitched with the format's SHA-256 passes, for x86_64 CPUs with
//! AES-NI and SHA-NI.
//!
//! CBC encryption is one serial chain: each block's fourteen AES rounds wait on the
//! previous block's result, so the AES unit spends most of its time waiting on latency.
//! SHA-256 runs on the separate SHA units. [`Stitched`] interleaves the two in one loop over
//! 64-byte groups: while group `i` goes through the chain, the plaintext hash takes group
//! `i`'s plaintext and the encrypted-file hash and the HMAC inner hash take group `i - 1`'s
//! ciphertext (one group behind, so they never wait on the chain).
//!
//! Measured on an AMD EPYC (docs/perf/wa-media.md): one hash lane hides almost entirely
//! behind the chain; with all three the loop outgrows the out-of-order window and the AES
//! and SHA instructions compete for the same vector pipes, so a group costs about what raw
//! AES-CBC plus one HMAC pass does, instead of the chain plus three hash passes.
//!
//! The HMAC stream is `ipad block || iv || ciphertext`: past the ipad block its 64-byte
//! blocks start 16 bytes before each ciphertext group, so the block belonging to group `i`
//! is the chaining value before the group (the IV or the previous ciphertext block)
//! followed by the group's first three ciphertext blocks.

use std::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_aesenc_si128, _mm_aesenclast_si128, _mm_aeskeygenassist_si128,
    _mm_alignr_epi8, _mm_cvtsi128_si64, _mm_extract_epi32, _mm_extract_epi64, _mm_set_epi32,
    _mm_set_epi64x, _mm_setzero_si128, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32,
    _mm_sha256rnds2_epu32, _mm_shuffle_epi8, _mm_shuffle_epi32, _mm_slli_si128, _mm_xor_si128,
};
use std::sync::OnceLock;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::MediaKeys;
use crate::cipher::{BLOCK, MAC_LEN, Sealed};

/// SHA-256 round constants.
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// SHA-256 initial state.
const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// SHA-256 block size.
const SHA_BLOCK: usize = 64;

/// Proof that the CPU has every feature the stitched code is compiled for (`aes`, `sha`,
/// `sse2`, `ssse3`, `sse4.1`): only [`Cpu::detect`] makes one, after checking them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cpu(());

impl Cpu {
    /// The features, when this CPU has them all (checked once per process).
    pub(crate) fn detect() -> Option<Self> {
        static DETECTED: OnceLock<bool> = OnceLock::new();
        let ok = *DETECTED.get_or_init(|| {
            std::arch::is_x86_feature_detected!("aes")
                && std::arch::is_x86_feature_detected!("sha")
                && std::arch::is_x86_feature_detected!("sse2")
                && std::arch::is_x86_feature_detected!("ssse3")
                && std::arch::is_x86_feature_detected!("sse4.1")
        });
        ok.then_some(Cpu(()))
    }
}

/// One SHA-256 computation: the state, the bytes of an unfinished block and the length.
#[derive(Zeroize)]
struct Lane {
    state: [u32; 8],
    buf: [u8; SHA_BLOCK],
    buf_len: usize,
    total: u64,
}

impl Lane {
    fn new() -> Self {
        Self {
            state: H0,
            buf: [0; SHA_BLOCK],
            buf_len: 0,
            total: 0,
        }
    }

    #[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
    fn absorb(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.buf_len > 0 {
            let take = (SHA_BLOCK - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < SHA_BLOCK {
                return;
            }
            compress(&mut self.state, &self.buf);
            self.buf_len = 0;
        }
        let (blocks, rest) = data.as_chunks::<SHA_BLOCK>();
        for block in blocks {
            compress(&mut self.state, block);
        }
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    /// Pads and returns the digest (the lane is spent afterwards).
    #[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
    fn finish(&mut self) -> [u8; 32] {
        let bits = self.total.wrapping_mul(8);
        let mut pad = [0u8; SHA_BLOCK];
        pad[0] = 0x80;
        let pad_len = if self.buf_len < 56 {
            56 - self.buf_len
        } else {
            120 - self.buf_len
        };
        self.absorb(&pad[..pad_len]);
        self.absorb(&bits.to_be_bytes());
        debug_assert_eq!(self.buf_len, 0);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }
}

/// The two SHA-NI registers of a state: `[F, E, B, A]` and `[H, G, D, C]` (lowest lane
/// first).
#[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
fn to_regs(s: &[u32; 8]) -> (__m128i, __m128i) {
    let w = s.map(|x| x as i32);
    (
        _mm_set_epi32(w[0], w[1], w[4], w[5]),
        _mm_set_epi32(w[2], w[3], w[6], w[7]),
    )
}

#[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
fn from_regs(abef: __m128i, cdgh: __m128i) -> [u32; 8] {
    [
        _mm_extract_epi32::<3>(abef),
        _mm_extract_epi32::<2>(abef),
        _mm_extract_epi32::<3>(cdgh),
        _mm_extract_epi32::<2>(cdgh),
        _mm_extract_epi32::<1>(abef),
        _mm_extract_epi32::<0>(abef),
        _mm_extract_epi32::<1>(cdgh),
        _mm_extract_epi32::<0>(cdgh),
    ]
    .map(|x| x as u32)
}

#[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
fn load(b: &[u8; 16]) -> __m128i {
    let v = u128::from_le_bytes(*b);
    _mm_set_epi64x((v >> 64) as i64, v as i64)
}

#[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
fn store(x: __m128i) -> [u8; 16] {
    let lo = _mm_cvtsi128_si64(x) as u64;
    let hi = _mm_extract_epi64::<1>(x) as u64;
    ((u128::from(hi) << 64) | u128::from(lo)).to_le_bytes()
}

/// Byte-swaps each 32-bit lane: SHA-256 reads big-endian words.
#[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
fn be_words(x: __m128i) -> __m128i {
    _mm_shuffle_epi8(
        x,
        _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203),
    )
}

/// Round constants `4q..4q+4`.
#[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
fn round_constants(q: usize) -> __m128i {
    _mm_set_epi32(
        K[4 * q + 3] as i32,
        K[4 * q + 2] as i32,
        K[4 * q + 1] as i32,
        K[4 * q] as i32,
    )
}

/// Quad-round `q` (rounds `4q..4q+4`) of one SHA-256 block: `$st` is `(abef, cdgh)`, `$w`
/// the last four message-schedule words groups (`$w[q % 4]` becomes words `4q..4q+4`).
macro_rules! sha_quad {
    ($st:ident, $w:ident, $q:expr) => {{
        const Q: usize = $q;
        if Q >= 4 {
            $w[Q % 4] = _mm_sha256msg2_epu32(
                _mm_add_epi32(
                    _mm_sha256msg1_epu32($w[Q % 4], $w[(Q + 1) % 4]),
                    _mm_alignr_epi8::<4>($w[(Q + 3) % 4], $w[(Q + 2) % 4]),
                ),
                $w[(Q + 3) % 4],
            );
        }
        let k = _mm_add_epi32($w[Q % 4], round_constants(Q));
        $st.1 = _mm_sha256rnds2_epu32($st.1, $st.0, k);
        $st.0 = _mm_sha256rnds2_epu32($st.0, $st.1, _mm_shuffle_epi32::<0x0E>(k));
    }};
}

/// The sixty-four rounds of one block over `st`, message words already big-endian.
#[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
fn rounds(st: (__m128i, __m128i), mut w: [__m128i; 4]) -> (__m128i, __m128i) {
    let mut s = st;
    sha_quad!(s, w, 0);
    sha_quad!(s, w, 1);
    sha_quad!(s, w, 2);
    sha_quad!(s, w, 3);
    sha_quad!(s, w, 4);
    sha_quad!(s, w, 5);
    sha_quad!(s, w, 6);
    sha_quad!(s, w, 7);
    sha_quad!(s, w, 8);
    sha_quad!(s, w, 9);
    sha_quad!(s, w, 10);
    sha_quad!(s, w, 11);
    sha_quad!(s, w, 12);
    sha_quad!(s, w, 13);
    sha_quad!(s, w, 14);
    sha_quad!(s, w, 15);
    (_mm_add_epi32(s.0, st.0), _mm_add_epi32(s.1, st.1))
}

/// Big-endian message words of four 16-byte blocks.
#[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
fn words(blocks: [__m128i; 4]) -> [__m128i; 4] {
    blocks.map(|b| be_words(b))
}

/// SHA-256 compression of one block.
#[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
fn compress(state: &mut [u32; 8], block: &[u8; SHA_BLOCK]) {
    let (blocks, _) = block.as_chunks::<16>();
    let w = words([
        load(&blocks[0]),
        load(&blocks[1]),
        load(&blocks[2]),
        load(&blocks[3]),
    ]);
    let (abef, cdgh) = to_regs(state);
    let (abef, cdgh) = rounds((abef, cdgh), w);
    *state = from_regs(abef, cdgh);
}

/// One step of the AES-256 key schedule: `prev` with its words chained, xored with `t`.
#[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
fn mix(prev: __m128i, t: __m128i) -> __m128i {
    let mut x = prev;
    x = _mm_xor_si128(x, _mm_slli_si128::<4>(x));
    x = _mm_xor_si128(x, _mm_slli_si128::<4>(x));
    x = _mm_xor_si128(x, _mm_slli_si128::<4>(x));
    _mm_xor_si128(x, t)
}

/// The fifteen AES-256 round keys.
#[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
fn expand_key(key: &[u8; 32]) -> [__m128i; 15] {
    let (halves, _) = key.as_chunks::<16>();
    let mut rk = [_mm_setzero_si128(); 15];
    let mut a = load(&halves[0]);
    let mut b = load(&halves[1]);
    rk[0] = a;
    rk[1] = b;
    macro_rules! even {
        ($i:literal, $rcon:literal) => {
            a = mix(
                a,
                _mm_shuffle_epi32::<0xFF>(_mm_aeskeygenassist_si128::<$rcon>(b)),
            );
            rk[$i] = a;
        };
    }
    macro_rules! odd {
        ($i:literal) => {
            b = mix(
                b,
                _mm_shuffle_epi32::<0xAA>(_mm_aeskeygenassist_si128::<0>(a)),
            );
            rk[$i] = b;
        };
    }
    even!(2, 0x01);
    odd!(3);
    even!(4, 0x02);
    odd!(5);
    even!(6, 0x04);
    odd!(7);
    even!(8, 0x08);
    odd!(9);
    even!(10, 0x10);
    odd!(11);
    even!(12, 0x20);
    odd!(13);
    even!(14, 0x40);
    rk
}

/// AES-256 of one block.
#[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
fn aes256(rk: &[__m128i; 15], block: __m128i) -> __m128i {
    let mut x = _mm_xor_si128(block, rk[0]);
    for k in &rk[1..14] {
        x = _mm_aesenc_si128(x, *k);
    }
    _mm_aesenclast_si128(x, rk[14])
}

/// The HMAC key block xored with `pad`.
fn key_block(key: &[u8; 32], pad: u8) -> [u8; SHA_BLOCK] {
    let mut block = [pad; SHA_BLOCK];
    for (b, k) in block.iter_mut().zip(key) {
        *b ^= k;
    }
    block
}

/// Stitched AES-256-CBC encryption with SHA-256 of the plaintext, SHA-256 of the
/// ciphertext and HMAC-SHA256 of `iv || ciphertext`. Only exists on CPUs [`Cpu::detect`]
/// accepted.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct Stitched {
    round_keys: [__m128i; 15],
    /// The CBC chaining value: the IV, then the last ciphertext block.
    chain: __m128i,
    plain: Lane,
    enc: Lane,
    /// HMAC inner hash (ipad block and IV absorbed at the start).
    mac_inner: Lane,
    /// State after the HMAC opad block.
    mac_outer: [u32; 8],
}

impl Stitched {
    /// A stitched encryptor for `keys` on a CPU that has the features.
    pub(crate) fn new(cpu: Cpu, keys: &MediaKeys) -> Box<Self> {
        let _ = cpu;
        // SAFETY: a `Cpu` only exists once `is_x86_feature_detected!` confirmed aes, sha,
        // sse2, ssse3 and sse4.1, every feature `new_tf` is compiled for.
        #[allow(unsafe_code)]
        unsafe {
            Self::new_tf(keys)
        }
    }

    /// Encrypts whole 16-byte blocks in place, hashing plaintext and ciphertext.
    pub(crate) fn seal(&mut self, buf: &mut [u8]) {
        // SAFETY: `self` was built by `new`, from a `Cpu`: `is_x86_feature_detected!`
        // confirmed every feature `seal_tf` is compiled for.
        #[allow(unsafe_code)]
        unsafe {
            self.seal_tf(buf)
        }
    }

    /// Pads and encrypts the last `tail` (under one block) and computes the digests.
    pub(crate) fn finish(&mut self, tail: &[u8]) -> Sealed {
        // SAFETY: `self` was built by `new`, from a `Cpu`: `is_x86_feature_detected!`
        // confirmed every feature `finish_tf` is compiled for.
        #[allow(unsafe_code)]
        unsafe {
            self.finish_tf(tail)
        }
    }

    #[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
    fn new_tf(keys: &MediaKeys) -> Box<Self> {
        let mut this = Box::new(Self {
            round_keys: expand_key(&keys.cipher_key),
            chain: load(&keys.iv),
            plain: Lane::new(),
            enc: Lane::new(),
            mac_inner: Lane::new(),
            mac_outer: H0,
        });
        let mut block = key_block(&keys.mac_key, 0x36);
        this.mac_inner.absorb(&block);
        this.mac_inner.absorb(&keys.iv);
        block = key_block(&keys.mac_key, 0x5c);
        compress(&mut this.mac_outer, &block);
        block.zeroize();
        this
    }

    /// One block outside the stitched loop.
    #[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
    fn seal_block(&mut self, block: &mut [u8; BLOCK]) {
        self.plain.absorb(block);
        self.chain = aes256(&self.round_keys, _mm_xor_si128(load(block), self.chain));
        *block = store(self.chain);
        self.enc.absorb(block);
        self.mac_inner.absorb(block);
    }

    #[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
    fn seal_tf(&mut self, buf: &mut [u8]) {
        let (mut blocks, tail) = buf.as_chunks_mut::<BLOCK>();
        debug_assert!(tail.is_empty());
        // Single blocks until the hashes reach a 64-byte boundary.
        while self.plain.buf_len != 0 {
            let Some((block, rest)) = blocks.split_first_mut() else {
                return;
            };
            self.seal_block(block);
            blocks = rest;
        }
        let (groups, rest) = blocks.as_chunks_mut::<4>();
        self.seal_groups(groups);
        for block in rest {
            self.seal_block(block);
        }
    }

    /// The stitched loop, over whole groups at a 64-byte boundary of all three hashes.
    #[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
    fn seal_groups(&mut self, groups: &mut [[[u8; BLOCK]; 4]]) {
        let Some((first, rest)) = groups.split_first_mut() else {
            return;
        };
        // At a group boundary the plaintext and encrypted-file hashes hold no partial
        // block and the HMAC inner hash holds the 16 bytes before the group: the chaining
        // value.
        debug_assert_eq!(self.plain.buf_len, 0);
        debug_assert_eq!(self.enc.buf_len, 0);
        debug_assert_eq!(self.mac_inner.buf_len, 16);
        // Borrowed, not copied: no second copy of the round keys in this stack frame.
        let rk = &self.round_keys;
        let mut chain = self.chain;
        let mut plain = to_regs(&self.plain.state);
        let mut enc = to_regs(&self.enc.state);
        let mut mac = to_regs(&self.mac_inner.state);

        // The first group has no previous ciphertext to overlap with.
        let p = first.map(|b| load(&b));
        plain = rounds(plain, words(p));
        let mut prev = [_mm_setzero_si128(); 4];
        for (c, x) in prev.iter_mut().zip(p) {
            chain = aes256(rk, _mm_xor_si128(x, chain));
            *c = chain;
        }
        *first = prev.map(|c| store(c));
        // The chaining value before the previous group: the first word of its HMAC block.
        let mut mac_first = self.chain;

        for group in rest {
            let p = group.map(|b| load(&b));
            let mut wp = words(p);
            let mut we = words(prev);
            let mut wm = words([mac_first, prev[0], prev[1], prev[2]]);
            let (sp, se, sm) = (plain, enc, mac);
            let mut c = [_mm_setzero_si128(); 4];
            let mut x = chain;

            // A quarter of one block's AES rounds, then one quad-round of each hash.
            macro_rules! step {
                ($q:expr) => {{
                    const B: usize = $q / 4;
                    match $q % 4 {
                        0 => {
                            x = _mm_xor_si128(_mm_xor_si128(p[B], rk[0]), x);
                            x = _mm_aesenc_si128(x, rk[1]);
                            x = _mm_aesenc_si128(x, rk[2]);
                            x = _mm_aesenc_si128(x, rk[3]);
                        }
                        1 => {
                            x = _mm_aesenc_si128(x, rk[4]);
                            x = _mm_aesenc_si128(x, rk[5]);
                            x = _mm_aesenc_si128(x, rk[6]);
                            x = _mm_aesenc_si128(x, rk[7]);
                        }
                        2 => {
                            x = _mm_aesenc_si128(x, rk[8]);
                            x = _mm_aesenc_si128(x, rk[9]);
                            x = _mm_aesenc_si128(x, rk[10]);
                            x = _mm_aesenc_si128(x, rk[11]);
                        }
                        _ => {
                            x = _mm_aesenc_si128(x, rk[12]);
                            x = _mm_aesenc_si128(x, rk[13]);
                            x = _mm_aesenclast_si128(x, rk[14]);
                            c[B] = x;
                        }
                    }
                    sha_quad!(plain, wp, $q);
                    sha_quad!(enc, we, $q);
                    sha_quad!(mac, wm, $q);
                }};
            }
            step!(0);
            step!(1);
            step!(2);
            step!(3);
            step!(4);
            step!(5);
            step!(6);
            step!(7);
            step!(8);
            step!(9);
            step!(10);
            step!(11);
            step!(12);
            step!(13);
            step!(14);
            step!(15);

            plain = (_mm_add_epi32(plain.0, sp.0), _mm_add_epi32(plain.1, sp.1));
            enc = (_mm_add_epi32(enc.0, se.0), _mm_add_epi32(enc.1, se.1));
            mac = (_mm_add_epi32(mac.0, sm.0), _mm_add_epi32(mac.1, sm.1));
            chain = x;
            *group = c.map(|c| store(c));
            mac_first = prev[3];
            prev = c;
        }

        // The last group's ciphertext, for the two hashes that run one group behind.
        enc = rounds(enc, words(prev));
        mac = rounds(mac, words([mac_first, prev[0], prev[1], prev[2]]));

        let bytes = 64 * groups.len() as u64;
        self.chain = chain;
        self.plain.state = from_regs(plain.0, plain.1);
        self.plain.total += bytes;
        self.enc.state = from_regs(enc.0, enc.1);
        self.enc.total += bytes;
        self.mac_inner.state = from_regs(mac.0, mac.1);
        self.mac_inner.total += bytes;
        self.mac_inner.buf[..16].copy_from_slice(&store(chain));
    }

    #[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
    fn finish_tf(&mut self, tail: &[u8]) -> Sealed {
        debug_assert!(tail.len() < BLOCK);
        self.plain.absorb(tail);
        let mut last = [(BLOCK - tail.len()) as u8; BLOCK];
        last[..tail.len()].copy_from_slice(tail);
        self.chain = aes256(&self.round_keys, _mm_xor_si128(load(&last), self.chain));
        last = store(self.chain);
        self.enc.absorb(&last);
        self.mac_inner.absorb(&last);
        let mut inner = self.mac_inner.finish();
        let mut outer = Lane {
            state: self.mac_outer,
            buf: [0; SHA_BLOCK],
            buf_len: 0,
            total: SHA_BLOCK as u64,
        };
        outer.absorb(&inner);
        let tag = outer.finish();
        inner.zeroize();
        outer.zeroize();
        let mut mac = [0u8; MAC_LEN];
        mac.copy_from_slice(&tag[..MAC_LEN]);
        self.enc.absorb(&mac);
        Sealed {
            last,
            file_sha256: self.plain.finish(),
            file_enc_sha256: self.enc.finish(),
            mac,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MediaType;
    use aes::cipher::{BlockEncrypt, BlockEncryptMut, KeyInit, KeyIvInit, block_padding::Pkcs7};
    use hmac::{Hmac, Mac};
    use rand::rngs::StdRng;
    use rand::{Rng, RngCore, SeedableRng};
    use sha2::{Digest, Sha256};

    fn cpu() -> Option<Cpu> {
        Cpu::detect()
    }

    fn random_keys(rng: &mut StdRng) -> MediaKeys {
        let mut media_key = [0u8; 32];
        rng.fill_bytes(&mut media_key);
        let mut keys = MediaKeys::expand(&media_key, MediaType::Document);
        rng.fill_bytes(&mut keys.iv);
        rng.fill_bytes(&mut keys.cipher_key);
        rng.fill_bytes(&mut keys.mac_key);
        keys
    }

    fn random_bytes(rng: &mut StdRng, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        rng.fill_bytes(&mut v);
        v
    }

    /// The format through the `cbc`, `hmac` and `sha2` crates: blob, plaintext hash,
    /// encrypted-file hash.
    fn reference(keys: &MediaKeys, plain: &[u8]) -> (Vec<u8>, [u8; 32], [u8; 32]) {
        let mut blob = cbc::Encryptor::<aes::Aes256>::new(&keys.cipher_key.into(), &keys.iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>(plain);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&keys.mac_key).unwrap();
        mac.update(&keys.iv);
        mac.update(&blob);
        blob.extend_from_slice(&mac.finalize().into_bytes()[..MAC_LEN]);
        let enc_sha = Sha256::digest(&blob).into();
        (blob, Sha256::digest(plain).into(), enc_sha)
    }

    /// Seals `plain` with the whole blocks fed in the pieces `cuts` (block counts) makes.
    fn stitched(cpu: Cpu, keys: &MediaKeys, plain: &[u8], cuts: &[usize]) -> (Vec<u8>, Sealed) {
        let whole = plain.len() / BLOCK * BLOCK;
        let mut buf = plain[..whole].to_vec();
        let mut s = Stitched::new(cpu, keys);
        let mut rest = &mut buf[..];
        for &c in cuts {
            let (a, b) = rest.split_at_mut((c * BLOCK).min(rest.len()));
            s.seal(a);
            rest = b;
        }
        s.seal(rest);
        let sealed = s.finish(&plain[whole..]);
        buf.extend_from_slice(&sealed.last);
        buf.extend_from_slice(&sealed.mac);
        (buf, sealed)
    }

    fn assert_matches(cpu: Cpu, keys: &MediaKeys, plain: &[u8], cuts: &[usize]) {
        let (blob, plain_sha, enc_sha) = reference(keys, plain);
        let (got, sealed) = stitched(cpu, keys, plain, cuts);
        assert_eq!(got, blob, "blob, {} bytes, cuts {cuts:?}", plain.len());
        assert_eq!(
            sealed.file_sha256,
            plain_sha,
            "plaintext hash, {} bytes",
            plain.len()
        );
        assert_eq!(
            sealed.file_enc_sha256,
            enc_sha,
            "encrypted hash, {} bytes",
            plain.len()
        );
    }

    #[test]
    fn key_expansion_matches_the_aes_crate() {
        let Some(cpu) = cpu() else { return };
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..64 {
            let mut keys = random_keys(&mut rng);
            // With a zero IV the first CBC block is the block cipher itself.
            keys.iv = [0; 16];
            let block: [u8; 16] = rng.r#gen();
            let mut buf = block;
            Stitched::new(cpu, &keys).seal(&mut buf);
            let mut want = block.into();
            aes::Aes256::new(&keys.cipher_key.into()).encrypt_block(&mut want);
            assert_eq!(buf[..], want[..]);
        }
    }

    #[test]
    fn every_length_up_to_300_matches_the_crates() {
        let Some(cpu) = cpu() else { return };
        let mut rng = StdRng::seed_from_u64(2);
        for len in 0..=300 {
            let keys = random_keys(&mut rng);
            let plain = random_bytes(&mut rng, len);
            assert_matches(cpu, &keys, &plain, &[]);
        }
    }

    #[test]
    fn every_split_of_small_inputs_matches_the_crates() {
        let Some(cpu) = cpu() else { return };
        let mut rng = StdRng::seed_from_u64(3);
        // Up to 14 blocks in three pieces at every pair of block offsets: groups start at
        // every alignment and the pieces mix single blocks and whole groups.
        for blocks in 0..=14usize {
            let keys = random_keys(&mut rng);
            let extra = rng.gen_range(0..BLOCK);
            let plain = random_bytes(&mut rng, blocks * BLOCK + extra);
            for a in 0..=blocks {
                for b in 0..=blocks - a {
                    assert_matches(cpu, &keys, &plain, &[a, b]);
                }
            }
        }
    }

    #[test]
    fn a_few_mib_in_uneven_pieces_match_the_crates() {
        let Some(cpu) = cpu() else { return };
        let mut rng = StdRng::seed_from_u64(4);
        let keys = random_keys(&mut rng);
        let plain = random_bytes(&mut rng, (3 << 20) + 77);
        let cuts: Vec<usize> = (0..40).map(|_| rng.gen_range(0..9000)).collect();
        assert_matches(cpu, &keys, &plain, &cuts);
        assert_matches(cpu, &keys, &plain, &[]);
    }
}
