"""What both training scripts share: argument parsing as in the transformers examples, logging, split truncation."""

import logging
import os
import sys
from dataclasses import dataclass, field

import datasets
import transformers
from transformers import HfArgumentParser, TrainingArguments


@dataclass
class ReviewTrainingArguments(TrainingArguments):
    """`TrainingArguments` with length-grouped batches by default: with the data collator's dynamic padding,
    little compute goes to padding."""

    train_sampling_strategy: str = field(
        default="group_by_length",
        metadata={"help": "Sampler for training: 'group_by_length' (default here), 'random', 'sequential', ..."},
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
