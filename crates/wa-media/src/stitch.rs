//! AES-256-CBC encryption and decryption stitched with the format's SHA-256 passes, for
//! x86_64 CPUs with AES-NI and SHA-NI.
//!
//! CBC encryption is one serial chain: each block's fourteen AES rounds wait on the
//! previous block's result, so the AES unit spends most of its time waiting on latency.
//! SHA-256 runs on the separate SHA units. [`Stitched`] interleaves the two in one loop over
//! 64-byte groups: while group `i` goes through the chain, the plaintext hash takes group
//! `i`'s plaintext and the encrypted-file hash and the HMAC inner hash take group `i - 1`'s
//! ciphertext (one group behind, so they never wait on the chain).
//!
//! Measured on an AMD EPYC (docs/PERFORMANCE.md): one hash lane hides almost entirely
//! behind the chain; with all three the loop outgrows the out-of-order window and the AES
//! and SHA instructions compete for the same vector pipes, so a group costs about what raw
//! AES-CBC plus one HMAC pass does, instead of the chain plus three hash passes.
//!
//! The HMAC stream is `ipad block || iv || ciphertext`: past the ipad block its 64-byte
//! blocks start 16 bytes before each ciphertext group, so the block belonging to group `i`
//! is the chaining value before the group (the IV or the previous ciphertext block)
//! followed by the group's first three ciphertext blocks.
//!
//! Decryption ([`Unsealer`]) has no chain to hide behind: there the SHA unit is the bound,
//! and interleaving the hashes is what pays, since one SHA-256 stream leaves most of the
//! unit idle waiting on `sha256rnds2` latency.

use std::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_aesdec_si128, _mm_aesdeclast_si128, _mm_aesenc_si128,
    _mm_aesenclast_si128, _mm_aesimc_si128, _mm_aeskeygenassist_si128, _mm_alignr_epi8,
    _mm_cvtsi128_si64, _mm_extract_epi32, _mm_extract_epi64, _mm_set_epi32, _mm_set_epi64x,
    _mm_setzero_si128, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32,
    _mm_shuffle_epi8, _mm_shuffle_epi32, _mm_slli_si128, _mm_xor_si128,
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

    /// Whether the CPU also has AVX-512 (F and VL), for [`Unsealer`]'s wide loop (checked
    /// once per process).
    fn wide(self) -> bool {
        static DETECTED: OnceLock<bool> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx")
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
        })
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

/// `$m!(0)` to `$m!(15)`: the sixteen quad-rounds of a SHA-256 block, each with its
/// quad-round number as a constant.
macro_rules! sixteen {
    ($m:ident) => {
        $m!(0);
        $m!(1);
        $m!(2);
        $m!(3);
        $m!(4);
        $m!(5);
        $m!(6);
        $m!(7);
        $m!(8);
        $m!(9);
        $m!(10);
        $m!(11);
        $m!(12);
        $m!(13);
        $m!(14);
        $m!(15);
    };
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
    macro_rules! quad {
        ($q:expr) => {
            sha_quad!(s, w, $q)
        };
    }
    sixteen!(quad);
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

/// The HMAC states for `keys`: the inner hash with the ipad block and the IV absorbed, and
/// the state after the opad block.
#[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
fn mac_states(keys: &MediaKeys) -> (Lane, [u32; 8]) {
    let mut inner = Lane::new();
    let mut outer = H0;
    let mut block = key_block(&keys.mac_key, 0x36);
    inner.absorb(&block);
    inner.absorb(&keys.iv);
    block = key_block(&keys.mac_key, 0x5c);
    compress(&mut outer, &block);
    block.zeroize();
    (inner, outer)
}

/// Finishes the HMAC: the inner digest through the outer state, truncated to the MAC.
#[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
fn mac_tag(inner: &mut Lane, outer_state: [u32; 8]) -> [u8; MAC_LEN] {
    let mut digest = inner.finish();
    let mut outer = Lane {
        state: outer_state,
        buf: [0; SHA_BLOCK],
        buf_len: 0,
        total: SHA_BLOCK as u64,
    };
    outer.absorb(&digest);
    let mut tag = outer.finish();
    digest.zeroize();
    outer.zeroize();
    let mut mac = [0u8; MAC_LEN];
    mac.copy_from_slice(&tag[..MAC_LEN]);
    tag.zeroize();
    mac
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
        (this.mac_inner, this.mac_outer) = mac_states(keys);
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
            sixteen!(step);

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
        let mac = mac_tag(&mut self.mac_inner, self.mac_outer);
        self.enc.absorb(&mac);
        Sealed {
            last,
            file_sha256: self.plain.finish(),
            file_enc_sha256: self.enc.finish(),
            mac,
        }
    }
}

