#!/usr/bin/env python
"""Train a topic classifier for Amazon reviews (books, games, movies, music, refund-and-return, video-quality, and
`other` unless the labels were made with --no_other_class) on the labels made by `python -m data_prep.topics`, in one
of two ways:

    python train_topic.py --dataset_dir topics --method finetune --output_dir topic_finetune --do_train --do_eval
    python train_topic.py --dataset_dir topics --method features --output_dir topic_features --do_train --do_eval
    python train_topic.py --train_file reviews.csv --dataset_dir topics ...   # runs the topics step first

`finetune` trains the whole encoder with a classification head (`AutoModelForSequenceClassification`). `features`
computes frozen encoder features once (cached by `datasets`) and trains only a small MLP on them; the saved folder
still holds encoder + head and loads like the fine-tuned one. A single `.json` argument is read as the whole
configuration, like the transformers examples.
"""

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from datasets import DatasetDict, load_from_disk
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    default_data_collator,
)
from transformers.modelcard import extract_hyperparameters_from_trainer

from data_prep.amazon import TEXT_COLUMN
from data_prep.topic_hub import (
    PROJECT_VALIDITY_FIGURES, check_dataset_push, pull_topic_dataset, push_topic_dataset, read_validity_figures,
)
from data_prep.topic_model import OTHER_LABEL
from data_prep.topic_report import format_topic_table
from data_prep.topics import (
    LABEL_COLUMN,
    TOPIC_MODEL_FOLDER,
    TOPICS_REPORT,
    TopicLabelArguments,
    build_topic_dataset,
    save_topic_dataset,
)
from modeling import TopicFeaturesConfig, TopicFeaturesModel
from modeling.encoders import repeated_layer_classes
from modeling.evaluation_files import write_confusion_matrix
from modeling.feature_cache import FEATURES_COLUMN, add_encoder_features
from modeling.training_run import (
    ReviewTrainingArguments, check_checkpoint, end_run, finish_run, parse_script_arguments, setup_logging, start_run, take_first,
)
from modeling.metrics import build_classification_metrics
from modeling.model_card import read_all_results, topic_card_info
from modeling.pipeline_multitask import model_max_length
from modeling.trainer import ReviewTrainer

logger = logging.getLogger(__name__)

METHODS = ("finetune", "features")


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="distilbert-base-uncased",
        metadata={"help": "Encoder to start from (Hub id or folder), or a saved topic classifier to train further."},
    )
    method: str = field(
        default="finetune",
        metadata={"help": "'finetune' the whole encoder, or train an MLP on frozen encoder 'features'.",
                  "choices": list(METHODS)},
    )
    pooling: str | None = field(
        default=None, metadata={"help": "features: review vector = 'mean' of the tokens (new model's default) or 'cls'.",
                                "choices": ["mean", "cls"]}
    )
    head_hidden_sizes: list[int] | None = field(
        default=None, metadata={"help": "features: hidden layer sizes of the MLP (new model's default 256; e.g. 512 "
                                "128)."}
    )
    head_dropout: float | None = field(
        default=None, metadata={"help": "features: dropout after each MLP hidden layer (0.1)."}
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={"help": "Encoder attention: 'sdpa', 'eager' or 'flash_attention_2' (where the encoder and "
                  "hardware support it); default: transformers' choice."},
    )
    feature_batch_size: int = field(
        default=64, metadata={"help": "features: reviews per encoder pass while computing the features."}
    )


@dataclass
class DataTrainingArguments:
    dataset_dir: str | None = field(
        default=None,
        metadata={"help": "Folder written by `python -m data_prep.topics` (read), or where --train_file's topic "
                  "step writes its dataset."},
    )
    train_file: list[str] | None = field(
        default=None, metadata={"help": "Amazon review CSV(s): run the topics step on them first (see its options)."}
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "A labelled topic dataset on the Hub (pushed by `python -m data_prep.topics "
                                "--push_to_hub`), instead of --dataset_dir."}
    )
    dataset_revision: str | None = field(default=None, metadata={"help": "Branch, tag or commit of --dataset_name."})
    hub_dataset_id: str | None = field(
        default=None, metadata={"help": "With --train_file: push the labelled dataset there (with its dataset card)."}
    )
    topic_seed: int = field(default=42, metadata={"help": "With --train_file: seed of the split and of NMF."})
    max_seq_length: int = field(default=256, metadata={"help": "Tokens per review after truncation."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the train split."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the validation split."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Truncate the test split."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for datasets.map."})


