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
/// Most bytes encryption adds to a plaintext: one block of padding and the MAC (for
/// bounding a download by the plaintext it may hold, see `Downloadable::with_max_size`).
pub const ENCRYPTION_OVERHEAD: u64 = (BLOCK + MAC_LEN) as u64;

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

/// The two checks over whole ciphertext blocks, through the `hmac` and `sha2` crates.
struct LibraryCheck {
    mac: HmacSha256,
    enc_hash: Sha256,
}

/// Which implementation runs the checks of a [`Verifier`].
enum CheckEngine {
    Library(Box<LibraryCheck>),
    #[cfg(target_arch = "x86_64")]
    Stitched(Box<crate::stitch::Unsealer>),
}

impl CheckEngine {
    fn new(keys: &MediaKeys, stitched: bool) -> Self {
        #[cfg(target_arch = "x86_64")]
        if stitched && let Some(cpu) = crate::stitch::Cpu::detect() {
            return Self::Stitched(crate::stitch::Unsealer::new(cpu, keys));
        }
        let _ = stitched;
        Self::Library(Box::new(LibraryCheck {
            mac: new_mac(keys),
            enc_hash: Sha256::new(),
        }))
    }

    /// Hashes whole ciphertext blocks into both checks.
    fn check(&mut self, blocks: &[u8]) {
        match self {
            Self::Library(l) => {
                l.mac.update(blocks);
                l.enc_hash.update(blocks);
            }
            #[cfg(target_arch = "x86_64")]
            Self::Stitched(s) => s.check(blocks),
        }
    }

    /// The computed MAC and encrypted-file hash, the received MAC taken into the latter.
    fn finish(self, received_mac: &[u8]) -> ([u8; MAC_LEN], [u8; 32]) {
        match self {
            Self::Library(mut l) => {
                let tag = l.mac.finalize().into_bytes();
                let mut mac = [0u8; MAC_LEN];
                mac.copy_from_slice(&tag[..MAC_LEN]);
                l.enc_hash.update(received_mac);
                (mac, l.enc_hash.finalize().into())
            }
            #[cfg(target_arch = "x86_64")]
            Self::Stitched(mut s) => {
                let u = s.finish_check(received_mac);
                (u.mac, u.file_enc_sha256)
            }
        }
    }
}

/// The length, MAC and encrypted-file hash verdicts, in that order: `length` is the whole
/// blob's, `held` its last bytes (the MAC when the length is right).
fn check_verdict(
    length: u64,
    held: &[u8],
    computed: impl FnOnce(&[u8]) -> ([u8; MAC_LEN], [u8; 32]),
    expected: &Expected,
) -> Result<(), Error> {
    let body = length.saturating_sub(MAC_LEN as u64);
    if length < (BLOCK + MAC_LEN) as u64
        || !body.is_multiple_of(BLOCK as u64)
        || held.len() != MAC_LEN
    {
        return Err(Error::Truncated);
    }
    let (mac, enc_sha256) = computed(held);
    if !wa_crypto::ct_eq(&mac, held) {
        return Err(Error::MacMismatch);
    }
    if let Some(want) = expected.file_enc_sha256
        && !wa_crypto::ct_eq(&enc_sha256, &want)
    {
        return Err(Error::EncHashMismatch);
    }
    Ok(())
}

