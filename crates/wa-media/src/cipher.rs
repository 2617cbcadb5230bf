//! Sans-IO streaming media encryption and decryption.
//!
//! The encrypted form is `AES-256-CBC(PKCS#7)(plaintext) || HMAC-SHA256(mac_key, iv ||
//! ciphertext)[..10]`. Both directions take input in chunks of any size, keep at most one
//! block plus the MAC buffered, and compute the plaintext and encrypted-file SHA-256 on the
//! fly.

use aes::Aes256;
use cbc::cipher::inout::InOutBuf;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::{Error, MediaKeys};

type HmacSha256 = Hmac<Sha256>;

/// AES block size.
pub const BLOCK: usize = 16;
/// Bytes each pass handles before the next pass takes over (see `Encryptor::update`).
const STITCH: usize = 256;
/// Length of the truncated MAC appended to the ciphertext.
pub const MAC_LEN: usize = 10;

/// What encrypting a blob produced besides the bytes: the fields a media message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EncryptedInfo {
    /// Plaintext length in bytes (`fileLength`).
    pub file_length: u64,
    /// SHA-256 of the plaintext (`fileSha256`).
    pub file_sha256: [u8; 32],
    /// SHA-256 of ciphertext || MAC (`fileEncSha256`).
    pub file_enc_sha256: [u8; 32],
    /// The 10-byte MAC.
    pub mac: [u8; MAC_LEN],
    /// Length of the encrypted blob (ciphertext + MAC).
    pub enc_length: u64,
}

/// Streaming encryptor. Call [`update`](Self::update) with the plaintext in chunks, then
/// [`finish`](Self::finish) once; the output bytes concatenated are the encrypted blob.
///
/// On x86_64 CPUs with AES-NI and SHA-NI the encryption and the three SHA-256 passes run
/// stitched in one loop (see the `stitch` module); elsewhere they run through the `cbc`,
/// `hmac` and `sha2` crates. Both give the same bytes.
pub struct Encryptor {
    engine: Engine,
    partial: [u8; BLOCK],
    partial_len: usize,
    length: u64,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

fn new_mac(keys: &MediaKeys) -> HmacSha256 {
    // invariant: HMAC accepts keys of any length.
    let mut mac = HmacSha256::new_from_slice(&keys.mac_key).expect("invariant: any key length");
    mac.update(&keys.iv);
    mac
}

/// The encryption passes through the `cbc`, `hmac` and `sha2` crates.
struct Library {
    cipher: cbc::Encryptor<Aes256>,
    mac: HmacSha256,
    plain_hash: Sha256,
    enc_hash: Sha256,
}

/// What finishing the passes gives: the last ciphertext block, the digests and the MAC.
pub(crate) struct Sealed {
    /// The padded, encrypted last block.
    pub(crate) last: [u8; BLOCK],
    /// SHA-256 of the plaintext.
    pub(crate) file_sha256: [u8; 32],
    /// SHA-256 of ciphertext || MAC.
    pub(crate) file_enc_sha256: [u8; 32],
    /// The truncated HMAC.
    pub(crate) mac: [u8; MAC_LEN],
}

impl Library {
    fn new(keys: &MediaKeys) -> Self {
        Self {
            cipher: cbc::Encryptor::<Aes256>::new(&keys.cipher_key.into(), &keys.iv.into()),
            mac: new_mac(keys),
            plain_hash: Sha256::new(),
            enc_hash: Sha256::new(),
        }
    }

    fn seal_blocks(&mut self, buf: &mut [u8]) {
        let (blocks, tail) = InOutBuf::from(buf).into_chunks();
        debug_assert!(tail.is_empty());
        self.cipher.encrypt_blocks_inout_mut(blocks);
    }

