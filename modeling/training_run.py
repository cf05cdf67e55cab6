"""One training run of either script, from flags to a saved (and pushed) folder: argument parsing as in the transformers
examples, logging, split truncation, resuming from checkpoints, and the card, ONNX export and push at the end."""

import dataclasses
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import transformers
from transformers import HfArgumentParser, TrainingArguments, set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from .hub import check_push_arguments, push_model_folder
from .model_card import ModelCardInfo, write_model_card


@dataclass
class ReviewTrainingArguments(TrainingArguments):
    """`TrainingArguments` with length-grouped batches by default (with the data collator's dynamic padding, little
    compute goes to padding), `--overwrite_output_dir`, which transformers 5 dropped, and `--export_onnx`."""

    train_sampling_strategy: str = field(
        default="group_by_length",
        metadata={"help": "Sampler for training: 'group_by_length' (default here), 'random', 'sequential', ..."},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start over: delete the checkpoints in output_dir instead of resuming from the last one."},
    )
    export_onnx: bool = field(
        default=False,
        metadata={"help": "After training, export the saved model to onnx/model.onnx and onnx/model_int8.onnx for "
                  "ONNX Runtime serving (python -m modeling.export_onnx); --push_to_hub then uploads them too."},
    )


def parse_script_arguments(dataclass_types: tuple, argv: list[str] | None = None) -> tuple:
    """Command-line flags, or a single `.json` file holding the whole configuration."""
    parser = HfArgumentParser(dataclass_types)
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


