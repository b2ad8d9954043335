"""Command-line parsing: overrides before or after the options, unknown arguments refused."""

import pytest

from synergy_ray.cli import build_parser, parse


def test_overrides_may_follow_the_options():
    args = parse(build_parser(), ["submit", "configs/smoke_cpu.yaml", "rl.steps=3", "--command", "sft",
                                  "run.output_dir=/tmp/x", "--address", "http://127.0.0.1:8265"])
    assert args.job_command == "sft" and args.address == "http://127.0.0.1:8265"
    assert args.overrides == ["rl.steps=3", "run.output_dir=/tmp/x"]


def test_an_unknown_argument_is_still_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        parse(build_parser(), ["check", "configs/smoke_cpu.yaml", "--bogus"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a k=v where the command takes no overrides
        parse(build_parser(), ["jobs", "status", "raysubmit_1", "rl.steps=3"])