    fn seal(&mut self, buf: &mut [u8]) {
        // The four passes run unit by unit rather than one after the other, so the
        // serial CBC chain overlaps with the hashing in the CPU's out-of-order window.
        for unit in buf.chunks_mut(STITCH) {
            self.plain_hash.update(&*unit);
            self.seal_blocks(unit);
            self.mac.update(&*unit);
            self.enc_hash.update(&*unit);
        }
    }

    fn finish(mut self, tail: &[u8]) -> Sealed {
        self.plain_hash.update(tail);
        let mut last = [(BLOCK - tail.len()) as u8; BLOCK];
        last[..tail.len()].copy_from_slice(tail);
        self.seal_blocks(&mut last);
        self.mac.update(&last);
        self.enc_hash.update(last);
        let tag = self.mac.finalize().into_bytes();
        let mut mac = [0u8; MAC_LEN];
        mac.copy_from_slice(&tag[..MAC_LEN]);
        self.enc_hash.update(mac);
        Sealed {
            last,
            file_sha256: self.plain_hash.finalize().into(),
            file_enc_sha256: self.enc_hash.finalize().into(),
            mac,
        }
    }
}

/// Which implementation an [`Encryptor`] runs.
enum Engine {
    Library(Box<Library>),
    #[cfg(target_arch = "x86_64")]
    Stitched(Box<crate::stitch::Stitched>),
}

impl Engine {
    /// The stitched engine when `stitched` allows it and the CPU has the features, else
    /// the library one.
    fn new(keys: &MediaKeys, stitched: bool) -> Self {
        #[cfg(target_arch = "x86_64")]
        if stitched && let Some(cpu) = crate::stitch::Cpu::detect() {
            return Self::Stitched(crate::stitch::Stitched::new(cpu, keys));
        }
        let _ = stitched;
        Self::Library(Box::new(Library::new(keys)))
    }

    /// Hashes, encrypts in place and MACs whole blocks.
    fn seal(&mut self, buf: &mut [u8]) {
        match self {
            Self::Library(l) => l.seal(buf),
            #[cfg(target_arch = "x86_64")]
            Self::Stitched(s) => s.seal(buf),
        }
    }

    /// Pads and seals the last `tail` bytes (under one block).
    fn finish(self, tail: &[u8]) -> Sealed {
        match self {
            Self::Library(l) => l.finish(tail),
            #[cfg(target_arch = "x86_64")]
            Self::Stitched(mut s) => s.finish(tail),
        }
    }
}

impl Encryptor {
    /// An encryptor with `keys`.
    pub fn new(keys: &MediaKeys) -> Self {
        Self::with_engine(Engine::new(keys, true))
    }

    /// An encryptor that runs the library passes whatever the CPU (tests compare the two).
    #[cfg(test)]
    fn library(keys: &MediaKeys) -> Self {
        Self::with_engine(Engine::new(keys, false))
    }

    fn with_engine(engine: Engine) -> Self {
        Self {
            engine,
            partial: [0; BLOCK],
            partial_len: 0,
            length: 0,
        }
    }

    /// Encrypts `plain`, appending whole ciphertext blocks to `out` (up to 15 bytes stay
    /// buffered until the next call or [`finish`](Self::finish)).
    pub fn update(&mut self, mut plain: &[u8], out: &mut Vec<u8>) {
        self.length += plain.len() as u64;
        let start = out.len();
        if self.partial_len > 0 {
            let take = (BLOCK - self.partial_len).min(plain.len());
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&plain[..take]);
            self.partial_len += take;
            plain = &plain[take..];
            if self.partial_len < BLOCK {
                return;
            }
            out.extend_from_slice(&self.partial);
            self.partial_len = 0;
        }
        let whole = plain.len() / BLOCK * BLOCK;
        out.extend_from_slice(&plain[..whole]);
        let rest = &plain[whole..];
        self.partial[..rest.len()].copy_from_slice(rest);
        self.partial_len = rest.len();
        self.engine.seal(&mut out[start..]);
    }

