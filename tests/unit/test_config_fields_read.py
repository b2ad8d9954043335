"""No dead knobs: every config field is read somewhere in the package outside config.py.

A field counts as read when the package's code (not config.py, not tests) mentions it as an attribute
(`.name`), a keyword (`name=`) or a string key (`"name"`). That is a necessary condition, not a proof of use,
but it is the one a field that is declared and then forgotten (`learner.gradient_checkpointing` once) fails.
"""

import re
from pathlib import Path

from pydantic import BaseModel

from synergy_ray import config

PACKAGE = Path(config.__file__).parent
# Fields read by pydantic itself or by a generic walk of the section (not by name).
GENERIC = {"name"}  # strategies are chosen by their tag through `strategies.build`
# Sections handed whole, as keyword arguments, to one function: their fields must be its parameters.
AS_KWARGS = {"LoraConfig": ("synergy_ray.model.loading", "apply_lora")}


def _sections():
    seen, todo = {}, [config.SynergyConfig]
    while todo:
        cls = todo.pop()
        if cls.__name__ in seen:
            continue
        seen[cls.__name__] = cls
        for field in cls.model_fields.values():
            for t in _model_types(field.annotation):
                todo.append(t)
    return seen


def _model_types(annotation):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [t for arg in getattr(annotation, "__args__", ()) for t in _model_types(arg)]


def _source() -> str:
    return "\n".join(p.read_text() for p in PACKAGE.rglob("*.py") if p.name != "config.py")


def _parameters(module: str, function: str) -> set[str]:
    import importlib
    import inspect

    return set(inspect.signature(getattr(importlib.import_module(module), function)).parameters)


def unread_fields() -> list[str]:
    text = _source()
    missing = []
    for name, cls in _sections().items():
        for field in cls.model_fields:
            if field in GENERIC or (cls is config.SynergyConfig):
                continue
            if name in AS_KWARGS and field in _parameters(*AS_KWARGS[name]):
                continue
            pattern = rf"\.{field}\b|\b{field}\s*=|[\"']{field}[\"']"
            if not re.search(pattern, text):
                missing.append(f"{name}.{field}")
    return missing


def test_every_config_field_is_read_by_the_package():
    assert unread_fields() == []


def test_the_check_finds_a_field_nobody_reads(monkeypatch):
    from pydantic import create_model

    ghost = create_model("GhostConfig", __base__=config.Section, never_read_knob_xyz=(int, 0))
    monkeypatch.setattr(config.SynergyConfig, "model_fields",
                        {**config.SynergyConfig.model_fields, "ghost": type(config.SynergyConfig.model_fields["run"])(
                            annotation=ghost, default=ghost())})
    assert "GhostConfig.never_read_knob_xyz" in unread_fields()
