"""`--config FILE`: a run's settings in one TOML or JSON file, flags overriding it.

A config file is flat: one key per TrainConfig or ModelConfig field (vocab_size and max_seq_len
follow from the text and block_size, so they are not settable), plus `backend`. Unknown keys are
an error that names them. `myllm train --print-config` writes the resolved settings back in the
same format, so a printed config reproduces a run; so does a run directory's run.json, whose
nested train and model configs are read as if they were flat.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

from myllm.config.schema import Setting, base_type, declared, problem
from myllm.config.settings import DERIVED_MODEL_FIELDS, ModelConfig, TrainConfig
from myllm.errors import UserError

FORMATS = {".toml": "toml", ".json": "json"}
BACKEND_KEY = "backend"  # a setting of the command, not of a config dataclass


def settable_fields() -> tuple[dict[str, tuple[Any, Setting]], dict[str, tuple[Any, Setting]]]:
    """(TrainConfig, ModelConfig) field -> (annotation, Setting) that a config file may set.

    A model key may also be null ("not set": the default, e.g. d_ff's 4 * d_model)."""
    train = {name: (hint, spec) for name, (hint, spec, _) in declared(TrainConfig).items()}
    model = {
        name: (hint | None, spec)
        for name, (hint, spec, _) in declared(ModelConfig).items()
        if name not in DERIVED_MODEL_FIELDS
    }
    return train, model


@dataclasses.dataclass
class FileSettings:
    """A config file's values, split by where they go."""

    train: dict[str, Any]
    model: dict[str, Any]
    run: dict[str, Any]
    format: str


def config_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"config file {path} must end in .toml or .json, not {path.suffix!r}")
    return fmt


def load_config_file(path: Path) -> FileSettings:
    """Read and check a TOML or JSON config file; one line naming any problem."""
    fmt = config_format(path)
    if not path.is_file():
        raise UserError(f"config file {path} not found: pass an existing --config FILE")
    try:
        text = path.read_text(encoding="utf-8")
        values = parse_toml(text) if fmt == "toml" else json.loads(text)
    except UserError:
        raise
    except Exception as error:  # tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeError
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"config file {path} could not be parsed ({reason}): fix it") from None
    if not isinstance(values, dict):
        raise UserError(f"config file {path} must hold one table of settings (key = value)")
    return split_settings(run_record_settings(values), path, fmt)


def run_record_settings(values: dict[str, Any]) -> dict[str, Any]:
    """A run.json (what `myllm train` records) as flat settings: its train config, its model
    config without the sizes derived from the text, and its backend. Other files unchanged."""
    train, model = values.get("train_config"), values.get("model_config")
    if not (isinstance(train, dict) and isinstance(model, dict)):
        return values
    flat = {**{k: v for k, v in model.items() if k not in DERIVED_MODEL_FIELDS}, **train}
    if isinstance(values.get("backend"), str):
        flat["backend"] = values["backend"]
    return flat


def split_settings(values: dict[str, Any], path: Path, fmt: str) -> FileSettings:
    """Check each key against its declaration (type and range) and split them by config."""
    train_types, model_types = settable_fields()
    known = train_types | model_types
    unknown = sorted(set(values) - set(known) - {BACKEND_KEY})
    if unknown:
        raise UserError(
            f"config file {path} has unknown key(s) {', '.join(unknown)}: "
            f"known keys are {', '.join([BACKEND_KEY, *known])}"
        )
    if BACKEND_KEY in values and not isinstance(values[BACKEND_KEY], str):
        raise UserError(f"config file {path}: backend = {values[BACKEND_KEY]!r} is not a str")
    for name, (annotation, spec) in known.items():
        reason = problem(annotation, spec, values.get(name)) if name in values else None
        if reason is not None:
            raise UserError(f"config file {path}: {name} {reason}: fix it in the file")
    values = {
        name: float(value) if isinstance(value, int) and _is_float(known.get(name)) else value
        for name, value in values.items()
    }
    return FileSettings(
        train={k: v for k, v in values.items() if k in train_types},
        model={k: v for k, v in values.items() if k in model_types and v is not None},
        run={k: v for k, v in values.items() if k == BACKEND_KEY},
        format=fmt,
    )


def _is_float(entry: tuple[Any, Setting] | None) -> bool:
    return entry is not None and base_type(entry[0]) is float


BENCH_KEYS = ("d_model", "n_layers", "n_heads", "block_size", "batch_size")


def is_config_file_name(name: str) -> bool:
    """Does `name` (e.g. bench's --config, which is otherwise a preset) name a config file?"""
    return Path(name).suffix.lower() in FORMATS


def bench_values(path: Path) -> dict[str, Any]:
    """The model and batch shape a config file sets: what `myllm bench` times (the rest, such as
    the learning rate, does not change the speed)."""
    settings = load_config_file(path)
    values = settings.train | settings.model
    return {name: values[name] for name in BENCH_KEYS if name in values}


def resolved_settings(
    backend: str, train_config: TrainConfig, model_settings: dict[str, Any]
) -> dict[str, Any]:
    """Every settable value of a run, defaults filled in, in field order."""
    train_types, model_types = settable_fields()
    defaults = {
        name: default
        for name, (_, _, default) in declared(ModelConfig).items()
        if name in model_types
    }
    train = {name: getattr(train_config, name) for name in train_types}
    return {BACKEND_KEY: backend, **train, **defaults, **model_settings}


def render(settings: dict[str, Any], fmt: str) -> str:
    """The settings as a config file of format `fmt` ('toml' or 'json')."""
    if fmt == "json":
        return json.dumps(settings, indent=2) + "\n"
    return render_toml(settings)


def render_toml(settings: dict[str, Any]) -> str:
    """A flat TOML document. Written by hand: the standard library reads TOML but cannot write
    it, and a dependency for a dozen `key = value` lines would not earn its place. TOML has no
    null, so unset values (None) become comments."""
    lines = []
    for name, value in settings.items():
        if value is None:
            lines.append(f"# {name} = (not set)")
        else:
            lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    raise UserError(f"cannot write {value!r} to a TOML config: use a .json --config")


def parse_toml(text: str) -> dict[str, Any]:
    """TOML text to a dict: tomllib (Python 3.11+) or its tomli backport."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10: the tomli backport (a dependency only there)
        import tomli as tomllib
    return tomllib.loads(text)
