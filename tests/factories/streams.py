"""Large test content made on the fly: a reproducible byte pattern that never sits whole in memory."""

from __future__ import annotations

import hashlib

MIB = 1024 * 1024


class PatternStream:
    """`size` bytes of a pseudo-random pattern unique to `seed`, read like a file."""

    def __init__(self, size: int, seed: int) -> None:
        self.left = size
        block = hashlib.sha512(seed.to_bytes(8, "big")).digest()
        self.block = (block * (MIB // len(block) + 1))[:MIB]

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        n = min(n, len(self.block))
        self.left -= n
        return self.block[:n]

    def close(self) -> None:
        self.left = 0

    def __enter__(self) -> PatternStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pattern_sha1(size: int, seed: int) -> str:
    """The SHA-1 of PatternStream(size, seed), as a Document Source would put it in the metadata."""
    sha1, stream = hashlib.sha1(), PatternStream(size, seed)
    while chunk := stream.read(MIB):
        sha1.update(chunk)
    return sha1.hexdigest()