/// The fifteen AES-256 decryption round keys (the equivalent inverse cipher's order) from
/// the encryption round keys.
#[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
fn inverse_keys(ek: &[__m128i; 15]) -> [__m128i; 15] {
    let mut dk = [_mm_setzero_si128(); 15];
    dk[0] = ek[14];
    for i in 1..14 {
        dk[i] = _mm_aesimc_si128(ek[14 - i]);
    }
    dk[14] = ek[0];
    dk
}

/// AES-256 decryption of one block with the keys from [`inverse_keys`].
#[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
fn aes256_inv(dk: &[__m128i; 15], block: __m128i) -> __m128i {
    let mut x = _mm_xor_si128(block, dk[0]);
    for k in &dk[1..14] {
        x = _mm_aesdec_si128(x, *k);
    }
    _mm_aesdeclast_si128(x, dk[14])
}

/// The body of [`Unsealer`]'s decryption loop, expanded into one function per set of CPU
/// features (the code is the same; with AVX-512 the compiler has 32 vector registers for
/// what does not fit in 16). `CHECK` says whether the HMAC and encrypted-file hashes run
/// too.
macro_rules! open_groups_body {
    ($self:ident, $input:ident, $output:ident) => {{
        debug_assert_eq!($input.len(), $output.len());
        let (Some((first, rest)), Some((first_out, rest_out))) =
            ($input.split_first(), $output.split_first_mut())
        else {
            return;
        };
        debug_assert!($self.at_boundary());
        let rk = &$self.round_keys;
        let mut chain = $self.chain;
        let mut plain = to_regs(&$self.plain.state);
        let mut enc = to_regs(&$self.enc.state);
        let mut mac = to_regs(&$self.mac_inner.state);

        // The first group: its plaintext is hashed with the next group.
        let c = first.map(|b| load(&b));
        if CHECK {
            enc = rounds(enc, words(c));
            mac = rounds(mac, words([chain, c[0], c[1], c[2]]));
        }
        let mut prev_plain = [_mm_setzero_si128(); 4];
        for (i, p) in prev_plain.iter_mut().enumerate() {
            let before = if i == 0 { chain } else { c[i - 1] };
            *p = _mm_xor_si128(aes256_inv(rk, c[i]), before);
        }
        *first_out = prev_plain.map(|p| store(p));
        chain = c[3];

        for (group, group_out) in rest.iter().zip(rest_out) {
            let c = group.map(|b| load(&b));
            let mut we = if CHECK { words(c) } else { c };
            let mut wm = if CHECK {
                words([chain, c[0], c[1], c[2]])
            } else {
                c
            };
            let mut wp = words(prev_plain);
            let (se, sm, sp) = (enc, mac, plain);
            let mut x = c;

            // One AES round of each of the four blocks, then one quad-round of each hash.
            macro_rules! step {
                ($q:expr) => {{
                    const R: usize = $q;
                    // The round key of rounds 1 to 13 (steps past 13 use none).
                    const KEY: usize = if R < 13 { R + 1 } else { 0 };
                    if R == 0 {
                        x = x.map(|b| _mm_aesdec_si128(_mm_xor_si128(b, rk[0]), rk[1]));
                    } else if R < 13 {
                        x = x.map(|b| _mm_aesdec_si128(b, rk[KEY]));
                    } else if R == 13 {
                        x = x.map(|b| _mm_aesdeclast_si128(b, rk[14]));
                    }
                    if CHECK {
                        sha_quad!(enc, we, $q);
                        sha_quad!(mac, wm, $q);
                    }
                    sha_quad!(plain, wp, $q);
                }};
            }
            sixteen!(step);

            if CHECK {
                enc = (_mm_add_epi32(enc.0, se.0), _mm_add_epi32(enc.1, se.1));
                mac = (_mm_add_epi32(mac.0, sm.0), _mm_add_epi32(mac.1, sm.1));
            }
            plain = (_mm_add_epi32(plain.0, sp.0), _mm_add_epi32(plain.1, sp.1));
            prev_plain = [
                _mm_xor_si128(x[0], chain),
                _mm_xor_si128(x[1], c[0]),
                _mm_xor_si128(x[2], c[1]),
                _mm_xor_si128(x[3], c[2]),
            ];
            *group_out = prev_plain.map(|p| store(p));
            chain = c[3];
        }

        // The last group's plaintext.
        plain = rounds(plain, words(prev_plain));

        let bytes = 64 * $input.len() as u64;
        $self.chain = chain;
        $self.done += bytes;
        $self.plain.state = from_regs(plain.0, plain.1);
        $self.plain.total += bytes;
        if CHECK {
            $self.enc.state = from_regs(enc.0, enc.1);
            $self.enc.total += bytes;
            $self.mac_inner.state = from_regs(mac.0, mac.1);
            $self.mac_inner.total += bytes;
            $self.mac_inner.buf[..16].copy_from_slice(&store(chain));
        }
    }};
}

