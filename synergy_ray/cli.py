"""The `synergy-ray` command line.

Every command parses and validates its config first and only then imports the heavy libraries, so a bad
config is refused (exit 2, the field named) in well under a second, before Ray, torch or vLLM load.
"""

from __future__ import annotations

import argparse
import json
import sys

from synergy_ray.config import ConfigError, SynergyConfig, load_config

EXIT_BAD_CONFIG = 2
EXIT_NOT_AVAILABLE = 3
DEMO_CONFIG = "configs/demo_cpu.yaml"


def _add_config_args(p: argparse.ArgumentParser, optional: bool = False) -> None:
    if optional:
        p.add_argument("--config", default=DEMO_CONFIG, help=f"YAML config (default {DEMO_CONFIG})")
    else:
        p.add_argument("config", help="YAML config file")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. rl.kl_coef=0.005")


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
    ev.add_argument("--model", required=True, help="checkpoint directory (or hub name)")
    ev.add_argument("--name", default=None, help="report name (default: the checkpoint's directory name)")
    ev.add_argument("--k", type=int, default=None, help="samples per question (default eval.k)")
    ev.add_argument("--benchmark", action="append", type=_benchmark_arg, default=[], metavar="NAME=PATH",
                    help="evaluate on a level-tagged benchmark (mathvision, mathverse, mathvista, mmmu, mmstar) "
                         "from a local directory instead of the held-out set; repeatable")
    rep = sub.add_parser("report", help="an HTML or Markdown page of plots from one or more run directories")
    rep.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (with eval/*.json)")
    rep.add_argument("--out", default=None, help="output directory (default RUN_DIR/report of the first run)")
    rep.add_argument("--format", choices=("html", "md"), default="html", help="page format (default html)")
    return parser


def _benchmark_arg(text: str) -> dict:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return {"name": name.strip(), "path": path.strip()}


def _load(args: argparse.Namespace) -> SynergyConfig:
    overrides = list(args.overrides)
    if getattr(args, "benchmark", None):  # validated with the config: an unknown name is refused here
        overrides.append("eval.benchmarks=" + json.dumps(args.benchmark))
    return load_config(args.config, overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "report":  # reads finished runs; no config
        from synergy_ray.report import run_report

        return run_report(args.run_dirs, args.out, args.format)
    try:
        cfg = _load(args)
    except ConfigError as err:
        print(f"synergy-ray: {err}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if args.command == "check":
        from synergy_ray.config import dump_config

        print(dump_config(cfg), end="")
        return 0
    # Heavy imports start here, after the config is known to be valid.
    from synergy_ray import pipeline

    if args.command == "prepare":
        pipeline.print_summary(pipeline.prepare(cfg))
        return 0
    if args.command == "demo":
        return pipeline.run_demo(cfg)
    if args.command == "train":
        return pipeline.train(cfg)
    if args.command == "compare":
        from synergy_ray.compare import run_compare

        return run_compare(cfg)
    if args.command == "sft":
        return pipeline.sft_only(cfg)
    if args.command == "eval" and cfg.eval.benchmarks:
        return pipeline.eval_benchmarks(cfg, args.model, args.name, args.k)
    if args.command == "eval":
        return pipeline.eval_only(cfg, args.model, args.name, args.k)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