def load_topic_splits(data_args: DataTrainingArguments, topic_args: TopicLabelArguments,
                      training_args: ReviewTrainingArguments) -> DatasetDict:
    """The labelled splits: pulled from the Hub (--dataset_name), or from --dataset_dir, made there first from
    --train_file when given (by the process that saves, the main one, while the others wait; then loaded by all).
    With --dataset_name, `data_args.dataset_dir` becomes the local folder of its topic model and report."""
    if data_args.dataset_name:
        if data_args.train_file or data_args.dataset_dir:
            raise ValueError("Give --dataset_name (a labelled topic dataset on the Hub), or --dataset_dir (with "
                             "--train_file: reviews to label there), not both")
        with training_args.main_process_first(desc="downloading the topic dataset"):
            splits, folder, sha = pull_topic_dataset(data_args.dataset_name, data_args.dataset_revision)
        data_args.dataset_dir = str(folder)
        logger.info("Topic dataset %s at %s: %s; topic model and report in %s", data_args.dataset_name, sha,
                    {name: len(split) for name, split in splits.items()}, folder)
    elif not data_args.dataset_dir:
        raise ValueError("Give --dataset_dir: the output of `python -m data_prep.topics`, or with --train_file the "
                         "folder its topic step writes to; or --dataset_name, a topic dataset on the Hub")
    elif data_args.train_file:
        with training_args.main_process_first(desc="labelling the reviews", local=training_args.save_on_each_node):
            if training_args.should_save:
                result = build_topic_dataset(data_args.train_file, topic_args, seed=data_args.topic_seed,
                                             num_proc=data_args.preprocessing_num_workers)
                save_topic_dataset(result, data_args.dataset_dir)
                logger.info("Topics:\n%s", format_topic_table(result.report))
                if data_args.hub_dataset_id and training_args.process_index == 0:  # one push, whatever the nodes
                    push_topic_dataset(data_args.dataset_dir, result.splits, result.report, data_args.hub_dataset_id,
                                       validity=read_validity_figures(PROJECT_VALIDITY_FIGURES,
                                                                      asdict(TopicLabelArguments())),
                                       token=training_args.hub_token, private=training_args.hub_private_repo)
            else:
                logger.info("Process %d loads the topic dataset the main process labelled into %s",
                            training_args.process_index, data_args.dataset_dir)
        splits = load_from_disk(data_args.dataset_dir)
    elif not Path(data_args.dataset_dir, "dataset_dict.json").is_file():
        raise FileNotFoundError(
            f"{data_args.dataset_dir} is not a topic dataset (no dataset_dict.json): run "
            f"`python -m data_prep.topics --output_dir {data_args.dataset_dir} ...` or pass --train_file"
        )
    else:
        splits = load_from_disk(data_args.dataset_dir)
    missing = {"train", "validation", "test"} - set(splits)
    if missing:
        raise ValueError(f"{data_args.dataset_name or data_args.dataset_dir} lacks the split(s) {sorted(missing)}")
    if LABEL_COLUMN not in splits["train"].features or TEXT_COLUMN not in splits["train"].features:
        raise ValueError(f"{data_args.dataset_name or data_args.dataset_dir} is not a labelled topic dataset: it has "
                         f"{list(splits['train'].features)}, not {TEXT_COLUMN!r} and {LABEL_COLUMN!r}")
    return splits


def label_mappings(label_names: list[str]) -> dict:
    return {"id2label": dict(enumerate(label_names)), "label2id": {name: i for i, name in enumerate(label_names)}}


def build_finetune_model(model_args: ModelArguments, label_names: list[str]):
    """A pretrained encoder with a new classification head, or a saved classifier to train further; its
    `_no_split_modules` name the encoder's layer class (DistilBERT declares none) for FSDP's auto wrap."""
    model = AutoModelForSequenceClassification.from_pretrained(
        model_args.model_name_or_path, num_labels=len(label_names), attn_implementation=model_args.attn_implementation,
        **label_mappings(label_names),
    )
    model._no_split_modules = set(model._no_split_modules or ()) | repeated_layer_classes(model)
    return model