/// Verifies an encrypted blob without decrypting it: the MAC and the encrypted-file hash.
/// Feed it the blob in chunks; [`finish`](Self::finish) says whether it is authentic.
///
/// On x86_64 CPUs with SHA-NI the two hashes run interleaved in one loop (see the
/// `stitch` module), at about the speed of one.
pub struct Verifier {
    engine: CheckEngine,
    /// Bytes not yet checked: the last `MAC_LEN` seen (they may be the MAC) and the start
    /// of an unfinished block.
    held: Vec<u8>,
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
        Self::with_engine(CheckEngine::new(keys, true))
    }

    /// A verifier that runs the library passes whatever the CPU (tests compare the two).
    #[cfg(test)]
    fn library(keys: &MediaKeys) -> Self {
        Self::with_engine(CheckEngine::new(keys, false))
    }

    fn with_engine(engine: CheckEngine) -> Self {
        Self {
            engine,
            held: Vec::with_capacity(2 * HOLD),
            length: 0,
        }
    }

    /// Feeds the next bytes of the blob.
    pub fn update(&mut self, data: &[u8]) {
        self.length += data.len() as u64;
        let held = self.held.len();
        // Whole blocks of (held || data) that are surely ciphertext: MAC_LEN bytes stay back.
        let ready = (held + data.len()).saturating_sub(MAC_LEN) / BLOCK * BLOCK;
        if ready == 0 {
            self.held.extend_from_slice(data);
            return;
        }
        if held > ready {
            // Only part of the held bytes is ready (one block).
            self.engine.check(&self.held[..ready]);
            self.held.drain(..ready);
            self.held.extend_from_slice(data);
            return;
        }
        // The held bytes completed into whole blocks with the head of `data`, then the
        // rest of the ready bytes straight from `data` (no copy).
        let head = held.next_multiple_of(BLOCK) - held;
        if held > 0 {
            self.held.extend_from_slice(&data[..head]);
            self.engine.check(&self.held);
            self.held.clear();
        }
        let used = if held > 0 { head } else { 0 };
        let end = ready - held;
        self.engine.check(&data[used..end]);
        self.held.extend_from_slice(&data[end..]);
    }

    /// Checks the MAC and, when expected, the encrypted-file hash.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::MacMismatch`], [`Error::EncHashMismatch`].
    pub fn finish(self, expected: &Expected) -> Result<(), Error> {
        let Verifier {
            engine,
            held,
            length,
        } = self;
        check_verdict(length, &held, |mac| engine.finish(mac), expected)
    }
}

/// Bytes held back: the final block (its padding is stripped at the end) and the MAC.
const HOLD: usize = BLOCK + MAC_LEN;

/// The decryption passes through the `cbc`, `hmac` and `sha2` crates.
struct LibraryOpen {
    cipher: cbc::Decryptor<Aes256>,
    /// The checks, for a one-pass [`Decryptor`].
    check: Option<LibraryCheck>,
    plain_hash: Sha256,
}

/// Which implementation a [`Decryptor`] or an [`Opener`] runs.
enum OpenEngine {
    Library(Box<LibraryOpen>),
    #[cfg(target_arch = "x86_64")]
    Stitched {
        unsealer: Box<crate::stitch::Unsealer>,
        check: bool,
    },
}

impl OpenEngine {
    /// The stitched engine when `stitched` allows it and the CPU has the features, else
    /// the library one; `check` adds the MAC and encrypted-file hash.
    fn new(keys: &MediaKeys, check: bool, stitched: bool) -> Self {
        #[cfg(target_arch = "x86_64")]
        if stitched && let Some(cpu) = crate::stitch::Cpu::detect() {
            return Self::Stitched {
                unsealer: crate::stitch::Unsealer::new(cpu, keys),
                check,
            };
        }
        let _ = stitched;
        Self::Library(Box::new(LibraryOpen {
            cipher: cbc::Decryptor::<Aes256>::new(&keys.cipher_key.into(), &keys.iv.into()),
            check: check.then(|| LibraryCheck {
                mac: new_mac(keys),
                enc_hash: Sha256::new(),
            }),
            plain_hash: Sha256::new(),
        }))
    }

    /// Decrypts whole blocks that are not the last from `input` into `output` (checking
    /// them first when the engine checks) and hashes the plaintext.
    fn open(&mut self, input: &[u8], output: &mut [u8]) {
        match self {
            Self::Library(l) => {
                // Unit by unit (see `Library::seal`).
                for (unit, out) in input.chunks(STITCH).zip(output.chunks_mut(STITCH)) {
                    if let Some(c) = &mut l.check {
                        c.mac.update(unit);
                        c.enc_hash.update(unit);
                    }
                    out.copy_from_slice(unit);
                    let (blocks, _) = InOutBuf::from(&mut *out).into_chunks();
                    l.cipher.decrypt_blocks_inout_mut(blocks);
                    l.plain_hash.update(&*out);
                }
            }
            #[cfg(target_arch = "x86_64")]
            Self::Stitched { unsealer, check } => unsealer.open(input, output, *check),
        }
    }

