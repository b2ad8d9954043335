"""The `synergy-ray` command line.

Every command parses and validates its config first and only then imports the heavy libraries, so a bad
config is refused (exit 2, the field named) in well under a second, before Ray, torch or vLLM load.
"""

from __future__ import annotations

import argparse
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
    from synergy_ray import cluster_cli

    cluster_cli.add_parsers(sub)  # submit, jobs, plan
    return parser


def _load(args: argparse.Namespace) -> SynergyConfig:
    return load_config(args.config, args.overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from synergy_ray import cluster_cli

    if args.command in cluster_cli.COMMANDS:
        return cluster_cli.run(args)
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
    if args.command == "eval":
        return pipeline.eval_only(cfg, args.model, args.name, args.k)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