/// The body of [`Unsealer`]'s checking loop (HMAC and encrypted-file hash interleaved),
/// expanded once per set of CPU features, as [`open_groups_body`].
macro_rules! check_groups_body {
    ($self:ident, $groups:ident) => {{
        let groups = $groups;
        debug_assert!($self.at_boundary());
        let mut chain = $self.chain;
        let mut enc = to_regs(&$self.enc.state);
        let mut mac = to_regs(&$self.mac_inner.state);
        for group in groups {
            let c = group.map(|b| load(&b));
            let mut we = words(c);
            let mut wm = words([chain, c[0], c[1], c[2]]);
            let (se, sm) = (enc, mac);
            macro_rules! step {
                ($q:expr) => {{
                    sha_quad!(enc, we, $q);
                    sha_quad!(mac, wm, $q);
                }};
            }
            sixteen!(step);
            enc = (_mm_add_epi32(enc.0, se.0), _mm_add_epi32(enc.1, se.1));
            mac = (_mm_add_epi32(mac.0, sm.0), _mm_add_epi32(mac.1, sm.1));
            chain = c[3];
        }
        let bytes = 64 * groups.len() as u64;
        $self.chain = chain;
        $self.done += bytes;
        $self.enc.state = from_regs(enc.0, enc.1);
        $self.enc.total += bytes;
        $self.mac_inner.state = from_regs(mac.0, mac.1);
        $self.mac_inner.total += bytes;
        $self.mac_inner.buf[..16].copy_from_slice(&store(chain));
    }};
}

/// What finishing an [`Unsealer`]'s checks gives: the MAC it computed and the
/// encrypted-file hash.
pub(crate) struct Unsealed {
    /// The truncated HMAC of `iv || ciphertext`.
    pub(crate) mac: [u8; MAC_LEN],
    /// SHA-256 of ciphertext || the received MAC.
    pub(crate) file_enc_sha256: [u8; 32],
}

/// The decryption side of the format, stitched: AES-256-CBC decryption with SHA-256 of
/// the plaintext ("open"), and HMAC-SHA256 of `iv || ciphertext` with SHA-256 of
/// ciphertext || MAC ("check"). A caller runs both in one pass, or each on its own (a
/// [`Verifier`](crate::Verifier) only checks; an [`Opener`](crate::Opener) only opens). Only
/// exists on CPUs [`Cpu::detect`] accepted.
///
/// CBC decryption has no chain (every block needs only its own and the previous
/// ciphertext), so the AES unit is not the bound: the hashes are. One SHA-256 stream waits
/// on the latency of `sha256rnds2`; two or three interleaved streams keep the SHA unit
/// busy, so two cost about what one does and three about a quarter more (figures in
/// docs/PERFORMANCE.md).
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct Unsealer {
    round_keys: [__m128i; 15],
    /// The previous ciphertext block (the IV at first).
    chain: __m128i,
    /// Ciphertext bytes taken so far (always whole blocks).
    done: u64,
    plain: Lane,
    enc: Lane,
    /// HMAC inner hash (ipad block and IV absorbed at the start).
    mac_inner: Lane,
    /// State after the HMAC opad block.
    mac_outer: [u32; 8],
    /// Run the wide loop: only true when [`Cpu::wide`] found its features.
    wide: bool,
}

