"""The console: library settings go into the environment (and so to Ray's workers) unless --verbose, never
overriding what a user exported; our own lines go through one logger whose level --quiet / --verbose set."""

import logging
import os

import pytest

from synergy_ray import console


@pytest.fixture
def clean_env(monkeypatch):
    for key in (*console.QUIET_ENV, console.LOG_LEVEL_ENV):
        monkeypatch.delenv(key, raising=False)  # restored after the test
    yield
    console.log().setLevel(logging.INFO)


def test_quiet_sets_library_settings_and_keeps_the_users(clean_env, monkeypatch):
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "DEBUG")  # the user's own choice
    console.quiet_libraries(verbose=False)
    assert os.environ["VLLM_LOGGING_LEVEL"] == "DEBUG"
    assert os.environ["RAY_TRAIN_ENABLE_PRINT_PATCH"] == "0"  # each SFT worker line printed once, not twice
    assert console.worker_env()["TQDM_DISABLE"] == "1"
    assert console.quiet() and console.ray_train_log_level() == "WARNING"
    assert console.runtime_env_hook() == {"worker_process_setup_hook": "synergy_ray.console.setup_worker"}
    # a warning vLLM prints while it is imported (before it configures its logging) is held back
    assert not logging.getLogger("vllm.triton_utils.importing").isEnabledFor(logging.WARNING)
    assert logging.getLogger("vllm.triton_utils.importing").isEnabledFor(logging.ERROR)



def test_only_the_one_auth_message_is_held_back(clean_env, caplog):
    """Ray says at every local start that token authentication is on (its default): held back. That it is
    *off* is a security warning and still shows."""
    console.quiet_libraries(verbose=False)
    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled ...")
        logger.warning("Token authentication is disabled for this Ray cluster. Anyone with network access ...")
    assert [r.getMessage().split(".")[0] for r in caplog.records] == [
        "Token authentication is disabled for this Ray cluster"]


def test_verbose_changes_no_library_setting(clean_env):
    console.set_verbosity("verbose")
    assert set(console.worker_env()) == {console.LOG_LEVEL_ENV}  # only our own level travels
    assert not console.quiet() and console.ray_train_log_level() == "INFO"


@pytest.mark.parametrize("verbosity, shown", [
    ("quiet", ["a warning"]),
    ("normal", ["a stage line", "a warning"]),
    ("verbose", ["a debug line", "a stage line", "a warning"]),
])
def test_our_lines_follow_the_verbosity_and_reach_stdout(clean_env, capsys, verbosity, shown):
    console.set_verbosity(verbosity)
    assert console.worker_env()[console.LOG_LEVEL_ENV] == console.LEVELS[verbosity]  # Ray's workers get it too
    console.log("rl").debug("a debug line")
    console.log("rl").info("a stage line")
    console.log().warning("a warning")
    assert capsys.readouterr().out.splitlines() == shown  # plain lines, on whatever stdout is now
