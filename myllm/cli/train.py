"""Train the GPT: `myllm train`, its flags derived from the declared settings.

Each TrainConfig and ModelConfig setting with a flag (myllm/config/settings.py) becomes one
option here, with its help and default; the command's own options (the backend, --config,
--preset, --resume...) are the only ones written out. A new setting is one field there.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from myllm.cli.app import BACKENDS, UNDERSCORE_SPELLINGS, _choices, app
from myllm.config.schema import Setting, base_type, check_value, declared, flag_of
from myllm.config.settings import DERIVED_MODEL_FIELDS, ModelConfig, ModelSettings, TrainConfig

if TYPE_CHECKING:
    from myllm.train.resume import Resume

PRESET_HELP = (
    "model shape, block and batch size: reference, medium, large, gpt2-small "
    "(flags override it; sizes in README)"
)
COMMAND_OPTIONS = {  # name -> (annotation, default): the options that are not settings
    "backend": (Annotated[str | None, typer.Option(help="(default: torch)", **BACKENDS)], None),
    "config": (
        Annotated[
            Path | None,
            typer.Option(help="a .toml or .json file of settings; flags given override it"),
        ],
        None,
    ),
    "print_config": (
        Annotated[
            bool,
            typer.Option(
                "--print-config", help="print the resolved settings as a config file, exit"
            ),
        ],
        False,
    ),
    "preset": (Annotated[str | None, typer.Option(help=PRESET_HELP)], None),
    "resume": (
        Annotated[
            Path | None,
            typer.Option(help="continue exactly from a checkpoint (.pt or .safetensors)"),
        ],
        None,
    ),
    "overwrite": (
        Annotated[
            bool,
            typer.Option(help="replace the run already in --checkpoint-dir (else it is refused)"),
        ],
        False,
    ),
}


def flag_settings() -> dict[str, dict[str, tuple[Any, Setting, Any]]]:
    """'train' and 'model' -> the settings of each config that have a flag, by field name."""
    model = declared(ModelConfig)
    return {
        "train": {n: d for n, d in declared(TrainConfig).items() if flag_of(n, d[1])},
        "model": {
            n: d for n, d in model.items() if flag_of(n, d[1]) and n not in DERIVED_MODEL_FIELDS
        },
    }


def setting_option(name: str, annotation: Any, spec: Setting, default: Any) -> Any:
    """The typer option of one setting: its flag, help with the default, choices shown."""
    extra = _choices(*(spec.choices or spec.shown)) if spec.choices or spec.shown else {}
    option = typer.Option(
        spec.flag or flag_of(name, spec),
        help=spec.help + default_text(spec, default),
        envvar=spec.envvar,
        show_default=False,
        **extra,
    )
    return Annotated[base_type(annotation) | None, option]


def default_text(spec: Setting, default: Any) -> str:
    """' (default: 64)'; nothing for a "not set" default that the help already explains."""
    if default is None or "(default" in spec.help:
        return ""
    shown = ("on" if default else "off") if isinstance(default, bool) else default
    return f" (default: {shown})"


def train_parameters() -> list[inspect.Parameter]:
    """The command's signature: the backend, every setting's option, then the command's own."""
    options = {"backend": COMMAND_OPTIONS["backend"]}
    for settings in flag_settings().values():
        for name, (annotation, spec, default) in settings.items():
            options[name] = (setting_option(name, annotation, spec, default), None)
    options |= {name: option for name, option in COMMAND_OPTIONS.items() if name != "backend"}
    return [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=hint, default=default)
        for name, (hint, default) in options.items()
    ]


def underscore_spellings() -> tuple[str, ...]:
    """The reference's spellings of the settings' flags (--batch_size), accepted but hidden."""
    flags = [flag_of(n, d[1]) for group in flag_settings().values() for n, d in group.items()]
    return tuple(flag.replace("-", "_").replace("__", "--", 1) for flag in flags if "-" in flag[2:])


def train(**options: Any) -> None:
    """Train the GPT on a text file, with checkpoints, validation, metrics.jsonl and samples."""
    from myllm.config.files import render, resolved_settings
    from myllm.train.setup import run_training

    request = resolve_request(options)
    if options["print_config"]:
        settings = resolved_settings(request.backend, request.train_config, request.model_given)
        sys.stdout.write(render(settings, request.file_format))
        return
    result = run_training(
        request.backend,
        request.train_config,
        request.model_settings,
        request.resume_point,
        overwrite=options["overwrite"],
    )
    raise typer.Exit(result.exit_code)


@dataclass
class TrainRequest:
    """A `myllm train` call resolved: what to train, from where, and how to print it."""

    backend: str
    train_config: TrainConfig
    model_given: dict[str, Any]  # the model settings of the run (a resumed run: its own)
    resume_point: Resume | None
    file_format: str

    @property
    def model_settings(self) -> Any:
        """A resumed run's model is its checkpoint's: nothing is given anew to compare."""
        return ModelSettings() if self.resume_point else ModelSettings(**self.model_given)


def resolve_request(options: dict[str, Any]) -> TrainRequest:
    """Flags over the config file over the preset; a resumed checkpoint's config beneath all."""
    from myllm.backend.registry import check_backend_name
    from myllm.config.files import load_config_file
    from myllm.train.resume import check_model_given, check_steps_left, read_resume

    groups = flag_settings()
    given = {n: options[n] for n in groups["train"] if options[n] is not None}
    model_given = {n: options[n] for n in groups["model"] if options[n] is not None}
    backend, file_format = options["backend"], "toml"
    if options["config"] is not None:
        from_file = load_config_file(options["config"])
        given, model_given = {**from_file.train, **given}, {**from_file.model, **model_given}
        backend = from_file.run.get("backend") if backend is None else backend
        file_format = from_file.format
    if options["preset"] is not None:
        from myllm.config.presets import get_preset

        chosen = get_preset(options["preset"])
        model_given = {**chosen.model_settings(), **model_given}
        given = {"block_size": chosen.block_size, "batch_size": chosen.batch_size, **given}
    backend = check_backend_name("torch" if backend is None else backend)
    model_settings = declared(ModelConfig)
    for name, value in model_given.items():  # each on its own; together when the model is built
        check_value(name, *model_settings[name][:2], value)
    if options["resume"] is None:
        train_config = TrainConfig(**given)
        return TrainRequest(backend, train_config, model_given, None, file_format)
    resume_point, train_config = read_resume(options["resume"], given)
    stored_model = resume_point.checkpoint.model_config
    check_model_given(stored_model, model_given)
    if not options["print_config"]:  # printing a finished run's settings is no training
        check_steps_left(train_config, resume_point.checkpoint.training.step, options["resume"])
    own = {name: getattr(stored_model, name) for name in ModelSettings().__dict__}
    return TrainRequest(backend, train_config, own, resume_point, file_format)


train.__signature__ = inspect.Signature(train_parameters())  # type: ignore[attr-defined]
app.command()(train)
UNDERSCORE_SPELLINGS.update(underscore_spellings())