    /// Pads and encrypts the last block, appends it and the MAC to `out`, and returns the
    /// message fields.
    pub fn finish(self, out: &mut Vec<u8>) -> EncryptedInfo {
        let sealed = self.engine.finish(&self.partial[..self.partial_len]);
        out.extend_from_slice(&sealed.last);
        out.extend_from_slice(&sealed.mac);
        let padded = (self.length / BLOCK as u64 + 1) * BLOCK as u64;
        EncryptedInfo {
            file_length: self.length,
            file_sha256: sealed.file_sha256,
            file_enc_sha256: sealed.file_enc_sha256,
            mac: sealed.mac,
            enc_length: padded + MAC_LEN as u64,
        }
    }
}

/// Encrypts a whole blob in memory.
pub fn encrypt(keys: &MediaKeys, plain: &[u8]) -> (Vec<u8>, EncryptedInfo) {
    let mut out = Vec::with_capacity(plain.len() + BLOCK + MAC_LEN);
    let mut e = Encryptor::new(keys);
    e.update(plain, &mut out);
    let info = e.finish(&mut out);
    (out, info)
}

/// What a decrypted blob must match. Fields left `None` are not checked (the MAC always is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Expected {
    /// `fileEncSha256` from the message.
    pub file_enc_sha256: Option<[u8; 32]>,
    /// `fileSha256` from the message.
    pub file_sha256: Option<[u8; 32]>,
}

impl Expected {
    /// Expect both hashes, as carried by a media message.
    pub fn hashes(file_enc_sha256: Option<[u8; 32]>, file_sha256: Option<[u8; 32]>) -> Self {
        Self {
            file_enc_sha256,
            file_sha256,
        }
    }
}

/// Verifies an encrypted blob without decrypting it: the MAC and the encrypted-file hash.
/// Feed it the blob in chunks; [`finish`](Self::finish) says whether it is authentic.
pub struct Verifier {
    mac: HmacSha256,
    enc_hash: Sha256,
    /// The last up to MAC_LEN bytes seen: they may be the MAC.
    tail: Vec<u8>,
    length: u64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier with `keys`.
    pub fn new(keys: &MediaKeys) -> Self {
        Self {
            mac: new_mac(keys),
            enc_hash: Sha256::new(),
            tail: Vec::with_capacity(2 * MAC_LEN),
            length: 0,
        }
    }

    /// Feeds the next bytes of the blob.
    pub fn update(&mut self, data: &[u8]) {
        self.enc_hash.update(data);
        self.length += data.len() as u64;
        if data.len() >= MAC_LEN {
            // Everything before the last MAC_LEN bytes of (tail || data) is ciphertext.
            self.mac.update(&self.tail);
            self.mac.update(&data[..data.len() - MAC_LEN]);
            self.tail.clear();
            self.tail.extend_from_slice(&data[data.len() - MAC_LEN..]);
        } else {
            self.tail.extend_from_slice(data);
            if self.tail.len() > MAC_LEN {
                let extra = self.tail.len() - MAC_LEN;
                self.mac.update(&self.tail[..extra]);
                self.tail.drain(..extra);
            }
        }
    }

    /// Checks the MAC and, when expected, the encrypted-file hash.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::MacMismatch`], [`Error::EncHashMismatch`].
    pub fn finish(self, expected: &Expected) -> Result<(), Error> {
        let body = self.length.saturating_sub(MAC_LEN as u64);
        if self.length < (BLOCK + MAC_LEN) as u64 || !body.is_multiple_of(BLOCK as u64) {
            return Err(Error::Truncated);
        }
        let tag = self.mac.finalize().into_bytes();
        if !wa_crypto::ct_eq(&tag[..MAC_LEN], &self.tail) {
            return Err(Error::MacMismatch);
        }
        if let Some(want) = expected.file_enc_sha256 {
            let got: [u8; 32] = self.enc_hash.finalize().into();
            if !wa_crypto::ct_eq(&got, &want) {
                return Err(Error::EncHashMismatch);
            }
        }
        Ok(())
    }
}

