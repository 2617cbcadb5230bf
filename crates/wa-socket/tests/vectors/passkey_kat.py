# Independent known answers for the passkey-link derivations (hashlib, hmac, cryptography).
import hashlib, hmac, base64
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

def hkdf(ikm, salt, info, n=32):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=info).derive(ikm)
def varint(n):
    out=b''
    while True:
        b=n&0x7f; n>>=7
        if n: out+=bytes([b|0x80])
        else: return out+bytes([b])
def field_bytes(num, b): return varint(num<<3|2)+varint(len(b))+b
def field_varint(num, v): return varint(num<<3|0)+varint(v)
def pub(priv):
    return X25519PrivateKey.from_private_bytes(priv).public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

adv = bytes(range(32))
companion_priv = hashlib.sha256(b"companion ephemeral").digest()
primary_priv = hashlib.sha256(b"primary ephemeral").digest()
companion_nonce = hashlib.sha256(b"companion nonce").digest()
primary_nonce = hashlib.sha256(b"primary nonce").digest()
ref = "2@Q1w2E3r4T5y6"
device_type = 1
iv = bytes(range(100, 112))
noise_pub = hashlib.sha256(b"noise").digest()
identity_pub = hashlib.sha256(b"identity").digest()

handoff = hkdf(adv, None, b"shortcake-passkey-handoff-v1")
cpub = pub(companion_priv); ppub = pub(primary_priv)
ident = field_bytes(1, cpub) + field_varint(2, device_type) + field_bytes(3, ref.encode())
commit = hashlib.sha256(ident + companion_nonce).digest()
payload = field_bytes(1, ident) + field_bytes(2, field_bytes(1, commit))
proof = hmac.new(handoff, payload, hashlib.sha256).digest()
shared = X25519PrivateKey.from_private_bytes(companion_priv).exchange(X25519PublicKey.from_public_bytes(ppub))
shared2 = X25519PrivateKey.from_private_bytes(primary_priv).exchange(X25519PublicKey.from_public_bytes(cpub))
assert shared == shared2
key = hkdf(shared, ("Companion Pairing %d with ref %s" % (device_type, ref)).encode(), b"Pairing Information Encryption Key")
d = hashlib.sha256(companion_nonce + ppub).digest()
code_bytes = bytes(a ^ b for a, b in zip(primary_nonce[:5], d[:5]))
std = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"; ours = "123456789ABCDEFGHJKLMNPQRSTVWXYZ"
code = base64.b32encode(code_bytes).decode().translate(str.maketrans(std, ours))
code = code[:4] + "-" + code[4:]
req = field_bytes(1, noise_pub) + field_bytes(2, identity_pub) + field_bytes(3, adv)
ct = AESGCM(key).encrypt(iv, req, None)
enc = field_bytes(1, ct) + field_bytes(2, iv)
for name, v in [("HANDOFF_KEY", handoff), ("COMPANION_PRIV", companion_priv), ("PRIMARY_PRIV", primary_priv),
                ("COMPANION_NONCE", companion_nonce), ("PRIMARY_NONCE", primary_nonce), ("IDENT", ident),
                ("PAYLOAD", payload), ("PROOF", proof), ("REQUEST_KEY", key), ("IV", iv),
                ("NOISE_PUB", noise_pub), ("IDENTITY_PUB", identity_pub), ("ENCRYPTED", enc)]:
    print(name, v.hex())
print("CODE", code)
print("PRIMARY_PUB", ppub.hex())
print("COMPANION_PUB", cpub.hex())