impl Unsealer {
    /// A stitched decryptor for `keys` on a CPU that has the features.
    pub(crate) fn new(cpu: Cpu, keys: &MediaKeys) -> Box<Self> {
        // SAFETY: a `Cpu` only exists once `is_x86_feature_detected!` confirmed aes, sha,
        // sse2, ssse3 and sse4.1, every feature `new_tf` is compiled for.
        #[allow(unsafe_code)]
        let mut this = unsafe { Self::new_tf(keys) };
        this.wide = cpu.wide();
        this
    }

    /// The same with the 128-bit loop whatever the CPU (tests compare the two).
    #[cfg(test)]
    fn narrow(cpu: Cpu, keys: &MediaKeys) -> Box<Self> {
        let mut this = Self::new(cpu, keys);
        this.wide = false;
        this
    }

    /// Checks whole 16-byte ciphertext blocks (hashes them, without decrypting).
    pub(crate) fn check(&mut self, blocks: &[u8]) {
        // SAFETY: `self` was built by `new`, from a `Cpu`: `is_x86_feature_detected!`
        // confirmed every feature `check_tf` is compiled for.
        #[allow(unsafe_code)]
        unsafe {
            self.check_tf(blocks)
        }
    }

    /// Decrypts whole 16-byte blocks from `input` into `output` (the same length) and
    /// hashes the plaintext; with `check`, also checks the ciphertext. Never the blob's
    /// last block, whose padding only [`open_last`](Self::open_last) may see.
    pub(crate) fn open(&mut self, input: &[u8], output: &mut [u8], check: bool) {
        // SAFETY: as in `check`.
        #[allow(unsafe_code)]
        unsafe {
            self.open_tf(input, output, check)
        }
    }

    /// Decrypts the last blocks in place without hashing their plaintext (the caller
    /// strips the padding and passes the rest to [`finish_plain`](Self::finish_plain));
    /// with `check`, also checks them.
    pub(crate) fn open_last(&mut self, cipher: &mut [u8], check: bool) {
        // SAFETY: as in `check`.
        #[allow(unsafe_code)]
        unsafe {
            let (blocks, tail) = cipher.as_chunks_mut::<BLOCK>();
            debug_assert!(tail.is_empty());
            for block in blocks {
                self.open_block(block, check, false);
            }
        }
    }

    /// Ends the checks: takes the received MAC into the encrypted-file hash and returns the
    /// computed MAC and that hash.
    pub(crate) fn finish_check(&mut self, received_mac: &[u8]) -> Unsealed {
        // SAFETY: as in `check`.
        #[allow(unsafe_code)]
        unsafe {
            self.finish_check_tf(received_mac)
        }
    }

    /// Hashes the unpadded rest of the plaintext and returns the plaintext hash.
    pub(crate) fn finish_plain(&mut self, body: &[u8]) -> [u8; 32] {
        // SAFETY: as in `check`.
        #[allow(unsafe_code)]
        unsafe {
            self.plain.absorb(body);
            self.plain.finish()
        }
    }

    #[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
    fn new_tf(keys: &MediaKeys) -> Box<Self> {
        let mut ek = expand_key(&keys.cipher_key);
        let mut this = Box::new(Self {
            round_keys: inverse_keys(&ek),
            chain: load(&keys.iv),
            done: 0,
            plain: Lane::new(),
            enc: Lane::new(),
            mac_inner: Lane::new(),
            mac_outer: H0,
            wide: false,
        });
        ek.zeroize();
        (this.mac_inner, this.mac_outer) = mac_states(keys);
        this
    }

    /// Whether the blocks taken so far fill whole 64-byte hash blocks (where the group
    /// loops may start).
    fn at_boundary(&self) -> bool {
        self.done.is_multiple_of(64)
    }

    /// One block of checks outside the group loop.
    #[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
    fn check_block(&mut self, block: &[u8; BLOCK]) {
        self.enc.absorb(block);
        self.mac_inner.absorb(block);
        self.chain = load(block);
        self.done += BLOCK as u64;
    }

    /// One block outside the group loop: decrypts it in place, with the checks if `check`
    /// and the plaintext hash if `hash_plain`.
    #[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
    fn open_block(&mut self, block: &mut [u8; BLOCK], check: bool, hash_plain: bool) {
        if check {
            self.enc.absorb(block);
            self.mac_inner.absorb(block);
        }
        let c = load(block);
        *block = store(_mm_xor_si128(aes256_inv(&self.round_keys, c), self.chain));
        self.chain = c;
        self.done += BLOCK as u64;
        if hash_plain {
            self.plain.absorb(block);
        }
    }

