"""What both training scripts share: argument parsing as in the transformers examples, logging, split truncation."""

import logging
import os
import sys
from dataclasses import dataclass, field

import datasets
import transformers
from transformers import HfArgumentParser, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from .hub import check_push_arguments, push_model_folder
from .model_card import ModelCardInfo, write_model_card


@dataclass
class ReviewTrainingArguments(TrainingArguments):
    """`TrainingArguments` with length-grouped batches by default: with the data collator's dynamic padding,
    little compute goes to padding."""

    train_sampling_strategy: str = field(
        default="group_by_length",
        metadata={"help": "Sampler for training: 'group_by_length' (default here), 'random', 'sequential', ..."},
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
    script_logger.info("Training/evaluation parameters %s", training_args)


def take_first(dataset: datasets.Dataset, max_samples: int | None) -> datasets.Dataset:
    """The first `max_samples` rows (all when None): the `--max_*_samples` debugging flags."""
    return dataset.select(range(min(max_samples, len(dataset)))) if max_samples is not None else dataset


def start_run(training_args: TrainingArguments, script_logger: logging.Logger) -> tuple[bool, str | None]:
    """The checks and settings both scripts begin with; returns (push requested, checkpoint to resume from).

    Push arguments are checked before any training. Trainer itself never pushes (it would push every checkpoint and
    overwrite README.md with its own card): `finish_run` writes the generated card and pushes the folder once."""
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise ValueError("Nothing to do: pass --do_train, --do_eval and/or --do_predict")
    check_push_arguments(training_args.push_to_hub, training_args.hub_model_id, training_args.hub_token)
    push_requested, training_args.push_to_hub = training_args.push_to_hub, False

    last_checkpoint = None
    if os.path.isdir(training_args.output_dir) and training_args.do_train and not training_args.resume_from_checkpoint:
        last_checkpoint = get_last_checkpoint(training_args.output_dir)
        if last_checkpoint is not None:
            script_logger.info("Checkpoint found at %s: training resumes from it", last_checkpoint)
    set_seed(training_args.seed)
    return push_requested, last_checkpoint


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
