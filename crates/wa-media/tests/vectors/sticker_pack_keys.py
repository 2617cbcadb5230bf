# Independent known answers for the "WhatsApp Sticker Pack Keys" media type: HKDF-SHA256
# (RFC 5869, zero salt, 112 bytes) from hmac/hashlib, AES-256-CBC from `cryptography`.
import hmac, hashlib, json
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives import padding

def hkdf(ikm, info, n):
    prk = hmac.new(b"\0" * 32, ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:n]

INFO = b"WhatsApp Sticker Pack Keys"
def expand(mk):
    e = hkdf(mk, INFO, 112)
    return e[:16], e[16:48], e[48:80], e[80:112]

mk = bytes(range(32))
iv, ck, mac, ref = expand(mk)
enc_key = bytes(range(32, 64))
plain = b"PK\x03\x04 a sticker pack: tray.png, 01.webp, 02.webp, 03.webp"
iv2, ck2, mac2, _ = expand(enc_key)
p = padding.PKCS7(128).padder()
padded = p.update(plain) + p.finalize()
e = Cipher(algorithms.AES(ck2), modes.CBC(iv2)).encryptor()
ct = e.update(padded) + e.finalize()
blob = ct + hmac.new(mac2, iv2 + ct, hashlib.sha256).digest()[:10]
print(json.dumps({
    "source": "crates/wa-media/tests/vectors/sticker_pack_keys.py (Python hmac/hashlib HKDF-SHA256, cryptography AES-256-CBC), independent of this crate",
    "info": INFO.decode(),
    "expansion": {"mediaKey": mk.hex(), "iv": iv.hex(), "cipherKey": ck.hex(), "macKey": mac.hex(), "refKey": ref.hex()},
    "encrypted": {"mediaKey": enc_key.hex(), "plaintextHex": plain.hex(), "encHex": blob.hex(),
                  "fileSha256": hashlib.sha256(plain).hexdigest(), "fileEncSha256": hashlib.sha256(blob).hexdigest()},
}, indent=2))