    #[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
    fn check_tf(&mut self, data: &[u8]) {
        let (mut blocks, tail) = data.as_chunks::<BLOCK>();
        debug_assert!(tail.is_empty());
        while !self.at_boundary() {
            let Some((block, rest)) = blocks.split_first() else {
                return;
            };
            self.check_block(block);
            blocks = rest;
        }
        let (groups, rest) = blocks.as_chunks::<4>();
        if self.wide {
            // SAFETY: `wide` is only set when `Cpu::wide` confirmed avx, avx2, avx512f and
            // avx512vl, the features `check_groups_wide` adds to this function's.
            #[allow(unsafe_code)]
            unsafe {
                self.check_groups_wide(groups);
            }
        } else {
            self.check_groups(groups);
        }
        for block in rest {
            self.check_block(block);
        }
    }

    /// Both checks over whole groups at a 64-byte boundary, interleaved.
    #[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
    fn check_groups(&mut self, groups: &[[[u8; BLOCK]; 4]]) {
        check_groups_body!(self, groups)
    }

    /// [`check_groups`](Self::check_groups) with AVX-512's 32 vector registers.
    #[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1,avx,avx2,avx512f,avx512vl")]
    fn check_groups_wide(&mut self, groups: &[[[u8; BLOCK]; 4]]) {
        check_groups_body!(self, groups)
    }

    #[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
    fn open_tf(&mut self, input: &[u8], output: &mut [u8], check: bool) {
        let (mut blocks, tail) = input.as_chunks::<BLOCK>();
        debug_assert!(tail.is_empty());
        let (mut outs, _) = output.as_chunks_mut::<BLOCK>();
        debug_assert_eq!(blocks.len(), outs.len());
        while !self.at_boundary() {
            let (Some((block, rest)), Some((out, rest_out))) =
                (blocks.split_first(), outs.split_first_mut())
            else {
                return;
            };
            *out = *block;
            self.open_block(out, check, true);
            blocks = rest;
            outs = rest_out;
        }
        let (groups, rest) = blocks.as_chunks::<4>();
        let (groups_out, rest_out) = outs.as_chunks_mut::<4>();
        match (self.wide, check) {
            // SAFETY: `wide` is only set when `Cpu::wide` confirmed avx, avx2, avx512f and
            // avx512vl, the features `open_groups_wide` adds to this function's.
            #[allow(unsafe_code)]
            (true, true) => unsafe { self.open_groups_wide::<true>(groups, groups_out) },
            // SAFETY: as above.
            #[allow(unsafe_code)]
            (true, false) => unsafe { self.open_groups_wide::<false>(groups, groups_out) },
            (false, true) => self.open_groups::<true>(groups, groups_out),
            (false, false) => self.open_groups::<false>(groups, groups_out),
        }
        for (block, out) in rest.iter().zip(rest_out) {
            *out = *block;
            self.open_block(out, check, true);
        }
    }

    /// The stitched loop, over whole groups at a 64-byte boundary of the hashes. The
    /// plaintext hash runs one group behind, so it never waits on the decryption.
    #[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
    fn open_groups<const CHECK: bool>(
        &mut self,
        input: &[[[u8; BLOCK]; 4]],
        output: &mut [[[u8; BLOCK]; 4]],
    ) {
        open_groups_body!(self, input, output)
    }

    /// [`open_groups`](Self::open_groups) on CPUs with AVX-512: the same loop, but the
    /// compiler has 32 vector registers instead of 16 for the hashes' states and message
    /// words, so far fewer of them go through the stack (figures in docs/PERFORMANCE.md).
    #[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1,avx,avx2,avx512f,avx512vl")]
    fn open_groups_wide<const CHECK: bool>(
        &mut self,
        input: &[[[u8; BLOCK]; 4]],
        output: &mut [[[u8; BLOCK]; 4]],
    ) {
        open_groups_body!(self, input, output)
    }