def build_features_model(model_args: ModelArguments, label_names: list[str]) -> tuple[TopicFeaturesModel, bool]:
    """A frozen-features classifier and whether it is new (its feature statistics still to be set from train).

    A saved classifier keeps its settings but for the flags given (unset flags are None)."""
    options = {name: getattr(model_args, name) for name in ("pooling", "head_hidden_sizes", "head_dropout")
               if getattr(model_args, name) is not None}
    options.update(label_mappings(label_names))
    attention = {"attn_implementation": model_args.attn_implementation}
    if isinstance(AutoConfig.from_pretrained(model_args.model_name_or_path), TopicFeaturesConfig):
        return TopicFeaturesModel.from_pretrained(model_args.model_name_or_path, **attention, **options), False
    return TopicFeaturesModel.from_encoder(model_args.model_name_or_path, **attention, **options), True


def tokenize_splits(splits: DatasetDict, tokenizer, max_length: int, num_proc: int | None) -> DatasetDict:
    def tokenize(batch):
        encoded = tokenizer(batch[TEXT_COLUMN], truncation=True, max_length=max_length, return_token_type_ids=False)
        encoded["labels"] = batch[LABEL_COLUMN]
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        return encoded

    columns = next(iter(splits.values())).column_names
    return splits.map(tokenize, batched=True, remove_columns=columns, num_proc=num_proc, desc="Tokenizing")


def copy_topic_model(dataset_dir: str, output_dir: str) -> None:
    """The fitted TF-IDF + NMF travel with the classifier, so the app can show a review's topic words."""
    source, target = Path(dataset_dir, TOPIC_MODEL_FOLDER), Path(output_dir, TOPIC_MODEL_FOLDER)
    if not source.is_dir():
        logger.warning("%s has no %s/: the model folder will not carry the topic model", dataset_dir,
                       TOPIC_MODEL_FOLDER)
        return
    shutil.copytree(source, target, dirs_exist_ok=True)


