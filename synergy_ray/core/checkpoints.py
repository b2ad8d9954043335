"""Which RL checkpoints to delete after a new one is written: a plain function of their names.

Checkpoints are directories named `step_NNNNNN` (zero-padded, so names sort by step). The newest `keep` stay;
the ones named in `protected` (the one `latest` points to, the one just written) stay whatever their age.
Anything else in the folder (a half-written `.partial` directory, the `latest` file) is not a checkpoint and
is not touched here.
"""

from __future__ import annotations

import re

CHECKPOINT_NAME = re.compile(r"^step_\d+$")


def checkpoints_to_remove(names: list[str], keep: int, protected: set[str]) -> list[str]:
    """The checkpoint names among `names` to delete so that the newest `keep` (and `protected`) remain."""
    if keep < 1:
        raise ValueError("keep must be at least 1: the latest checkpoint is what a resume reads")
    steps = sorted(n for n in names if CHECKPOINT_NAME.match(n))
    return [n for n in steps[:-keep] if n not in protected]
