"""How a mini-batch is dealt to the learner ranks so that their collectives line up.

Under ZeRO-3 every forward and backward all-gathers each layer's parameters, so every rank must run the
same number of micro-batches; under ZeRO-2 every rank must reach the same gradient reduction. Dealing
round-robin gives ranks lengths that differ by one, which is enough to give one rank an extra micro-batch.
`deal(n, world)` therefore pads the short ranks with `FILLER` (-1): the learner runs a filler row (a copy of a
real one) with every loss weight zero, so it joins the collectives and changes nothing.
"""

from __future__ import annotations

FILLER = -1


def deal(n: int, world: int) -> list[list[int]]:
    """Indices 0..n-1 round-robin over `world` ranks, every rank the same length (padded with FILLER)."""
    if world < 1:
        raise ValueError(f"world must be at least 1, got {world}")
    parts = [list(range(r, n, world)) for r in range(world)]
    width = max(len(p) for p in parts)
    return [p + [FILLER] * (width - len(p)) for p in parts]
