"""The console's quiet mode: library settings go into the environment (and so to Ray's workers) unless
--verbose, and never override what a user exported."""

import os

from synergy_ray import console


def test_quiet_sets_library_settings_and_keeps_the_users(monkeypatch):
    for key in console.QUIET_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "DEBUG")  # the user's own choice
    console.quiet_libraries(verbose=False)
    assert os.environ["VLLM_LOGGING_LEVEL"] == "DEBUG"
    assert os.environ["RAY_TRAIN_ENABLE_PRINT_PATCH"] == "0"  # each SFT worker line printed once, not twice
    assert console.worker_env()["TQDM_DISABLE"] == "1"
    assert console.runtime_env_hook() == {"worker_process_setup_hook": "synergy_ray.console.quiet_worker"}


def test_verbose_changes_nothing(monkeypatch):
    for key in console.QUIET_ENV:
        monkeypatch.delenv(key, raising=False)
    console.quiet_libraries(verbose=True)
    assert console.worker_env() == {} and console.runtime_env_hook() == {}
