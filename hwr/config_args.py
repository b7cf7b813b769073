"""One source of defaults: argparse flags generated from config dataclasses, plus --config files.

A `--config FILE` (JSON, or YAML when PyYAML is installed) sets the defaults; flags given on
the command line override it; the dataclass holds the defaults for both. Each field declares
its help text once (`setting(default, help=...)`) and its choices once (a `Literal` type):
argparse gets `choices` from it, and config-file values are checked against the same types,
so a typo such as `"schedule": "cosin"` or `"max_steps": "10"` is an error naming the key.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hwr.errors import ConfigError, where_not_utf8


def setting(default: Any = dataclasses.MISSING, *, help: str, default_factory: Any = dataclasses.MISSING):
    """A dataclass field with its help text, the one place a CLI flag's help is written."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={"help": help})


@dataclass(frozen=True)
class FieldType:
    """What a config field accepts: a base type, optionally a fixed set of choices and None."""

    kind: type
    choices: tuple | None = None
    optional: bool = False
    item: type | None = None  # list[str] -> str: the flag takes several values

    def describe(self) -> str:
        text = " | ".join(map(repr, self.choices)) if self.choices else self.kind.__name__
        if self.item is not None:
            text += f" of {self.item.__name__}"
        return text + (" or null" if self.optional else "")


def _resolve(annotation) -> FieldType:
    optional = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        if len(args) != 1:
            raise TypeError(f"config fields take one type (or it and None), not {annotation}")
        annotation = args[0]
    origin = typing.get_origin(annotation)
    if origin is Literal:
        choices = typing.get_args(annotation)
        return FieldType(type(choices[0]), choices, optional)
    if origin is list and typing.get_args(annotation) in ((str,), (int,), (float,)):
        return FieldType(list, None, optional, typing.get_args(annotation)[0])
    if origin in (dict, list):
        return FieldType(origin, None, optional)
    return FieldType(annotation, None, optional)


@functools.cache
def field_types(cls) -> dict[str, FieldType]:
    """Each field's accepted type, resolved through the defining modules' names."""
    hints = typing.get_type_hints(cls)
    return {f.name: _resolve(hints[f.name]) for f in dataclasses.fields(cls)}


def coerce(value: Any, ftype: FieldType, key: str, source: str) -> Any:
    """`value` as the field's type (an int is a valid float), or a ConfigError naming `key`."""
    if value is None and ftype.optional:
        return None
    ok = _is_a(value, ftype.kind) and (ftype.choices is None or value in ftype.choices)
    if ok and ftype.item is not None:
        ok = all(_is_a(item, ftype.item) for item in value)
    if not ok:
        raise ConfigError(f"{source}: {key}: expected {ftype.describe()}, got {value!r}")
    if _empty_name(value, ftype):
        raise ConfigError(f"{source}: {key}: empty; give a name, or leave it out")
    if ftype.kind is float:
        try:
            return float(value)
        except OverflowError:  # an integer of hundreds of digits: no float holds it
            raise ConfigError(f"{source}: {key}: {str(value)[:20]}... is too large a number") from None
    return value


def _empty_name(value: Any, ftype: FieldType) -> bool:
    """An optional text setting given as "": every such setting names a file, a folder or a
    model, and "" had been taken as unset (a script's `--json "$REPORT"` with the variable
    unset lost its report without a word)."""
    return value == "" and ftype.kind is str and ftype.optional


def _is_a(value: Any, kind: type) -> bool:
    if isinstance(value, bool):  # bool is an int subclass: `"max_steps": true` is a mistake, not 1
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def check_fields(config) -> None:
    """Check every field of a config dataclass instance against its declared type and choices
    (for library callers, who bypass argparse: `TrainConfig(optimizer="sgd")` fails here)."""
    for name, ftype in field_types(type(config)).items():
        setattr(config, name, coerce(getattr(config, name), ftype, name, type(config).__name__))


def check_at_least(config, minimum: int, *names: str) -> None:
    """ConfigError naming the flag when a count setting is below `minimum` (a run of 0 lines or
    batches would otherwise do nothing in silence, or fail deep inside the work)."""
    for name in names:
        value = getattr(config, name)
        if value < minimum:
            raise ConfigError(f"{_flag(name)} must be at least {minimum}, got {value}")


def check_finite(config, *names: str) -> None:
    """ConfigError naming the flag when a number setting is NaN or infinite (`--x nan` parses
    as a float, and a NaN score poisons every comparison made with it)."""
    for name in names:
        value = getattr(config, name)
        if not math.isfinite(value):
            raise ConfigError(f"{_flag(name)} must be a finite number, got {value}")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls, exclude: tuple[str, ...] = ()) -> None:
    """One flag per field: its help from the field (`setting(help=...)`), its choices from a
    `Literal` type."""
    types_ = field_types(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        ftype = types_[f.name]
        # argparse formats help with %: a field's plain text is escaped.
        text = f.metadata.get("help", "").replace("%", "%%")
        text += " (required)" if _required(f) else f" (default: {_default(f)})"
        if ftype.kind is bool:
            parser.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                help=text)
        elif ftype.item is not None:
            parser.add_argument(_flag(f.name), dest=f.name, nargs="*", type=_list_item(ftype.item, _flag(f.name)),
                                default=None, help=text)
        elif ftype.kind in (dict, list):
            parser.add_argument(_flag(f.name), dest=f.name, type=parse_json, default=None, help=text + " [JSON]")
        else:
            parser.add_argument(_flag(f.name), dest=f.name, type=ftype.kind, choices=ftype.choices, default=None,
                                help=text)