def setup_logging(training_args: TrainingArguments, script_logger: logging.Logger) -> None:
    """As in the transformers examples: INFO on the main process, WARNING on the other ranks."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()
    log_level = training_args.get_process_log_level()
    for logger in (script_logger, logging.getLogger("data_prep"), logging.getLogger("modeling")):
        logger.setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    script_logger.warning(
        "Process rank %s, device %s, n_gpu %s, distributed %s, mixed precision %s",
        training_args.process_index, training_args.device, training_args.n_gpu,
        training_args.parallel_mode.value == "distributed",
        "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "no",
    )
    script_logger.info("Training/evaluation parameters that differ from the defaults: %s",
                       non_default_arguments(training_args))


def non_default_arguments(arguments) -> dict:
    """The fields of a dataclass that differ from their defaults: a short log line instead of ~150 lines."""
    changed = {}
    for spec in dataclasses.fields(arguments):
        if not spec.init:
            continue
        default = spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default
        value = getattr(arguments, spec.name)
        if value != default and not (hasattr(value, "value") and value.value == default):
            changed[spec.name] = value
    return changed


def take_first(dataset: datasets.Dataset, max_samples: int | None) -> datasets.Dataset:
    """The first `max_samples` rows (all when None): the `--max_*_samples` debugging flags."""
    return dataset.select(range(min(max_samples, len(dataset)))) if max_samples is not None else dataset


def start_run(training_args: TrainingArguments, script_logger: logging.Logger) -> tuple[bool, str | None]:
    """The checks and settings both scripts begin with; returns (push requested, checkpoint to resume from).

    Push arguments are checked before any training. Trainer itself never pushes (it would push every checkpoint and
    overwrite README.md with its own card): `finish_run` writes the generated card and pushes the folder once.
    As in the transformers examples, a training run into an output_dir with checkpoints resumes from the last one
    (`check_checkpoint` then makes sure it is the same run), unless --overwrite_output_dir starts over."""
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise ValueError("Nothing to do: pass --do_train, --do_eval and/or --do_predict")
    if training_args.push_to_hub and not training_args.do_train:
        raise ValueError("--push_to_hub pushes the model this run trains, and without --do_train nothing is trained: "
                         "add --do_train, or upload an existing folder with `hf upload` (huggingface_hub)")
    check_push_arguments(training_args.push_to_hub, training_args.hub_model_id, training_args.hub_token)
    push_requested, training_args.push_to_hub = training_args.push_to_hub, False
    if push_requested:
        script_logger.info("--push_to_hub: the folder is pushed once, with its model card, after the run "
                           "(Trainer's own push is off: it would push every checkpoint and replace the card)")

    checkpoint = training_args.resume_from_checkpoint
    if checkpoint is None and training_args.do_train and training_args.overwrite_output_dir:
        # Every process enters, whatever is on disk: a process that looked for checkpoints after the main one had
        # deleted them would skip this barrier and hang the others at the next one. One process deletes (two race).
        with training_args.main_process_first(desc="deleting old checkpoints",
                                              local=training_args.save_on_each_node):
            if training_args.should_save and os.path.isdir(training_args.output_dir):
                old_checkpoints = sorted(Path(training_args.output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*"))
                for old in old_checkpoints:
                    shutil.rmtree(old)
                if old_checkpoints:
                    script_logger.info("--overwrite_output_dir: deleted the checkpoints in %s (%d); training starts over",
                                       training_args.output_dir, len(old_checkpoints))
    elif checkpoint is None and training_args.do_train and os.path.isdir(training_args.output_dir):
        checkpoint = get_last_checkpoint(training_args.output_dir)
        if checkpoint is not None:
            script_logger.info("Checkpoint found at %s: training resumes from it (--overwrite_output_dir starts over)",
                               checkpoint)
    set_seed(training_args.seed)
    return push_requested, checkpoint


# Config keys that say where a model came from, how it is stored or run (Trainer turns use_cache off), or how its
# outputs are decided after training (logit offsets, stacking heads), not how it trains.
NOT_MODEL_SETTINGS = {"transformers_version", "_name_or_path", "architectures", "auto_map", "custom_pipelines", "dtype",
                      "torch_dtype", "use_cache", "rating_logit_offsets", "stacking_heads"}


def config_differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """`key: saved -> current` for every setting that differs between two config dicts (nested configs included)."""
    differences = []
    for key in sorted((set(saved) | set(current)) - NOT_MODEL_SETTINGS):
        old, new = saved.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict) and key not in ("id2label", "label2id"):
            differences += config_differences(old, new, f"{prefix}{key}.")
        elif old != new:
            differences.append(f"{prefix}{key}: {old!r} there, {new!r} now")
    return differences


def check_checkpoint(checkpoint: str | None, training_args: TrainingArguments, model_config) -> None:
    """Refuse to resume from a checkpoint that is not this run: one that already trained as far as this run would
    (the run would train 0 steps and save the old weights under the new flags), or one trained with other model or
    loss settings."""
    if checkpoint is None or not training_args.do_train:
        return
    checkpoint = Path(checkpoint)
    problems = []
    state_file = checkpoint / "trainer_state.json"
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        if training_args.max_steps > 0 and state["global_step"] >= training_args.max_steps:
            problems.append(f"it already reached step {state['global_step']} and --max_steps is "
                            f"{training_args.max_steps}")
        elif training_args.max_steps <= 0 and (state.get("epoch") or 0) >= training_args.num_train_epochs:
            problems.append(f"it already trained {state.get('epoch')} epochs and --num_train_epochs is "
                            f"{training_args.num_train_epochs:g}")
    config_file = checkpoint / "config.json"
    if config_file.is_file():
        differences = config_differences(json.loads(config_file.read_text()),
                                         json.loads(model_config.to_json_string()))
        if differences:
            problems.append("it was trained with other model or loss settings (" + "; ".join(differences) + ")")
    if problems:
        raise ValueError(
            f"Not resuming from {checkpoint}: {' and '.join(problems)}. Either pass --overwrite_output_dir to "
            f"start over in {training_args.output_dir}, or give another --output_dir"
        )


def finish_run(training_args: TrainingArguments, card: ModelCardInfo, push_requested: bool, commit_message: str,
               script_logger: logging.Logger) -> None:
    """Export to ONNX when --export_onnx was given, write the model card into the saved folder, then push the folder
    (onnx/ included) when --push_to_hub was given."""
    if training_args.export_onnx:
        from .export_onnx import export_onnx

        for path in export_onnx(training_args.output_dir).values():
            script_logger.info("Exported %s", path)
    write_model_card(training_args.output_dir, card)
    if push_requested:
        commit = push_model_folder(
            training_args.output_dir, training_args.hub_model_id, revision=training_args.hub_revision,
            token=training_args.hub_token, private=training_args.hub_private_repo, commit_message=commit_message,
        )
        script_logger.info("Pushed %s (commit %s)", commit.commit_url, commit.oid)


def end_run(training_args: TrainingArguments) -> None:
    """Wait until every rank is done, then close the process group. A rank that exits while another is still writing
    the card or the ONNX files can abort in gloo's teardown ("terminate called without an active exception")."""
    state = training_args.distributed_state
    if state is not None and state.use_distributed:
        state.wait_for_everyone()
        state.destroy_process_group()
