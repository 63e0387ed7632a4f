"""Random streams keyed by names, so every draw depends only on what it is about.

`rng_for(seed, "identity", "sub01")` gives the same generator in any process, in any order
of calls, on any run: this is what makes a frame depend only on (seed, subject, clip,
frame number), and sparse and full renderings agree on the frames they share.
"""

from __future__ import annotations

import hashlib

import numpy as np


def rng_for(seed: int, *parts: str | int) -> np.random.Generator:
    """A generator seeded from the run seed and a tuple of names and numbers."""
    text = "\x1f".join(str(part) for part in (int(seed), *parts))
    digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))
