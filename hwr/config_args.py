"""One source of defaults: argparse flags generated from config dataclasses, plus --config files.

A `--config FILE` (JSON, or YAML when PyYAML is installed) sets the defaults; flags given on
the command line override it; the dataclass holds the defaults for both.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(annotation):
    """`int | None` -> int; `str` -> str (annotations are strings under `from __future__`)."""
    if isinstance(annotation, str):
        annotation = eval(annotation, {"list": list, "dict": dict})  # noqa: S307 - our own annotations
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0]
    return annotation


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls, exclude: tuple[str, ...] = (), help_texts=None) -> None:
    help_texts = help_texts or {}
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        kind = _base_type(f.type)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        text = help_texts.get(f.name, "") + f" (default: {default})"
        if kind is bool:
            parser.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif kind in (dict, list) or typing.get_origin(kind) in (dict, list):
            parser.add_argument(_flag(f.name), dest=f.name, type=json.loads, default=None, help=text + " [JSON]")
        else:
            parser.add_argument(_flag(f.name), dest=f.name, type=kind, default=None, help=text)


def read_config_file(path: str) -> dict:
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise SystemExit(f"{path}: YAML configs need PyYAML; use JSON instead") from None
        data = yaml.safe_load(text) or {}
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"{path}: invalid JSON config ({exc})") from None
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: a config file must hold a mapping of setting -> value")
    return data


def build_config(cls, args: argparse.Namespace, config_file: str | None = None, **fixed):
    """Dataclass defaults <- config file <- command-line flags <- fixed values."""
    values = {}
    names = {f.name for f in dataclasses.fields(cls)}
    if config_file:
        data = read_config_file(config_file)
        unknown = sorted(set(data) - names)
        if unknown:
            raise SystemExit(f"{config_file}: unknown settings {unknown}")
        values.update(data)
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    values.update(fixed)
    return cls(**values)