    /// Takes the held-back bytes of a blob `length` bytes long (the last block or blocks
    /// and the MAC); checks the length, the MAC and the encrypted-file hash when the engine
    /// checks, then the padding and the plaintext hash, in that order; leaves the unpadded
    /// plaintext at the start of `last` and returns its length.
    fn finish(self, length: u64, last: &mut [u8], expected: &Expected) -> Result<usize, Error> {
        if last.len() < HOLD || !(last.len() - MAC_LEN).is_multiple_of(BLOCK) {
            return Err(Error::Truncated);
        }
        let cut = last.len() - MAC_LEN;
        let (cipher, received) = last.split_at_mut(cut);
        let (body, got) = match self {
            Self::Library(l) => {
                let LibraryOpen {
                    cipher: mut cipher_state,
                    check,
                    mut plain_hash,
                } = *l;
                if let Some(mut c) = check {
                    c.mac.update(&*cipher);
                    c.enc_hash.update(&*cipher);
                    let engine = CheckEngine::Library(Box::new(c));
                    check_verdict(length, received, |m| engine.finish(m), expected)?;
                }
                let (blocks, _) = InOutBuf::from(&mut *cipher).into_chunks();
                cipher_state.decrypt_blocks_inout_mut(blocks);
                let body = strip_padding(cipher)?;
                plain_hash.update(body);
                (body.len(), plain_hash.finalize().into())
            }
            #[cfg(target_arch = "x86_64")]
            Self::Stitched {
                mut unsealer,
                check,
            } => {
                unsealer.open_last(cipher, check);
                if check {
                    check_verdict(
                        length,
                        received,
                        |m| {
                            let u = unsealer.finish_check(m);
                            (u.mac, u.file_enc_sha256)
                        },
                        expected,
                    )?;
                }
                let body = strip_padding(cipher)?;
                let len = body.len();
                (len, unsealer.finish_plain(body))
            }
        };
        check_plain_hash(expected, &got)?;
        Ok(body)
    }
}

/// [`Error::HashMismatch`] unless `got` is the plaintext hash `expected` names (if any).
fn check_plain_hash(expected: &Expected, got: &[u8; 32]) -> Result<(), Error> {
    match expected.file_sha256 {
        Some(want) if !wa_crypto::ct_eq(got, &want) => Err(Error::HashMismatch),
        _ => Ok(()),
    }
}

/// What [`Decryptor`] and [`Opener`] share: the engine and the held-back bytes.
struct Unpacker {
    engine: OpenEngine,
    /// Ciphertext not yet decrypted: always keeps the last block and the MAC back.
    pending: Vec<u8>,
    length: u64,
}

impl Unpacker {
    fn new(engine: OpenEngine) -> Self {
        Self {
            engine,
            pending: Vec::with_capacity(2 * HOLD),
            length: 0,
        }
    }

    fn update(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let held = self.pending.len();
        let ready = (held + data.len()).saturating_sub(HOLD) / BLOCK * BLOCK;
        self.length += data.len() as u64;
        if ready == 0 {
            self.pending.extend_from_slice(data);
            return;
        }
        let start = out.len();
        out.resize(start + ready, 0);
        let dst = &mut out[start..];
        // The ready bytes are the held ones first, then the head of `data`. The held bytes,
        // completed to whole blocks (at most three), go through a small buffer; the rest
        // is decrypted straight from `data` into `out`.
        let from_held = ready.min(held);
        let joint = if held == 0 {
            0
        } else {
            held.next_multiple_of(BLOCK).min(ready)
        };
        if joint > 0 {
            let mut buf = [0u8; 3 * BLOCK];
            buf[..from_held].copy_from_slice(&self.pending[..from_held]);
            buf[from_held..joint].copy_from_slice(&data[..joint - from_held]);
            self.engine.open(&buf[..joint], &mut dst[..joint]);
        }
        self.engine.open(
            &data[joint - from_held..ready - from_held],
            &mut dst[joint..],
        );
        self.pending.drain(..from_held);
        self.pending.extend_from_slice(&data[ready - from_held..]);
    }

