"""An RL run's checkpoints on disk: `checkpoints/step_NNNNNN/` (the learner's files plus `coordinator.json`,
the step's small state) and `checkpoints/latest`, a file naming the newest whole one.

A checkpoint is written under a `.partial` name and renamed when complete, then `latest` is replaced
atomically, then all but the newest `rl.keep_checkpoints` are deleted (which ones: `core.checkpoints`), so a
crash at any point leaves the previous checkpoint whole and `latest` pointing at a whole one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

from synergy_ray.core.checkpoints import checkpoints_to_remove

STATE_FILE = "coordinator.json"


def write_checkpoint(root: Path, step: int, save_learner: Callable[[str], None], state: dict, keep: int) -> str:
    """Write step `step`'s checkpoint under `root` (`save_learner(directory)` writes the learner's part)."""
    path = root / f"step_{step:06d}"
    partial = root / f"{path.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)  # left by a crash
    partial.mkdir(parents=True)
    save_learner(str(partial))
    (partial / STATE_FILE).write_text(json.dumps(state))
    shutil.rmtree(path, ignore_errors=True)  # the same step saved again (a test, a resumed run)
    partial.rename(path)
    (root / "latest.tmp").write_text(path.name)
    os.replace(root / "latest.tmp", root / "latest")
    for name in checkpoints_to_remove([p.name for p in root.iterdir()], keep, {path.name}):
        shutil.rmtree(root / name)
    return str(path)


def latest_checkpoint(root: Path) -> Path | None:
    """The checkpoint `latest` names, or None when the run has written none."""
    latest = root / "latest"
    return root / latest.read_text().strip() if latest.exists() else None


def read_state(path: str | os.PathLike) -> dict:
    """The coordinator's state saved with the checkpoint at `path`."""
    return json.loads((Path(path) / STATE_FILE).read_text())