def main(argv: list[str] | None = None) -> dict:
    model_args, data_args, topic_args, training_args = parse_script_arguments(
        (ModelArguments, DataTrainingArguments, TopicLabelArguments, ReviewTrainingArguments), argv
    )
    setup_logging(training_args, logger)
    push_requested, checkpoint = start_run(training_args, logger)
    if data_args.hub_dataset_id:
        if not data_args.train_file:
            raise ValueError("--hub_dataset_id pushes the dataset that --train_file's topic step labels: add "
                             "--train_file, or push an existing folder with `python -m data_prep.topics --push_to_hub`")
        check_dataset_push(data_args.hub_dataset_id, training_args.hub_token)

    splits = load_topic_splits(data_args, topic_args, training_args)
    label_names = splits["train"].features[LABEL_COLUMN].names
    splits["train"] = take_first(splits["train"], data_args.max_train_samples)
    splits["validation"] = take_first(splits["validation"], data_args.max_eval_samples)
    splits["test"] = take_first(splits["test"], data_args.max_predict_samples)
    wanted = {"train": training_args.do_train, "validation": training_args.do_eval, "test": training_args.do_predict}
    splits = DatasetDict({name: split for name, split in splits.items() if wanted.get(name)})
    logger.info("Splits: %s; classes %s", {name: len(split) for name, split in splits.items()}, label_names)

    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    if model_args.method == "features":
        model, new_head = build_features_model(model_args, label_names)
        model.to(training_args.device)  # the features pass runs where training will (Trainer moves it only later)
        max_length = min(data_args.max_seq_length, model_max_length(tokenizer, model))
        with training_args.main_process_first(desc="computing encoder features"):
            model_inputs = add_encoder_features(splits, model, tokenizer, max_length, model_args.feature_batch_size,
                                                TEXT_COLUMN, LABEL_COLUMN)
        if new_head and "train" in model_inputs:
            model.head.set_feature_statistics(model_inputs["train"].with_format("torch")[:][FEATURES_COLUMN])
        data_collator = default_data_collator
        if training_args.train_sampling_strategy == "group_by_length":
            logger.info("The features method samples at random: cached features have no length to group by")
            training_args.train_sampling_strategy = "random"
    else:
        model = build_finetune_model(model_args, label_names)
        max_length = min(data_args.max_seq_length, model_max_length(tokenizer, model))
        with training_args.main_process_first(desc="tokenizing"):
            model_inputs = tokenize_splits(splits, tokenizer, max_length, data_args.preprocessing_num_workers)
        data_collator = DataCollatorWithPadding(
            tokenizer, pad_to_multiple_of=8 if training_args.fp16 or training_args.bf16 else None
        )
    tokenizer.model_max_length = max_length  # saved with the model: pipelines and the app truncate as training did
    check_checkpoint(checkpoint, training_args, model.config)

    trainer = ReviewTrainer(
        model=model,
        args=training_args,
        train_dataset=model_inputs["train"] if training_args.do_train else None,
        eval_dataset=model_inputs["validation"] if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=data_collator,
        compute_metrics=build_classification_metrics(label_names),
    )

    results = {}
    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
        metrics = {**train_result.metrics, "train_samples": len(model_inputs["train"])}
        trainer.save_metrics("train", metrics)
        trainer.log_metrics("train", metrics)
        trainer.save_state()
        trainer.save_model()  # encoder + head (the whole folder loads with AutoModelForSequenceClassification)
        if trainer.is_world_process_zero():
            copy_topic_model(data_args.dataset_dir, training_args.output_dir)
        results.update(metrics)

    for run, split_name, wanted in (("eval", "validation", training_args.do_eval),
                                    ("test", "test", training_args.do_predict)):
        if not wanted:
            continue
        prediction = trainer.predict(model_inputs[split_name], metric_key_prefix=run)
        metrics = {**prediction.metrics, f"{run}_samples": len(model_inputs[split_name])}
        trainer.log_metrics(run, metrics)
        trainer.save_metrics(run, metrics)
        if trainer.is_world_process_zero():
            logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
            write_confusion_matrix(prediction.label_ids, logits.argmax(-1), label_names, run,
                                   training_args.output_dir)
        results.update(metrics)

    if training_args.do_train and trainer.is_world_process_zero():
        training_data, filter_counts = describe_topic_data(data_args.dataset_dir)
        card = topic_card_info(
            training_args.hub_model_id or Path(training_args.output_dir).name,
            read_all_results(training_args.output_dir),
            label_names=label_names,
            model_name_or_path=model_args.model_name_or_path,
            method=model_args.method,
            training_data=training_data,
            filter_counts=filter_counts,
            datasets=[data_args.dataset_name or data_args.hub_dataset_id] if (data_args.dataset_name
                                                                             or data_args.hub_dataset_id) else None,
            split_sizes={name: len(split) for name, split in model_inputs.items()},
            hyperparameters={
                **extract_hyperparameters_from_trainer(trainer),
                "method": model_args.method,
                "max_seq_length": max_length,
                **({"pooling": model.config.pooling, "head_hidden_sizes": model.config.head_hidden_sizes}
                   if model_args.method == "features" else {}),
            },
        )
        finish_run(training_args, card, push_requested, f"Train a {model_args.method} topic classifier", logger)
    end_run(training_args)
    return results


def describe_topic_data(dataset_dir: str) -> tuple[str, dict[str, int]]:
    """What the model card says about the data: reviews read and kept by the topic step, and every drop counted."""
    report = json.loads(Path(dataset_dir, TOPICS_REPORT).read_text())
    settings = report["settings"]
    sizes = {split: sum(counts.values()) for split, counts in report["category_sizes"].items()}
    training_data = (
        f"{report['reviews_read']:,} Amazon reviews read"
        + (f", kept when they mention Amazon (`{settings['mention_pattern']}`)" if settings["mention_filter"] else "")
        + f"; TF-IDF + NMF with {settings['num_topics']} topics fit on the train split only, each topic's category "
        f"affinity set by {settings.get('topic_mapping', 'keywords')}, each review labelled from its whole topic mixture"
        + (f" ('{OTHER_LABEL}' when no category holds it)" if settings.get("other_class") else "")
        + f"; labelled reviews per split: {sizes}."
    )
    filter_counts = {reason: count for reason, count in report["dropped_while_reading"].items() if count}
    for split, counts in report["dropped_while_labelling"].items():
        filter_counts.update({f"{reason} ({split})": count for reason, count in counts.items() if count})
    return training_data, filter_counts


if __name__ == "__main__":
    main()
