"""The cluster commands of `synergy-ray`: `submit`, `jobs status|logs|stop`, `plan`.

Kept apart from cli.py so the core commands' file stays short; cli.py only registers these parsers and
dispatches to `run`. Nothing here imports Ray before the config (when there is one) has been validated.
"""

from __future__ import annotations

import argparse
import sys

from synergy_ray.cluster import jobs
from synergy_ray.cluster.jobs import JOB_COMMANDS, JobError
from synergy_ray.core.placement import PlacementError, parse_cluster_shape

EXIT_JOB_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_CLUSTER = 4  # the cluster could not be reached or refused the request
COMMANDS = ("submit", "jobs", "plan")


def add_parsers(sub) -> None:
    p = sub.add_parser("submit", help="validate a config, then run it on a Ray cluster as a Ray job")
    p.add_argument("config", help="YAML config file (inside the working directory)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. rl.steps=10")
    p.add_argument("--address", default=None,
                   help="Ray dashboard URL (default: RAY_API_SERVER_ADDRESS, RAY_ADDRESS, http://127.0.0.1:8265)")
    p.add_argument("--command", dest="job_command", default="train", choices=JOB_COMMANDS,
                   help="what the job runs (default train)")
    p.add_argument("--working-dir", default=None, help="directory shipped to the cluster (default: this checkout)")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="environment for the job")
    p.add_argument("--pip-extras", default="",
                   help="e.g. 'gpu': install the project's dependencies and these extras into the job's "
                        "environment (default: use the nodes' installed environment)")
    p.add_argument("--python", default="python", help="the interpreter the job runs (default: python on PATH)")
    p.add_argument("--follow", action="store_true", help="stream the job's logs until it ends")

    j = sub.add_parser("jobs", help="status, logs or stop of a submitted job")
    j.add_argument("action", choices=("status", "logs", "stop"))
    j.add_argument("job_id")
    j.add_argument("--address", default=None, help="Ray dashboard URL (as for submit)")
    j.add_argument("--follow", action="store_true", help="logs: stream until the job ends")

    pl = sub.add_parser("plan", help="which actor goes on which node and GPU, without starting anything")
    pl.add_argument("config", help="YAML config file")
    pl.add_argument("overrides", nargs="*", help="dotted overrides")
    pl.add_argument("--cluster", required=True,
                    help="cluster shape: '1x8gpu', '2x8gpu,1xcpu', '1x8gpu:96cpu', or a YAML/JSON file of nodes")


def run(args: argparse.Namespace) -> int:
    from synergy_ray.config import ConfigError  # defers yaml

    try:
        if args.command == "submit":
            return _submit(args)
        if args.command == "jobs":
            return _jobs(args)
        return _plan(args)
    except ConfigError as err:
        print(f"synergy-ray: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except JobError as err:
        print(f"synergy-ray: {err}", file=sys.stderr)
        return EXIT_CLUSTER


def _submit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from synergy_ray.config import load_config  # defers yaml

    cfg = load_config(args.config, args.overrides)  # refused here, before any cluster is contacted
    root = Path(args.working_dir).resolve() if args.working_dir else jobs.project_root()
    try:
        s = jobs.Submission(
            command=args.job_command, config=jobs.config_in_working_dir(args.config, root),
            overrides=tuple(args.overrides), working_dir=root, env_vars=jobs.parse_env(args.env),
            pip_extras=tuple(e for e in args.pip_extras.split(",") if e), python=args.python)
        if s.pip_extras:
            jobs.extra_requirements(root, s.pip_extras)  # an unknown extra is bad input, not a cluster error
    except jobs.JobError as err:
        print(f"synergy-ray: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not Path(cfg.run.output_dir).is_absolute():
        print(f"synergy-ray: note: run.output_dir {cfg.run.output_dir!r} is relative, so outputs land in the "
              "job's copy of the working directory on the cluster; set run.output_dir=/shared/path to keep them",
              file=sys.stderr)
    job_id = jobs.submit(s, args.address, metadata={"run": cfg.run.name, "config": s.config,
                                                    "command": s.command})
    print(job_id, flush=True)
    print(f"synergy-ray: submitted `{jobs.entrypoint(s)}`; follow with `synergy-ray jobs logs {job_id} "
          "--follow`", file=sys.stderr)
    if not args.follow:
        return 0
    final = jobs.follow(args.address, job_id)
    print(f"synergy-ray: job {job_id} {final}", file=sys.stderr)
    return 0 if final == "SUCCEEDED" else EXIT_JOB_FAILED


def _jobs(args: argparse.Namespace) -> int:
    if args.action == "status":
        info = jobs.status(args.address, args.job_id)
        print(f"{info.status.value}{f': {info.message}' if info.message else ''}")
        return 0
    if args.action == "logs":
        if not args.follow:
            print(jobs.logs(args.address, args.job_id), end="")
            return 0
        final = jobs.follow(args.address, args.job_id)
        print(f"synergy-ray: job {args.job_id} {final}", file=sys.stderr)
        return 0 if final == "SUCCEEDED" else EXIT_JOB_FAILED
    stopped = jobs.stop(args.address, args.job_id)
    print("stop requested" if stopped else "job had already ended")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from synergy_ray.config import load_config  # defers yaml
    from synergy_ray.cluster.placement import plan_for, plan_sft  # defers yaml
    from synergy_ray.strategies import roles_in_use  # defers yaml

    cfg = load_config(args.config, args.overrides)
    try:
        nodes = parse_cluster_shape(args.cluster)
    except PlacementError as err:
        print(f"synergy-ray: --cluster: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    uses_rl, uses_sft = roles_in_use(cfg)  # the SFT job never runs beside the RL roles
    failed = []
    for name, used, make in (("RL roles", uses_rl, plan_for), ("SFT job", uses_sft, plan_sft)):
        try:
            plan = make(cfg, nodes)
        except PlacementError as err:
            (failed.append if used else lambda _: None)(f"{name}: {err}")
            print(f"== {name}: does not fit{'' if used else f' (unused by strategy {cfg.strategy.name})'}: {err}")
            continue
        print(f"== {name}{'' if used else f' (unused by strategy {cfg.strategy.name})'}")
        print(plan.describe())
    if failed:
        print(f"synergy-ray: cannot place {args.config} on {args.cluster}: " + "; ".join(failed), file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0