    fn finish(self, expected: &Expected, out: &mut Vec<u8>) -> Result<u64, Error> {
        let Unpacker {
            engine,
            mut pending,
            length,
        } = self;
        let body = engine.finish(length, &mut pending, expected)?;
        out.extend_from_slice(&pending[..body]);
        // The plaintext is the blob less the MAC and the padding.
        let padding = pending.len() - MAC_LEN - body;
        Ok(length - (MAC_LEN + padding) as u64)
    }
}

/// Streaming decryptor of a whole blob (ciphertext || MAC), checking it in the same pass.
/// Plaintext comes out as the ciphertext goes in, one block behind; it is authentic only
/// once [`finish`](Self::finish) returns `Ok` (it checks the MAC, the padding and the
/// hashes). Callers that must not release unverified bytes verify first with
/// [`Verifier`] and then decrypt with an [`Opener`] (the high-level download does).
///
/// On x86_64 CPUs with AES-NI and SHA-NI the decryption and the three SHA-256 passes run
/// stitched in one loop (see the `stitch` module); elsewhere they run through the `cbc`,
/// `hmac` and `sha2` crates. Both give the same bytes and the same verdicts.
pub struct Decryptor(Unpacker);

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("length", &self.0.length)
            .finish_non_exhaustive()
    }
}

impl Decryptor {
    /// A decryptor with `keys`.
    pub fn new(keys: &MediaKeys) -> Self {
        Self(Unpacker::new(OpenEngine::new(keys, true, true)))
    }

    /// A decryptor that runs the library passes whatever the CPU (tests compare the two).
    #[cfg(test)]
    fn library(keys: &MediaKeys) -> Self {
        Self(Unpacker::new(OpenEngine::new(keys, true, false)))
    }

    /// Feeds the next bytes of the blob; appends the plaintext they complete to `out`.
    pub fn update(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.0.update(data, out);
    }

    /// Decrypts the last block, strips the padding, appends the rest of the plaintext to
    /// `out` and checks the MAC, the padding and the `expected` hashes. Returns the
    /// plaintext length.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::MacMismatch`], [`Error::EncHashMismatch`],
    /// [`Error::BadPadding`], [`Error::HashMismatch`].
    pub fn finish(self, expected: &Expected, out: &mut Vec<u8>) -> Result<u64, Error> {
        self.0.finish(expected, out)
    }
}

/// Streaming decryptor for a blob a [`Verifier`] has already checked: decryption and the
/// plaintext hash only, so the second pass of a verify-then-decrypt download does not
/// repeat the MAC and the encrypted-file hash. Its output is authentic only if the
/// verifier accepted the same bytes.
pub struct Opener(Unpacker);

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("length", &self.0.length)
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// An opener with `keys`.
    pub fn new(keys: &MediaKeys) -> Self {
        Self(Unpacker::new(OpenEngine::new(keys, false, true)))
    }

    /// An opener that runs the library passes whatever the CPU (tests compare the two).
    #[cfg(test)]
    fn library(keys: &MediaKeys) -> Self {
        Self(Unpacker::new(OpenEngine::new(keys, false, false)))
    }

    /// Feeds the next bytes of the blob; appends the plaintext they complete to `out`.
    pub fn update(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.0.update(data, out);
    }

    /// Decrypts the last block, strips the padding, appends the rest of the plaintext to
    /// `out` and checks the padding and `expected.file_sha256` (the other fields are the
    /// verifier's). Returns the plaintext length.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::BadPadding`], [`Error::HashMismatch`].
    pub fn finish(self, expected: &Expected, out: &mut Vec<u8>) -> Result<u64, Error> {
        self.0.finish(expected, out)
    }
}