    #[target_feature(enable = "aes,sha,sse2,ssse3,sse4.1")]
    fn finish_check_tf(&mut self, received_mac: &[u8]) -> Unsealed {
        let mac = mac_tag(&mut self.mac_inner, self.mac_outer);
        self.enc.absorb(received_mac);
        Unsealed {
            mac,
            file_enc_sha256: self.enc.finish(),
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

    /// Takes `blob` (ciphertext || MAC) through an unsealer in the pieces `cuts` (block
    /// counts) makes: decrypted in place when `open`, checked when `check`. Returns the
    /// plaintext (with its padding), the MAC and encrypted-file hash when checked, and the
    /// plaintext hash (padding stripped) when opened.
    fn unseal(
        mut u: Box<Unsealer>,
        blob: &[u8],
        cuts: &[usize],
        check: bool,
        open: bool,
    ) -> (Vec<u8>, Option<Unsealed>, Option<[u8; 32]>) {
        let (body, received) = blob.split_at(blob.len() - MAC_LEN);
        let (head, last) = body.split_at(body.len() - BLOCK);
        let mut buf = vec![0u8; head.len()];
        let mut rest = &mut buf[..];
        let mut src = head;
        let take = |u: &mut Unsealer, part: &[u8], out: &mut [u8]| {
            if open {
                u.open(part, out, check);
            } else {
                u.check(part);
                out.copy_from_slice(part);
            }
        };
        for &c in cuts {
            let n = (c * BLOCK).min(rest.len());
            let (a, b) = rest.split_at_mut(n);
            take(&mut u, &src[..n], a);
            rest = b;
            src = &src[n..];
        }
        take(&mut u, src, rest);
        let mut last = last.to_vec();
        if open {
            u.open_last(&mut last, check);
        } else {
            u.check(&last);
        }
        let checked = check.then(|| u.finish_check(received));
        buf.extend_from_slice(&last);
        let plain_hash = open.then(|| {
            let pad = usize::from(*buf.last().unwrap());
            u.finish_plain(&buf[head.len()..buf.len() - pad])
        });
        (buf, checked, plain_hash)
    }

    fn assert_unseals(cpu: Cpu, keys: &MediaKeys, plain: &[u8], cuts: &[usize]) {
        let (blob, plain_sha, enc_sha) = reference(keys, plain);
        let mac = &blob[blob.len() - MAC_LEN..];
        let what = format!("{} bytes, cuts {cuts:?}", plain.len());
        for (loop_name, wide) in [("narrow", false), ("default", true)] {
            let make = || {
                if wide {
                    Unsealer::new(cpu, keys)
                } else {
                    Unsealer::narrow(cpu, keys)
                }
            };
            for (check, open) in [(true, true), (false, true), (true, false)] {
                let (out, checked, hashed) = unseal(make(), &blob, cuts, check, open);
                let mode = format!("{loop_name}, check {check}, open {open}, {what}");
                if open {
                    let (p, pad) = out.split_at(plain.len());
                    assert!(p == plain, "plaintext, {mode}");
                    assert!(pad.iter().all(|&b| usize::from(b) == pad.len()), "{mode}");
                    assert_eq!(hashed, Some(plain_sha), "plaintext hash, {mode}");
                }
                if let Some(u) = checked {
                    assert_eq!(u.mac[..], mac[..], "MAC, {mode}");
                    assert_eq!(u.file_enc_sha256, enc_sha, "encrypted hash, {mode}");
                }
            }
        }
    }

    #[test]
    fn unsealing_matches_the_crates_at_every_length_and_split() {
        let Some(cpu) = cpu() else { return };
        let mut rng = StdRng::seed_from_u64(5);
        for len in 0..=200usize {
            let keys = random_keys(&mut rng);
            let plain = random_bytes(&mut rng, len);
            let blocks = len / BLOCK;
            for a in 0..=blocks.min(13) {
                assert_unseals(cpu, &keys, &plain, &[a, 5]);
            }
        }
    }

    #[test]
    fn unsealing_a_few_mib_in_uneven_pieces_matches_the_crates() {
        let Some(cpu) = cpu() else { return };
        let mut rng = StdRng::seed_from_u64(6);
        let keys = random_keys(&mut rng);
        let plain = random_bytes(&mut rng, (2 << 20) + 41);
        let cuts: Vec<usize> = (0..40).map(|_| rng.gen_range(0..9000)).collect();
        assert_unseals(cpu, &keys, &plain, &cuts);
    }
}
