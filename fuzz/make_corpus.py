#!/usr/bin/env python3
"""Writes the seed corpus of the binary_decode target from the Baileys vectors
(crates/wa-binary/tests/vectors/binary_nodes.json): one file per frame."""
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
vec = json.load(open(os.path.join(here, "..", "crates", "wa-binary", "tests", "vectors", "binary_nodes.json")))
out = os.path.join(here, "corpus", "binary_decode")
os.makedirs(out, exist_ok=True)
n = 0
for section in ("nodes", "compressed", "decodeOnly", "errors"):
    for case in vec.get(section, []):
        h = case.get("hex")
        if not h:
            continue
        with open(os.path.join(out, f"{section}-{case['name']}"), "wb") as f:
            f.write(bytes.fromhex(h))
        n += 1
print(f"wrote {n} seeds to {out}")
