"""The `synergy-ray` command line.

Every command parses and validates its config first and only then imports the heavy libraries, so a bad
config is refused (exit 2, the field named) in well under a second, before Ray, torch or vLLM load.
"""

from __future__ import annotations

import argparse
import json
import sys

from synergy_ray.cluster import commands
from synergy_ray.config import ConfigError, SynergyConfig, dump_config, load_config
from synergy_ray.console import set_verbosity
from synergy_ray.evaluation.report import run_report
from synergy_ray.processes.leftovers import none_left, was_terminated
from synergy_ray.run import pipeline, preflight
from synergy_ray.run.compare import run_compare

EXIT_BAD_CONFIG = 2
EXIT_INTERRUPTED = 130  # as a shell reports a process stopped by Ctrl-C
EXIT_TERMINATED = 143  # ... and one stopped by SIGTERM
RUNS_HERE = ("prepare", "train", "demo", "sft", "compare", "eval")  # read the config's paths on this machine
RUNS_ROLES = ("check", "train", "demo", "sft", "compare")  # start Ray roles: must fit the cluster
DEMO_CONFIG = "configs/demo_cpu.yaml"


def _add_config_args(p: argparse.ArgumentParser, optional: bool = False) -> None:
    if optional:
        p.add_argument("--config", default=DEMO_CONFIG, help=f"YAML config (default {DEMO_CONFIG})")
    else:
        p.add_argument("config", help="YAML config file")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. rl.kl_coef=0.005")
    _add_verbose(p)


