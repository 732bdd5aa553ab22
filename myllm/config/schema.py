"""Every setting declared once: type, default, range or choices, help and flag, on its dataclass.

A setting is a dataclass field whose metadata holds a `Setting` (`setting(default, help, ...)`),
as mlx-lm declares its training arguments. That one declaration feeds the `myllm train` flags
(myllm/cli/train.py builds them from it), the --config file's keys and their type checks, the
checks of a stored config on --resume, bench's overrides and --print-config; adding a setting is
one field.

Why field metadata and not pydantic (installed, but not a dependency): the configs stay plain
dataclasses that the twins, the checkpoints and the tests already build and compare; the checks
needed are few (a type, a closed or open range, choices) and must end in *one* line that names the
flag or the config key and the range, where pydantic's errors are multi-line tables and its
coercion ("1" -> 1, 1.0 -> 1) is not the TOML/JSON rule kept here (an int is a float, a bool is
not an int); and the core's import stays light for every CLI start.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from myllm.errors import UserError

KEY = "myllm_setting"


@dataclass(frozen=True)
class Setting:
    """What a value may be, and how the command line spells it.

    `low`/`high` bound numbers (`open_low`/`open_high`: the bound itself is excluded); a float
    must also be finite. `flag` is the command-line name ("" for config-file-only settings);
    `shown` lists the values --help shows and completes where `choices` does not close the set.
    """

    help: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[str, ...] = ()
    shown: tuple[str, ...] = ()
    flag: str | None = None
    envvar: str | None = None


def setting(default: Any, help: str, **declared: Any) -> Any:
    """A dataclass field carrying its Setting (see Setting for the keywords)."""
    return dataclasses.field(default=default, metadata={KEY: Setting(help, **declared)})


def declared(cls: type) -> dict[str, tuple[Any, Setting, Any]]:
    """Field name -> (annotation, Setting, default) of every declared setting of `cls`."""
    hints = typing.get_type_hints(cls)
    return {
        f.name: (hints[f.name], f.metadata[KEY], f.default)
        for f in dataclasses.fields(cls)
        if KEY in f.metadata
    }


def flag_of(name: str, spec: Setting) -> str:
    """The flag that sets `name` ("" when only a config file sets it)."""
    return ("--" + name.replace("_", "-")) if spec.flag is None else spec.flag.split("/")[0]


def where_to_fix(name: str, spec: Setting) -> str:
    """Where a user changes the setting: its flag, or its key in a --config file."""
    flag = flag_of(name, spec)
    if flag and spec.choices:
        return f"use {flag} {' or '.join(spec.choices)}"
    return f"fix {flag}" if flag else f"fix {name} in the --config file"


def problem(annotation: Any, spec: Setting, value: Any) -> str | None:
    """Why `value` does not fit the declaration (None when it does), e.g. 'must be ...'."""
    if value is None and _allows_none(annotation):
        return None
    kind = base_type(annotation)
    if not _is_a(value, kind):
        return f"must be {_article(kind)}, got {value!r}"
    if spec.choices and value not in spec.choices:
        return f"must be one of {', '.join(spec.choices)}, got {value!r}"
    if kind is str and value == "" and not spec.choices:
        return "must not be empty"
    if kind in (int, float) and not _in_range(spec, value):
        positive = kind is int and spec.low == 1 and not spec.open_low
        article = "a positive integer" if positive else _article(kind)
        return f"must be {article} in {range_text(spec)}, got {value!r}"
    return None


def check_value(name: str, annotation: Any, spec: Setting, value: Any) -> None:
    """A UserError naming the setting, its range and where to fix it, if `value` does not fit."""
    reason = problem(annotation, spec, value)
    if reason is not None:
        raise UserError(f"{name} {reason}: {where_to_fix(name, spec)}")


def check_fields(config: Any) -> None:
    """Check every declared setting of a dataclass instance against its declaration."""
    for name, (annotation, spec, _) in declared(type(config)).items():
        check_value(name, annotation, spec, getattr(config, name))


def range_text(spec: Setting) -> str:
    """[1, 1e+09], (0, 1), [0, inf)..."""
    low = "-inf" if spec.low is None else _number(spec.low)
    high = "inf" if spec.high is None else _number(spec.high)
    opening = "(" if spec.open_low or spec.low is None else "["
    closing = ")" if spec.open_high or spec.high is None else "]"
    return f"{opening}{low}, {high}{closing}"


def _number(bound: float) -> str:
    """1e9, 2**20, 2**63 - 1: a large bound as a reader would write it."""
    if isinstance(bound, float):
        return f"{bound:g}"
    if bound >= 10**6:
        power = round(math.log2(bound + 1))
        if 2**power - bound in (0, 1):
            return f"2**{power}" + (" - 1" if 2**power != bound else "")
        return f"{bound:.0e}".replace("e+0", "e")
    return str(bound)


def _in_range(spec: Setting, value: float) -> bool:
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if spec.low is not None and (value <= spec.low if spec.open_low else value < spec.low):
        return False
    return spec.high is None or (value < spec.high if spec.open_high else value <= spec.high)


def _allows_none(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation) if _is_union(annotation) else False


def base_type(annotation: Any) -> Any:
    """int for `int | None`: the type a set value must have."""
    if _is_union(annotation):
        return next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    return annotation


def _is_union(annotation: Any) -> bool:
    return isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union


def _is_a(value: Any, kind: Any) -> bool:
    """TOML/JSON's rules: an int is a float too; a bool is neither an int nor a float."""
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _article(kind: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[kind]