/// Streaming decryptor of a whole blob (ciphertext || MAC). Plaintext comes out as the
/// ciphertext goes in, one block behind; it is authentic only once
/// [`finish`](Self::finish) returns `Ok` (it checks the MAC, the padding and the hashes).
/// Callers that must not release unverified bytes verify first with [`Verifier`] (the
/// high-level download does).
pub struct Decryptor {
    cipher: cbc::Decryptor<Aes256>,
    verifier: Verifier,
    plain_hash: Sha256,
    /// Ciphertext not yet decrypted: always keeps the last block and the MAC back.
    pending: Vec<u8>,
    length: u64,
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

/// Bytes held back: the final block (its padding is stripped at the end) and the MAC.
const HOLD: usize = BLOCK + MAC_LEN;

impl Decryptor {
    /// A decryptor with `keys`.
    pub fn new(keys: &MediaKeys) -> Self {
        Self {
            cipher: cbc::Decryptor::<Aes256>::new(&keys.cipher_key.into(), &keys.iv.into()),
            verifier: Verifier::new(keys),
            plain_hash: Sha256::new(),
            pending: Vec::with_capacity(64 * 1024),
            length: 0,
        }
    }

    fn open_blocks(&mut self, buf: &mut [u8]) {
        let (blocks, tail) = InOutBuf::from(buf).into_chunks();
        debug_assert!(tail.is_empty());
        self.cipher.decrypt_blocks_inout_mut(blocks);
    }

    /// Feeds the next bytes of the blob; appends the plaintext they complete to `out`.
    pub fn update(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.pending.extend_from_slice(data);
        if self.pending.len() <= HOLD {
            return;
        }
        let ready = (self.pending.len() - HOLD) / BLOCK * BLOCK;
        if ready == 0 {
            return;
        }
        let start = out.len();
        out.extend_from_slice(&self.pending[..ready]);
        self.pending.drain(..ready);
        // Verify, decrypt and hash unit by unit (see `Encryptor::update`).
        for unit in out[start..].chunks_mut(STITCH) {
            self.verifier.update(unit);
            self.open_blocks(unit);
            self.plain_hash.update(&*unit);
        }
        self.length += ready as u64;
    }

    /// Decrypts the last block, strips the padding, appends the rest of the plaintext to
    /// `out` and checks the MAC, the padding and the `expected` hashes. Returns the
    /// plaintext length.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::MacMismatch`], [`Error::EncHashMismatch`],
    /// [`Error::BadPadding`], [`Error::HashMismatch`].
    pub fn finish(self, expected: &Expected, out: &mut Vec<u8>) -> Result<u64, Error> {
        let Decryptor {
            mut cipher,
            mut verifier,
            mut plain_hash,
            pending: mut last,
            mut length,
        } = self;
        verifier.update(&last);
        verifier.finish(expected)?;
        // The verifier checked the length: pending is one or more blocks plus the MAC.
        last.truncate(last.len() - MAC_LEN);
        let (blocks, _) = InOutBuf::from(&mut last[..]).into_chunks();
        cipher.decrypt_blocks_inout_mut(blocks);
        let body = strip_padding(&last)?;
        plain_hash.update(body);
        length += body.len() as u64;
        out.extend_from_slice(body);
        if let Some(want) = expected.file_sha256 {
            let got: [u8; 32] = plain_hash.finalize().into();
            if !wa_crypto::ct_eq(&got, &want) {
                return Err(Error::HashMismatch);
            }
        }
        Ok(length)
    }
}

/// `data` without its PKCS#7 padding.
fn strip_padding(data: &[u8]) -> Result<&[u8], Error> {
    let pad = usize::from(*data.last().ok_or(Error::BadPadding)?);
    if pad == 0 || pad > BLOCK || pad > data.len() {
        return Err(Error::BadPadding);
    }
    let (body, padding) = data.split_at(data.len() - pad);
    if padding.iter().any(|&b| usize::from(b) != pad) {
        return Err(Error::BadPadding);
    }
    Ok(body)
}

/// Decrypts a whole blob in memory, verifying before returning anything.
///
/// # Errors
/// As [`Decryptor::finish`].
pub fn decrypt(keys: &MediaKeys, blob: &[u8], expected: &Expected) -> Result<Vec<u8>, Error> {
    // One pass: the plaintext is only returned once `finish` has verified everything.
    let mut out = Vec::with_capacity(blob.len());
    let mut d = Decryptor::new(keys);
    d.update(blob, &mut out);
    d.finish(expected, &mut out)?;
    Ok(out)
}

/// A ranged download plan: which encrypted bytes to fetch to decrypt plaintext bytes
/// `start..end`, as Baileys' `downloadEncryptedContent` computes it. Ranged data cannot be
/// authenticated (the MAC covers the whole blob).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangePlan {
    /// First encrypted byte to fetch (one block before the wanted block: it is the IV).
    pub fetch_start: u64,
    /// Last encrypted byte to fetch (inclusive, as in an HTTP `Range` header), if bounded.
    pub fetch_end: Option<u64>,
    start: u64,
    end: Option<u64>,
}

