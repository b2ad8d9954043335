"""Running a config on a Ray cluster as a Ray job: `synergy-ray submit` and `synergy-ray jobs`.

The job is `python -m synergy_ray.cli <command> CFG [overrides]` run by the cluster's job supervisor, with
this checkout as the runtime environment's working directory (so the cluster runs the code and configs
submitted, not whatever version its nodes have installed) and the config validated here first. Python
packages come from the nodes' own environment by default (`cluster.yaml` installs `synergy-ray[gpu]`);
`pip_extras` instead installs the project's dependencies plus those extras into the job's environment, for
a cluster that only has Ray.

The pure parts (entry point, runtime environment, address) are plain functions; only `client` touches Ray.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
JOB_COMMANDS = ("train", "sft", "compare", "demo", "prepare")
# Local outputs, environments and caches stay here; `.gitignore` is honoured by Ray on top of these.
WORKING_DIR_EXCLUDES = ["runs/", ".venv/", ".git/", "**/__pycache__/", "*.egg-info/", ".pytest_cache/",
                        "benchmarks/results/"]
# Set by ray_session.connect() for the job's workers; Ray refuses a job whose env_vars repeat them.
RESERVED_ENV_VARS = ("TOKENIZERS_PARALLELISM", "VLLM_CPU_KVCACHE_SPACE")


class JobError(RuntimeError):
    """A submission or query the cluster refused, or a cluster that cannot be reached; the message says which."""


@dataclass(frozen=True)
class Submission:
    command: str
    config: str  # path relative to the working directory
    overrides: tuple[str, ...]
    working_dir: Path
    env_vars: dict[str, str]
    pip_extras: tuple[str, ...] = ()
    python: str = "python"


def project_root() -> Path:
    """The checkout this package was imported from (holds pyproject.toml); the job ships this directory."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").exists():
        raise JobError(f"synergy_ray is not imported from a checkout ({root} has no pyproject.toml): "
                       "pass --working-dir")
    return root


def config_in_working_dir(config: str | os.PathLike, working_dir: Path) -> str:
    """The config's path inside the working directory, as the job will see it; refused when it lies outside."""
    path = Path(config).resolve()
    try:
        return path.relative_to(working_dir.resolve()).as_posix()
    except ValueError:
        raise JobError(f"config {config}: must lie inside the job's working directory {working_dir} "
                       "(only that directory is shipped to the cluster)") from None


def parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise JobError(f"--env {pair!r}: expected NAME=VALUE")
        if key in RESERVED_ENV_VARS:
            raise JobError(f"--env {key}: set by synergy-ray for the job's workers from the config; "
                           "change the config field instead")
        env[key] = value
    return env


def extra_requirements(root: Path, extras: tuple[str, ...]) -> list[str]:
    """The project's dependencies plus the named extras from pyproject.toml, without Ray itself: the job must
    use the Ray the cluster runs."""
    import tomllib

    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    known = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in known]
    if unknown:
        raise JobError(f"--pip-extras {','.join(unknown)}: not an extra of this project (have {', '.join(known)})")
    reqs = list(project["dependencies"]) + [r for e in extras for r in known[e]]
    return [r for r in reqs if not r.replace("_", "-").lower().startswith("ray")]


def entrypoint(s: Submission) -> str:
    return shlex.join([s.python, "-m", "synergy_ray.cli", s.command, s.config, *s.overrides])


def runtime_env(s: Submission) -> dict:
    env = {"working_dir": str(s.working_dir), "excludes": list(WORKING_DIR_EXCLUDES),
           "env_vars": {"PYTHONUNBUFFERED": "1", **s.env_vars}}
    if s.pip_extras:
        env["pip"] = extra_requirements(s.working_dir, s.pip_extras)
    return env


def resolve_address(address: str | None) -> str:
    """--address, else RAY_API_SERVER_ADDRESS, else an http RAY_ADDRESS, else the local dashboard."""
    if address:
        return address
    for var in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        value = os.environ.get(var, "")
        if value.startswith(("http://", "https://")):
            return value
    return DEFAULT_ADDRESS


def _local_token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    return Path(path).is_file()


def prepare_auth(address: str) -> None:
    """Send this machine's Ray token to a dashboard on this machine, as `ray start` and `ray.init` do.

    Ray (2.60) starts local clusters with token authentication whenever a token exists in ~/.ray, but its HTTP
    clients only send one when RAY_AUTH_MODE=token. A remote address never gets the local token unasked: set
    RAY_AUTH_MODE=token (and RAY_AUTH_TOKEN) for that cluster yourself.
    """
    host = urlparse(address if "://" in address else f"http://{address}").hostname
    if os.environ.get("RAY_AUTH_MODE") is None and host in ("127.0.0.1", "localhost", "::1") \
            and _local_token_available():
        os.environ["RAY_AUTH_MODE"] = "token"


def client(address: str | None):
    url = resolve_address(address)
    prepare_auth(url)
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(url)
    except AuthenticationError as err:
        raise JobError(f"the Ray dashboard at {url} wants a token: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN "
                       f"(or ~/.ray/auth_token) for that cluster ({str(err).splitlines()[0]})") from None
    except ConnectionError as err:
        raise JobError(f"cannot reach the Ray dashboard at {url} (is the cluster up, with its dashboard, "
                       f"and the address right?): {str(err).splitlines()[0]}") from None


def submit(s: Submission, address: str | None, metadata: dict[str, str]) -> str:
    c = client(address)
    return c.submit_job(entrypoint=entrypoint(s), runtime_env=runtime_env(s), metadata=metadata)


def _job_call(c, method: str, job_id: str):
    try:
        return getattr(c, method)(job_id)
    except RuntimeError as err:
        raise JobError(f"job {job_id}: {str(err).splitlines()[0]}") from None


def status(address: str | None, job_id: str):
    return _job_call(client(address), "get_job_info", job_id)


def logs(address: str | None, job_id: str) -> str:
    return _job_call(client(address), "get_job_logs", job_id)


def stop(address: str | None, job_id: str) -> bool:
    return _job_call(client(address), "stop_job", job_id)


def follow(address: str | None, job_id: str, out=sys.stdout) -> str:
    """Stream a job's logs until it ends; returns its final status name."""
    import asyncio

    c = client(address)

    async def tail() -> None:
        async for chunk in c.tail_job_logs(job_id):
            out.write(chunk)
            out.flush()

    try:
        asyncio.run(tail())
    except RuntimeError as err:
        raise JobError(f"job {job_id}: {str(err).splitlines()[0]}") from None
    except KeyboardInterrupt:
        raise JobError(f"stopped following; job {job_id} goes on (`synergy-ray jobs stop {job_id}` ends it)") from None
    return _job_call(c, "get_job_status", job_id).value