def _add_verbose(p: argparse.ArgumentParser) -> None:
    talk = p.add_mutually_exclusive_group()
    talk.add_argument("-v", "--verbose", action="store_true",
                      help="our debug lines, and the libraries' own output (vLLM, transformers, Ray Train, progress "
                           "bars); see console.py")
    talk.add_argument("-q", "--quiet", action="store_true",
                      help="only warnings, errors and the command's result (no stage or step lines)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synergy-ray", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_config_args(sub.add_parser("check", help="validate a config and print it resolved"))
    _add_config_args(sub.add_parser("prepare", help="build the tiny model (if configured) and the data set"))
    _add_config_args(sub.add_parser("train", help="run the config's strategy"))
    _add_config_args(sub.add_parser("demo", help="the embedded CPU demo, end to end"), optional=True)
    _add_config_args(sub.add_parser("sft", help="SFT from model.path as a Ray Train job (the sft section)"))
    _add_config_args(sub.add_parser("compare", help="base, SFT, RL and every combination, one table by level"))
    ev = sub.add_parser("eval", help="offline evaluation by level of a checkpoint on the run's held-out set")
    _add_config_args(ev)
    ev.add_argument("--model", default=None,
                    help="checkpoint directory (or hub name); with --endpoint, the served model's name")
    ev.add_argument("--name", default=None, help="report name (default: the checkpoint's directory name)")
    ev.add_argument("--k", type=int, default=None, help="samples per question (default eval.k)")
    ev.add_argument("--benchmark", action="append", type=_benchmark_arg, default=[], metavar="NAME=PATH",
                    help="evaluate on a level-tagged benchmark (mathvision, mathverse, mathvista, mmmu, mmstar) "
                         "from a local directory instead of the held-out set; repeatable")
    ev.add_argument("--endpoint", default=None,
                    help="evaluate through a served OpenAI-compatible API at this base URL (http://HOST:PORT/v1)")
    ev.add_argument("--concurrency", type=int, default=None,
                    help="requests in flight with --endpoint (default eval.concurrency)")
    rep = sub.add_parser("report", help="an HTML or Markdown page of plots from one or more run directories")
    rep.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (with eval/*.json)")
    rep.add_argument("--out", default=None, help="output directory (default RUN_DIR/report of the first run)")
    rep.add_argument("--format", choices=("html", "md"), default="html", help="page format (default html)")
    sv = sub.add_parser("serve", help="serve checkpoints behind an OpenAI-compatible API (Ray Serve + vLLM)")
    sv.add_argument("paths", nargs="+", metavar="DIR", help="checkpoint directories or run directories")
    sv.add_argument("--config", default=None,
                    help="YAML config (default: the run directory's config.resolved.yaml, else built-in defaults)")
    sv.add_argument("--port", type=_port, default=None, help="HTTP port, 1-65535 (default serve.port)")
    sv.add_argument("--name", action="append", default=None, dest="names",
                    help="model name for each DIR in order (prefix for a run directory's models)")
    sv.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                    help="dotted config override, e.g. --set serve.num_replicas=2")
    _add_verbose(sv)

    commands.add_parsers(sub)  # submit, jobs, plan
    return parser


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {text!r}")
    return int(text)


def _benchmark_arg(text: str) -> dict:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return {"name": name.strip(), "path": path.strip()}


def _serve_config_path(paths: list[str]) -> str | None:
    """The config a run directory was made with, so `serve runs/demo` uses that run's engine settings."""
    from pathlib import Path

    for path in paths:
        for candidate in (Path(path) / "config.resolved.yaml", Path(path).parent / "config.resolved.yaml"):
            if candidate.is_file():
                return str(candidate)
    return None


def _load(args: argparse.Namespace) -> SynergyConfig:
    overrides = list(args.overrides)
    if getattr(args, "benchmark", None):  # validated with the config: an unknown name is refused here
        overrides.append("eval.benchmarks=" + json.dumps(args.benchmark))
    return load_config(args.config, overrides)


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Like `parse_args`, but dotted overrides may also follow the options (`submit CFG --command sft k=v`):
    argparse stops filling a positional list at the first option."""
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in x and not x.startswith("-") for x in extra):
        args.overrides = list(args.overrides) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    if args.command == "report":  # reads finished runs; no config
        return run_report(args.run_dirs, args.out, args.format)
    if args.command == "eval" and args.model is None and args.endpoint is None:
        parser.error("eval: --model DIR is required (or --endpoint URL to evaluate a served model)")
    if args.command == "serve" and args.config is None:
        args.config = _serve_config_path(args.paths)

    if args.command in commands.COMMANDS:
        return commands.run(args)
    try:
        cfg = _load(args)
    except ConfigError as err:
        print(f"synergy-ray: {err}", file=sys.stderr)
        return EXIT_BAD_CONFIG

    try:
        if args.command in RUNS_HERE:
            preflight.check_paths(cfg)
        if args.command in RUNS_ROLES:
            preflight.check_resources(cfg)
        if args.command == "check":
            print(dump_config(cfg), end="")
            return 0
        set_verbosity(verbosity(args))  # before any library that prints is imported (they load below, lazily)

        with none_left():  # however the command ends: its local Ray stopped, its engines' /dev/shm removed
            return _run(args, cfg)
    except ConfigError as err:  # also found once the run directory is read (built from other inputs)
        print(f"synergy-ray: {err}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (`leftovers.stop_on_sigterm`)
        what = "terminated" if was_terminated() else "interrupted"
        resumes = "" if args.command == "serve" else "; the same command resumes from the last checkpoint"
        print(f"\nsynergy-ray: {what}{resumes}", file=sys.stderr)
        return EXIT_TERMINATED if was_terminated() else EXIT_INTERRUPTED


def verbosity(args: argparse.Namespace) -> str:
    return "verbose" if getattr(args, "verbose", False) else "quiet" if getattr(args, "quiet", False) else "normal"


def _run(args: argparse.Namespace, cfg: SynergyConfig) -> int:
    if args.command == "prepare":
        pipeline.print_summary(pipeline.prepare(cfg))
        return 0
    if args.command == "demo":
        return pipeline.run_demo(cfg)
    if args.command == "train":
        return pipeline.train(cfg)
    if args.command == "compare":
        return run_compare(cfg)
    if args.command == "sft":
        return pipeline.sft_only(cfg)
    if args.command == "eval" and args.endpoint is not None:
        return pipeline.eval_endpoint(cfg, args.endpoint, args.model, args.name, args.k, args.concurrency)
    if args.command == "eval" and cfg.eval.benchmarks:
        return pipeline.eval_benchmarks(cfg, args.model, args.name, args.k)
    if args.command == "eval":
        return pipeline.eval_only(cfg, args.model, args.name, args.k)
    if args.command == "serve":
        from synergy_ray.serving.app import run_serve  # defers ray

        try:
            return run_serve(cfg, args.paths, args.names, args.port)
        except ValueError as err:
            print(f"synergy-ray: {err}", file=sys.stderr)
            return EXIT_BAD_CONFIG
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