impl RangePlan {
    /// Plans the plaintext range `start..end` (`end = None`: to the end of the file).
    pub fn new(start: u64, end: Option<u64>) -> Self {
        let chunk = start / BLOCK as u64 * BLOCK as u64;
        let fetch_start = chunk.saturating_sub(BLOCK as u64);
        Self {
            fetch_start,
            fetch_end: end.map(|e| e / BLOCK as u64 * BLOCK as u64 + BLOCK as u64),
            start,
            end,
        }
    }

    /// The HTTP `Range` header value, when a range is needed at all.
    pub fn range_header(&self) -> Option<String> {
        if self.fetch_start == 0 && self.fetch_end.is_none() {
            return None;
        }
        Some(match self.fetch_end {
            Some(e) => format!("bytes={}-{e}", self.fetch_start),
            None => format!("bytes={}-", self.fetch_start),
        })
    }

    /// Decrypts the fetched bytes (`fetched` starts at `fetch_start`) and returns the
    /// wanted plaintext range. Unauthenticated: see the type's docs.
    ///
    /// # Errors
    /// [`Error::Truncated`] when `fetched` is shorter than the plan needs;
    /// [`Error::BadPadding`] when the range reaches the end of the file and the padding
    /// is invalid.
    pub fn decrypt(&self, keys: &MediaKeys, fetched: &[u8]) -> Result<Vec<u8>, Error> {
        let (iv, body, base) = if self.fetch_start == 0 && self.start < BLOCK as u64 {
            (keys.iv, fetched, 0u64)
        } else {
            if fetched.len() < BLOCK {
                return Err(Error::Truncated);
            }
            let mut iv = [0u8; BLOCK];
            iv.copy_from_slice(&fetched[..BLOCK]);
            (iv, &fetched[BLOCK..], self.fetch_start + BLOCK as u64)
        };
        let whole = body.len() / BLOCK * BLOCK;
        let mut plain = body[..whole].to_vec();
        let mut cipher = cbc::Decryptor::<Aes256>::new(&keys.cipher_key.into(), &iv.into());
        let (blocks, _) = InOutBuf::from(&mut plain[..]).into_chunks();
        cipher.decrypt_blocks_inout_mut(blocks);
        // A range open to the end of the file ran into the MAC (dropped above with the
        // partial block) and the padding: strip it as a full decrypt would.
        let plain = if self.end.is_none() {
            let len = strip_padding(&plain)?.len();
            plain.truncate(len);
            plain
        } else {
            plain
        };
        let skip = usize::try_from(self.start - base).map_err(|_| Error::Truncated)?;
        if skip > plain.len() {
            return Err(Error::Truncated);
        }
        let take = match self.end {
            Some(end) => usize::try_from(end - self.start).map_err(|_| Error::Truncated)?,
            None => plain.len() - skip,
        };
        let stop = (skip + take).min(plain.len());
        Ok(plain[skip..stop].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MediaType;
    use rand::rngs::StdRng;
    use rand::{Rng, RngCore, SeedableRng};

    fn random_keys(rng: &mut StdRng) -> MediaKeys {
        let mut media_key = [0u8; 32];
        rng.fill_bytes(&mut media_key);
        MediaKeys::expand(&media_key, MediaType::Image)
    }

    fn run(mut e: Encryptor, pieces: &[&[u8]]) -> (Vec<u8>, EncryptedInfo) {
        let mut out = Vec::new();
        for p in pieces {
            e.update(p, &mut out);
            // Whole blocks come out at once: at most 15 bytes stay behind.
            assert_eq!(out.len() as u64, e.length / BLOCK as u64 * BLOCK as u64);
        }
        let info = e.finish(&mut out);
        (out, info)
    }

    #[test]
    fn the_stitched_path_is_taken_when_the_cpu_has_the_features() {
        let k = random_keys(&mut StdRng::seed_from_u64(10));
        let library = matches!(Encryptor::new(&k).engine, Engine::Library(_));
        #[cfg(target_arch = "x86_64")]
        assert_eq!(library, crate::stitch::Cpu::detect().is_none());
        #[cfg(not(target_arch = "x86_64"))]
        assert!(library);
        assert!(matches!(Encryptor::library(&k).engine, Engine::Library(_)));
    }

    #[test]
    fn both_paths_give_the_same_blob_split_at_every_offset() {
        let mut rng = StdRng::seed_from_u64(11);
        for len in 0..=300usize {
            let k = random_keys(&mut rng);
            let mut plain = vec![0u8; len];
            rng.fill_bytes(&mut plain);
            let (want, want_info) = run(Encryptor::library(&k), &[&plain]);
            // The library path matches the reference passes, checked independently.
            assert_eq!(
                want_info.file_sha256,
                <[u8; 32]>::from(Sha256::digest(&plain))
            );
            assert_eq!(
                want_info.file_enc_sha256,
                <[u8; 32]>::from(Sha256::digest(&want))
            );
            assert_eq!(want.len() as u64, want_info.enc_length);
            assert_eq!(decrypt(&k, &want, &Expected::default()).unwrap(), plain);
            let step = if len <= 160 { 1 } else { 7 };
            for cut in (0..=len).step_by(step) {
                let (a, b) = plain.split_at(cut);
                for (name, e) in [
                    ("library", Encryptor::library(&k)),
                    ("default", Encryptor::new(&k)),
                ] {
                    let (got, info) = run(e, &[a, b]);
                    assert_eq!(got, want, "{name}: {len} bytes cut at {cut}");
                    assert_eq!(info, want_info, "{name}: {len} bytes cut at {cut}");
                }
            }
        }
    }

    #[test]
    fn both_paths_agree_on_a_few_mib_in_random_pieces() {
        let mut rng = StdRng::seed_from_u64(12);
        let k = random_keys(&mut rng);
        let mut plain = vec![0u8; (2 << 20) + 5];
        rng.fill_bytes(&mut plain);
        let mut pieces = Vec::new();
        let mut rest = &plain[..];
        while !rest.is_empty() {
            let (a, b) = rest.split_at(rng.gen_range(0..70_000usize).min(rest.len()));
            pieces.push(a);
            rest = b;
        }
        let (want, want_info) = run(Encryptor::library(&k), &pieces);
        let (got, info) = run(Encryptor::new(&k), &pieces);
        assert!(got == want, "blobs differ");
        assert_eq!(info, want_info);
        let expected = Expected::hashes(Some(info.file_enc_sha256), Some(info.file_sha256));
        assert!(decrypt(&k, &got, &expected).unwrap() == plain);
    }
}
