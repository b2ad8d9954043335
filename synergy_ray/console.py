"""What a person sees on the console: our stage lines, progress and results, not pages of library output.

Unless `--verbose` is given, every process of a run (the driver, and through Ray's runtime environment every
actor and Ray Train worker) gets settings that quiet the libraries before they are imported: vLLM's start-up
INFO lines and CPU-platform notes, transformers' advisory warnings, every library's progress bars (weights
loading, shards written), deprecation notes, and Ray Train's copy of each worker `print` (every line arrived
twice). Errors still print, and settings a user exported themselves are left alone.

Ray Train's placement-group cleaner asks Ray's State API, which the embedded Ray (started without a dashboard)
does not serve, so it warned every few seconds after each SFT job; quiet workers drop that warning
(`quiet_worker`, Ray's worker set-up hook).
"""

from __future__ import annotations

import os

QUIET_ENV = {
    "VLLM_LOGGING_LEVEL": "ERROR",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
    "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::FutureWarning",
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
}


def quiet_libraries(verbose: bool) -> None:
    """Set the quiet settings in this process's environment (call before vLLM, transformers or Ray load)."""
    if verbose:
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # PYTHONWARNINGS is read at start-up only
    warnings.filterwarnings("ignore", category=FutureWarning)


def worker_env() -> dict[str, str]:
    """The same settings for Ray's workers (what this process has of them)."""
    return {key: os.environ[key] for key in QUIET_ENV if key in os.environ}


def runtime_env_hook() -> dict[str, str]:
    """Ray runtime-env entries that quiet every worker as it starts; none with `--verbose`."""
    return {"worker_process_setup_hook": "synergy_ray.console.quiet_worker"} if worker_env() else {}


def quiet_worker() -> None:
    import logging

    logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner").setLevel(logging.ERROR)
