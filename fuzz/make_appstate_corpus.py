#!/usr/bin/env python3
"""Writes the seed corpus of the appstate_patch target from the Baileys vectors
(crates/wa-appstate/tests/vectors/app_state.json). The first byte of each seed selects
the target's mode (0 patch, 1 snapshot, 2 key-holder round trip, 3 history blob, 4 stored state)."""
import json
import os
import zlib

here = os.path.dirname(os.path.abspath(__file__))
vec = json.load(open(os.path.join(here, "..", "crates", "wa-appstate", "tests", "vectors", "app_state.json")))
out = os.path.join(here, "corpus", "appstate_patch")
os.makedirs(out, exist_ok=True)


def varint(n):
    b = bytearray()
    while True:
        x = n & 0x7F
        n >>= 7
        if n:
            b.append(x | 0x80)
        else:
            b.append(x)
            return bytes(b)


def field(num, payload):
    """A length-delimited field."""
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def fields(buf):
    """Top-level (number, raw payload) pairs of a message with only varint/bytes fields."""
    i, res = 0, []
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, j = read_varint(buf, i)
            res.append((num, buf[i:j]))
            i = j
        elif wt == 2:
            n, i = read_varint(buf, i)
            res.append((num, buf[i:i + n]))
            i += n
        else:
            raise ValueError("unexpected wire type")
    return res


def read_varint(buf, i):
    shift = n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


n = 0
for p in vec["patches"]:
    raw = bytes.fromhex(p["syncdPatchProtoHex"])
    open(os.path.join(out, f"patch-{p['name']}"), "wb").write(b"\x00" + raw)
    n += 1
    if p["name"] == "mute":
        # A snapshot of version 1 holding mute's record: its MAC is the patch's snapshot MAC.
        f = dict(fields(raw))
        record = dict(fields(f[2]))[2]
        snap = field(1, f[1]) + field(2, record) + field(3, f[4]) + field(4, f[6])
        open(os.path.join(out, "snapshot-mute"), "wb").write(b"\x01" + snap)
        n += 1

# Key-holder mode: cut byte, index parts separated by 0x01, then a SyncActionValue.
index = b"mute\x0115551234567@s.whatsapp.net"
value = bytes([0x08]) + varint(1700000000000) + field(4, bytes([0x08, 0x01, 0x10]) + varint(1700003600000))
open(os.path.join(out, "keyholder-mute"), "wb").write(b"\x02" + bytes([len(index) + 1]) + index + value)
n += 1

# History mode: HistorySync{syncType=INITIAL_BOOTSTRAP, conversations=[{id, messages=[..]}]}.
conv = field(1, b"15550001111@s.whatsapp.net") + field(2, field(1, field(1, field(1, b"15550001111@s.whatsapp.net") + bytes([0x10, 0x00]) + field(3, b"ABC"))))
hist = bytes([0x08, 0x00]) + field(2, conv) + field(15, field(1, b"15550001111@s.whatsapp.net") + field(2, b"111@lid"))
open(os.path.join(out, "history-bootstrap"), "wb").write(b"\x03" + zlib.compress(hist))
n += 1
# Stored-state mode: format 1, version 1, the hash after mute, one entry.
mute = next(p for p in vec["patches"] if p["name"] == "mute")
after = mute["stateAfter"]
import base64
(idx, val), = after["indexValueMap"].items()
state = bytes([1]) + (1).to_bytes(8, "big") + bytes.fromhex(after["hash"]) + (1).to_bytes(4, "big")
state += base64.b64decode(idx) + bytes.fromhex(val)
open(os.path.join(out, "state-mute"), "wb").write(b"\x04" + state)
n += 1
print(f"wrote {n} seeds to {out}")