def _list_item(kind, flag: str):
    """An item of a list flag, read as `kind`. Such a flag takes every word after it, so one given
    with no values just before the inputs (`--width-variants page.png`, the way to turn it off)
    took the first input as a value: argparse said only "invalid float value: 'page.png'"."""
    if kind is str:
        return kind

    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is no {kind.__name__}: {flag} takes the words after it as its values; "
                f"give it after the inputs, or end its values with --") from None

    parse.__name__ = kind.__name__
    return parse


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _default(f: dataclasses.Field):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]


def parse_json(text: str) -> Any:  # argparse names a failing type by __name__: "invalid JSON value"
    """`json.loads`, but nesting deeper than Python's recursion limit (a damaged or hostile file)
    is a ValueError like any other malformed JSON, not json's RecursionError."""
    try:
        return json.loads(text, object_pairs_hook=_no_repeated_keys)
    except RecursionError:
        raise ValueError("nested too deeply") from None


parse_json.__name__ = "JSON"


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object whose keys are each given once: json keeps the last of a repeated key, and
    a setting written twice in a config file (an edit that left the old line) went unnoticed."""
    data = {}
    for key, value in pairs:
        if key in data:
            raise ValueError(f"the key {key!r} is given twice")
        data[key] = value
    return data


@functools.cache
def _yaml_loader(yaml):
    """PyYAML's safe loader, reading `1e-4` as the float everyone means: YAML 1.1 wants a dot
    (`1.0e-4`), so PyYAML reads it as a string and `lr: 1e-4` would be refused."""
    class Loader(yaml.SafeLoader):
        def flatten_mapping(self, node):
            # PyYAML keeps the last of a key given twice, in silence (as json does): the first
            # value, the one a reader sees, would be ignored. Checked here, before a node's merged
            # keys (`<<: *defaults`, which it may override, as YAML means) join its own, and once
            # per node: an anchored node is flattened in place where it is merged, maybe before
            # its own turn comes.
            checked = self.__dict__.setdefault("_checked_nodes", set())
            if id(node) not in checked:
                checked.add(id(node))
                seen = set()
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        if key in seen:
                            raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is given twice",
                                                                    key_node.start_mark)
                        seen.add(key)
                    except TypeError:  # an unhashable key: PyYAML's own error follows
                        pass
            super().flatten_mapping(node)

    float_pattern = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", float_pattern, list("-+0123456789"))
    return Loader


def read_config_file(path: str) -> dict:
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")  # Notepad's byte order mark, as every text input takes
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: config file is not UTF-8 ({where_not_utf8(exc)}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    suffix = Path(path).suffix.lower()  # c.YAML is YAML too
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"{path}: YAML configs need PyYAML; use JSON instead") from None
        try:
            data = yaml.load(text, Loader=_yaml_loader(yaml)) or {}
        except yaml.YAMLError as exc:
            # PyYAML's message spans lines (a caret under the snippet); errors are one line.
            raise ConfigError(f"{path}: invalid YAML config ({' '.join(str(exc).split())})") from None
        except RecursionError:  # PyYAML composes nested collections by recursion
            raise ConfigError(f"{path}: invalid YAML config (nested too deeply)") from None
    elif suffix == ".toml":
        data = _read_toml(path, text)
    else:
        try:
            data = parse_json(text)
        except ValueError as exc:
            raise ConfigError(f"{path}: invalid JSON config ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping of setting -> value")
    # YAML keys may be numbers or null (`1: 2`): no setting is named so, and they would not sort among the names.
    not_names = [key for key in data if not isinstance(key, str)]
    if not_names:
        raise ConfigError(f"{path}: setting names must be text, got {', '.join(map(repr, not_names))}")
    return data


def _read_toml(path: str, text: str) -> dict:
    try:
        import tomllib  # Python 3.11+
    except ImportError:
        raise ConfigError(f"{path}: TOML configs need Python 3.11 or later; use JSON or YAML instead") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML config ({exc})") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML config (nested too deeply)") from None


def build_config(cls, args: argparse.Namespace, config_file: str | None = None, **fixed):
    """Dataclass defaults <- config file <- command-line flags <- fixed values."""
    values = {}
    types_ = field_types(cls)
    from_file: set[str] = set()
    if config_file:
        data = read_config_file(config_file)
        unknown = sorted(set(data) - set(types_))
        if unknown:
            raise ConfigError(f"{config_file}: unknown settings {unknown}")
        values.update({key: coerce(value, types_[key], key, config_file) for key, value in data.items()})
        from_file = set(data)
    for name, ftype in types_.items():
        value = getattr(args, name, None)
        if value is not None:
            if _empty_name(value, ftype):  # as coerce refuses it in a file
                raise ConfigError(f"{_flag(name)} is empty; give a name, or leave the flag out")
            values[name] = value
            from_file.discard(name)
    values.update(fixed)
    from_file -= set(fixed)
    missing = [_flag(f.name) for f in dataclasses.fields(cls) if _required(f) and f.name not in values]
    if missing:
        raise ConfigError(f"missing required settings: {', '.join(missing)} (a flag or a --config entry)")
    try:
        return cls(**values)
    except ConfigError as exc:
        raise _in_config_file(exc, from_file, config_file) from None


def _in_config_file(error: ConfigError, from_file: set[str], config_file: str | None) -> ConfigError:
    """The dataclass's own checks name the flag (`--workers must be at least 0`); when the
    value came from the config file, say so, or the user looks for a flag never given."""
    named = sorted(key for key in from_file if re.search(re.escape(_flag(key)) + r"(?![\w-])", str(error)))
    if not named:
        return error
    entries = ", ".join(repr(key) for key in named)
    return ConfigError(f"{error} (set by {entries} in {config_file})")
