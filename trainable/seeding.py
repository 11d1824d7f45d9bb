"""Named random streams: each random draw of a trial has its own generator derived from the seed.

Separate streams keep draws independent of each other's order: changing the probe batch size, say,
does not change the noise set or the shuffling.
"""

import hashlib

import torch


def stream_seed(seed: int, stream: str) -> int:
    digest = hashlib.sha256(f"{seed}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(seed: int, stream: str) -> torch.Generator:
    """A CPU generator for one named stream of one seed."""
    return torch.Generator().manual_seed(stream_seed(seed, stream))