/// `data` without its PKCS#7 padding.
fn strip_padding(data: &[u8]) -> Result<&[u8], Error> {
    let pad = usize::from(*data.last().ok_or_else(|| Error::BadPadding)?);
    if pad == 0 || pad > BLOCK || pad > data.len() {
        return Err(Error::BadPadding);
    }
    let (body, padding) = data.split_at(data.len() - pad);
    if padding.iter().any(|&b| usize::from(b) != pad) {
        return Err(Error::BadPadding);
    }
    Ok(body)
}

/// Below this size [`decrypt_parallel`] runs as [`decrypt`] does: starting a thread would
/// cost more than it saves.
const PARALLEL_MIN: usize = 1 << 20;

/// Decrypts a whole blob in memory, verifying before returning anything: one pass, on the
/// calling thread.
///
/// # Errors
/// As [`Decryptor::finish`].
pub fn decrypt(keys: &MediaKeys, blob: &[u8], expected: &Expected) -> Result<Vec<u8>, Error> {
    // The plaintext is only returned once `finish` has verified everything.
    let mut out = Vec::with_capacity(blob.len());
    let mut d = Decryptor::new(keys);
    d.update(blob, &mut out);
    d.finish(expected, &mut out)?;
    Ok(out)
}

/// [`decrypt`] on two threads, for large blobs when the wall-clock time matters more than
/// the CPU time: a [`Verifier`] checks the blob on a second thread while an [`Opener`]
/// decrypts it on the calling one. Both read the same bytes, so the time is about that of
/// the slower pass instead of the one-pass loop's; the two passes together use more CPU
/// than the one pass does (figures in docs/PERFORMANCE.md). Below 1 MiB, or on a machine
/// with one core, it runs as [`decrypt`] does.
///
/// # Errors
/// As [`Decryptor::finish`], in the same order.
pub fn decrypt_parallel(
    keys: &MediaKeys,
    blob: &[u8],
    expected: &Expected,
) -> Result<Vec<u8>, Error> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if blob.len() < PARALLEL_MIN || cores < 2 {
        return decrypt(keys, blob, expected);
    }
    let mut out = Vec::with_capacity(blob.len());
    let (checked, opened) = std::thread::scope(|s| {
        let checker = s.spawn(|| {
            let mut v = Verifier::new(keys);
            v.update(blob);
            v.finish(expected)
        });
        let mut o = Opener::new(keys);
        o.update(blob, &mut out);
        let opened = o.finish(expected, &mut out);
        // A panic in the verifier is a bug, not a verdict on the blob: pass it on.
        let checked = checker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (checked, opened)
    });
    // The order of verdicts of one pass: length, MAC, hash, then padding, plaintext.
    checked?;
    opened?;
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

    /// The verdict and output of one way of taking `blob` in the pieces `cuts` makes.
    type Outcome = (Result<u64, Error>, Vec<u8>);

    fn pieces(blob: &[u8], cuts: &[usize]) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut at = 0;
        for &c in cuts {
            let end = (at + c).min(blob.len());
            out.push(at..end);
            at = end;
        }
        out.push(at..blob.len());
        out
    }

    fn run_decryptor(mut d: Decryptor, blob: &[u8], cuts: &[usize], e: &Expected) -> Outcome {
        let mut out = Vec::new();
        for r in pieces(blob, cuts) {
            d.update(&blob[r], &mut out);
        }
        (d.finish(e, &mut out), out)
    }

    fn run_opener(mut o: Opener, blob: &[u8], cuts: &[usize], e: &Expected) -> Outcome {
        let mut out = Vec::new();
        for r in pieces(blob, cuts) {
            o.update(&blob[r], &mut out);
        }
        (o.finish(e, &mut out), out)
    }

    fn run_verifier(mut v: Verifier, blob: &[u8], cuts: &[usize], e: &Expected) -> Outcome {
        for r in pieces(blob, cuts) {
            v.update(&blob[r]);
        }
        (v.finish(e).map(|()| 0), Vec::new())
    }

    /// Each of the three decryption-side types gives the same verdict and bytes through
    /// the stitched and the library engines.
    fn assert_engines_agree(k: &MediaKeys, blob: &[u8], cuts: &[usize], e: &Expected) {
        let what = format!("{} bytes, cuts {cuts:?}", blob.len());
        let (want, want_out) = run_decryptor(Decryptor::library(k), blob, cuts, e);
        let (got, got_out) = run_decryptor(Decryptor::new(k), blob, cuts, e);
        assert_eq!(format!("{got:?}"), format!("{want:?}"), "decryptor, {what}");
        assert!(got_out == want_out, "decryptor output, {what}");
        let (want, want_out) = run_opener(Opener::library(k), blob, cuts, e);
        let (got, got_out) = run_opener(Opener::new(k), blob, cuts, e);
        assert_eq!(format!("{got:?}"), format!("{want:?}"), "opener, {what}");
        assert!(got_out == want_out, "opener output, {what}");
        let (want, _) = run_verifier(Verifier::library(k), blob, cuts, e);
        let (got, _) = run_verifier(Verifier::new(k), blob, cuts, e);
        assert_eq!(format!("{got:?}"), format!("{want:?}"), "verifier, {what}");
    }

    #[test]
    fn both_decryption_paths_agree_on_every_length_split_and_tampering() {
        let mut rng = StdRng::seed_from_u64(13);
        for len in 0..=200usize {
            let k = random_keys(&mut rng);
            let mut plain = vec![0u8; len];
            rng.fill_bytes(&mut plain);
            let (blob, info) = encrypt(&k, &plain);
            let e = Expected::hashes(Some(info.file_enc_sha256), Some(info.file_sha256));
            // The library path itself, against what was encrypted.
            let (verdict, out) = run_decryptor(Decryptor::library(&k), &blob, &[], &e);
            assert_eq!(verdict.unwrap(), len as u64);
            assert_eq!(out, plain);
            let (verdict, out) = run_opener(Opener::library(&k), &blob, &[], &e);
            assert_eq!(verdict.unwrap(), len as u64);
            assert_eq!(out, plain);

            let step = if len <= 100 { 1 } else { 9 };
            for cut in (0..=blob.len()).step_by(step) {
                assert_engines_agree(&k, &blob, &[cut], &e);
            }
            assert_engines_agree(&k, &blob, &[3, 17, 1, 40], &e);
            // Tampered: a flipped ciphertext or MAC byte, a cut blob, wrong hashes.
            let mut flipped = blob.clone();
            let i = rng.gen_range(0..blob.len());
            flipped[i] ^= 1 << rng.gen_range(0..8);
            assert_engines_agree(&k, &flipped, &[7], &e);
            assert_engines_agree(&k, &blob[..blob.len() - 1], &[], &e);
            assert_engines_agree(&k, &blob[..blob.len().min(MAC_LEN + 3)], &[2], &e);
            let mut wrong = e.clone();
            wrong.file_enc_sha256.as_mut().unwrap()[0] ^= 1;
            assert_engines_agree(&k, &blob, &[33], &wrong);
            let mut wrong = e.clone();
            wrong.file_sha256.as_mut().unwrap()[0] ^= 1;
            assert_engines_agree(&k, &blob, &[33], &wrong);
        }
    }

    #[test]
    fn both_decryption_paths_agree_on_a_few_mib_in_random_pieces() {
        let mut rng = StdRng::seed_from_u64(14);
        let k = random_keys(&mut rng);
        let mut plain = vec![0u8; (3 << 20) + 9];
        rng.fill_bytes(&mut plain);
        let (blob, info) = encrypt(&k, &plain);
        let e = Expected::hashes(Some(info.file_enc_sha256), Some(info.file_sha256));
        let cuts: Vec<usize> = (0..60).map(|_| rng.gen_range(0..90_000)).collect();
        assert_engines_agree(&k, &blob, &cuts, &e);
        let (verdict, out) = run_decryptor(Decryptor::new(&k), &blob, &cuts, &e);
        assert_eq!(verdict.unwrap(), plain.len() as u64);
        assert!(out == plain);
        let mut flipped = blob.clone();
        flipped[2 << 20] ^= 4;
        assert_engines_agree(&k, &flipped, &cuts, &e);
    }
}
