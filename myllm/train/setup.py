"""`myllm train` from settings to a running loop: every input checked, then the backend built.

Everything the user gave (model flags, run directory, checkpoint, data, the memory a step needs)
is checked before the framework is imported; the loop itself is myllm/train/loop.py.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from myllm.backend.registry import backend_names, checkpoint_suffix, is_installed, load_backend
from myllm.checkpoint.state import Checkpoint, TrainingState
from myllm.config.settings import ModelConfig, ModelSettings, TrainConfig
from myllm.data.corpus import load_corpus
from myllm.errors import UserError
from myllm.run.directory import check_new_run_directory
from myllm.train.loop import TrainingRun
from myllm.train.memory import check_step_fits, memory_limit
from myllm.train.report import TrainResult
from myllm.train.resume import Resume, check_resume_matches, load_resume_tokenizer


def run_training(
    backend_name: str,
    train_config: TrainConfig,
    model_settings: ModelSettings,
    resume: Resume | None = None,
    console: Console | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Train `backend_name` as `train_config` says, from scratch or from the checkpoint `resume`.

    `resume` and the config come from myllm.train.resume.read_resume, which reads the checkpoint
    once.
    Everything the user gave is checked before the framework is imported or memory allocated:
    the model flags, the run directory, the checkpoint, the data and the memory a step needs.
    """
    console = console or Console(stderr=True, soft_wrap=True)
    if backend_name not in backend_names() or not is_installed(backend_name):
        load_backend(backend_name)  # raises the error naming the backends or the install
    ModelConfig(vocab_size=1, max_seq_len=train_config.block_size, **model_settings.given())
    continues_in_place = continues_run_in_place(resume, train_config)
    suffix = checkpoint_suffix(backend_name)
    if not continues_in_place:
        check_new_run_directory(Path(train_config.checkpoint_dir), suffix, overwrite)
    checkpoint = resume.checkpoint if resume else None
    tokenizer = load_resume_tokenizer(resume.path, checkpoint) if resume else None
    corpus = load_corpus(
        resolve_data_path(train_config, console),
        train_config.block_size,
        train_config.val_split,
        train_config.tokenizer,
        train_config.cache_dir,
        tokenizer,
        console,
    )
    model_config = run_model_config(
        checkpoint, corpus.tokenizer.vocab_size, train_config, model_settings
    )
    limit = memory_limit(train_config.device)
    check_step_fits(model_config, train_config.batch_size, train_config.block_size, limit)
    backend = load_backend(backend_name)
    trainer = backend.Trainer(model_config, train_config)
    # The resolved dtype, not "auto", goes into run.json and checkpoints: a resume keeps it.
    train_config.dtype = trainer.precision.dtype
    if checkpoint is not None:
        trainer.load_checkpoint(checkpoint)
    run = TrainingRun(
        backend_name,
        backend.checkpoint_suffix,
        trainer,
        train_config,
        corpus,
        overwrite=overwrite and not continues_in_place,
        continues_in_place=continues_in_place,
    )
    state = checkpoint.training if checkpoint else TrainingState()
    return run.run(state, console, resume.path if resume else None)


def run_model_config(
    checkpoint: Checkpoint | None, vocab_size: int, config: TrainConfig, settings: ModelSettings
) -> ModelConfig:
    """The checkpoint's model (the flags given must agree with it), else one for the text."""
    if checkpoint is not None:
        check_resume_matches(checkpoint.model_config, config, settings)
        return checkpoint.model_config
    return ModelConfig(vocab_size=vocab_size, max_seq_len=config.block_size, **settings.given())


def continues_run_in_place(resume: Resume | None, config: TrainConfig) -> bool:
    """True when a resumed run writes into the directory of the checkpoint it resumes."""
    if resume is None:
        return False
    return Path(config.checkpoint_dir).resolve() == resume.path.parent.resolve()


def resolve_data_path(config: TrainConfig, console: Console) -> Path:
    """The data file; the default data/input.txt is fetched (Tiny Shakespeare) on first use."""
    path = Path(config.data)
    if not path.exists() and config.data == TrainConfig.data:
        from myllm.data.corpora import MIRROR_ENV, ensure_default_corpus

        try:
            fetched = ensure_default_corpus(path)
        except UserError as error:  # its fix names `myllm data fetch`'s flags, not train's
            reason = str(error).split(": pass")[0]
            raise UserError(
                f"the default training text {path} is missing and could not be fetched "
                f"({reason}): pass --data PATH, or set {MIRROR_ENV} to a folder holding the "
                "corpus, or run `myllm data fetch`"
            ) from None
        if fetched:
            console.print(f"Fetched Tiny Shakespeare to {path} (the default training text).")
    return path
