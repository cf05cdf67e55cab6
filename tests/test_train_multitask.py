"""train_multitask.py end to end on a slice of the real clothing data, with the tiny model: metrics files,
predictions, reload, resume from a checkpoint, gradient accumulation, and a 2-process DDP run on CPU."""

import json
from collections.abc import Sequence
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from transformers import AutoModel, DistilBertConfig

import modeling
from data_prep.clothing import load_clothing_reviews
from modeling import MultiTaskReviewConfig, MultiTaskReviewModel
from modeling.training_run import ReviewTrainingArguments
from modeling.trainer import MultiTaskTrainer
from hub_fixtures import run_outside_project
from huggingface_hub import ModelCard
from tests.conftest import REPO_ROOT, read_clothing_frame, run_command, two_process_launcher

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clothing_slice(tmp_path_factory, clothing_file) -> str:
    """600 real reviews in the original Kaggle layout (with the unnamed index column)."""
    path = tmp_path_factory.mktemp("clothing") / "slice.csv"
    read_clothing_frame(clothing_file, nrows=600).to_csv(path)
    return str(path)


def run_script(*arguments: str, launcher: Sequence[str] = (sys.executable,), timeout: int = 300, check: bool = True):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = run_command([*launcher, str(REPO_ROOT / "train_multitask.py"), *arguments], env, timeout)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def common_arguments(encoder_dir, train_file, output_dir, *extra: str) -> list[str]:
    return [
        "--model_name_or_path", str(encoder_dir), "--train_file", train_file, "--output_dir", str(output_dir),
        "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "32", "--max_seq_length", "64",
        "--learning_rate", "1e-3", "--logging_steps", "2", "--report_to", "none", "--seed", "7", *extra,
    ]


def test_train_eval_predict_writes_metrics_predictions_and_a_loadable_model(tmp_path, tiny_encoder_dir, clothing_slice):
    output_dir = tmp_path / "out"
    run_script(*common_arguments(tiny_encoder_dir, clothing_slice, output_dir,
                                 "--do_train", "--do_eval", "--do_predict", "--max_steps", "12"))
    results = json.loads((output_dir / "all_results.json").read_text())
    for key in ("eval_rating_accuracy", "eval_rating_macro_f1", "eval_rating_f1_5_stars", "eval_age_mae",
                "eval_age_rmse", "test_rating_accuracy", "test_age_mae", "train_loss"):
        assert key in results, key
    assert 0.0 <= results["eval_rating_accuracy"] <= 1.0 and results["eval_age_mae"] > 0

    log_history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    training_logs = [entry for entry in log_history if "loss" in entry]
    assert training_logs and all({"rating_loss", "age_loss"} <= entry.keys() for entry in training_logs)

    predictions = pd.read_csv(output_dir / "test_predictions.csv")
    assert list(predictions.columns) == ["text", "true_rating", "predicted_rating", "true_age", "predicted_age"]
    test_split = load_clothing_reviews(train_file=clothing_slice).splits["test"]
    assert predictions["text"].tolist() == test_split["text"]
    assert predictions["predicted_rating"].between(1, 5).all()

    model = AutoModel.from_pretrained(output_dir).eval()
    assert isinstance(model, MultiTaskReviewModel)
    assert model.config.age_mean == pytest.approx(pd.read_csv(clothing_slice)["Age"].mean(), abs=2.0)
    reviews = ["Runs small, returned it.", "Perfect fit!"]
    answer = modeling.load_rating_age_pipeline(str(output_dir))(reviews)
    assert [sorted(item) for item in answer] == [["age", "rating", "rating_scores"]] * 2

    card_text = (output_dir / "README.md").read_text()
    assert card_text.startswith("---\n")
    card = ModelCard.load(output_dir / "README.md")
    assert card.data.library_name == "transformers"
    assert f"{results['eval_rating_accuracy']:.4f}"[:5] in card_text
    index_values = [metric["value"] for result in card.data.to_dict()["model-index"][0]["results"]
                    for metric in result["metrics"]]
    assert any(value == pytest.approx(results["test_served_age_mae"], abs=1e-4) for value in index_values)

    outside = run_outside_project(
        "import json, sys\n"
        "from transformers import AutoModel, pipeline\n"
        f"folder = {str(output_dir)!r}\n"
        "assert 'modeling' not in sys.modules\n"
        "model = AutoModel.from_pretrained(folder, trust_remote_code=True)\n"
        "rating_age = pipeline(model=folder, trust_remote_code=True)\n"
        f"print(json.dumps({{'class': type(model).__name__, 'answers': rating_age({reviews!r})}}))\n",
        tmp_path,
    )
    assert outside["class"] == "MultiTaskReviewModel"
    assert [item["rating"] for item in outside["answers"]] == [item["rating"] for item in answer]
    assert [item["age"] for item in outside["answers"]] == [item["age"] for item in answer]

    # served by default: stacking heads saved without pickle for each task where they beat the model's head on
    # validation, and what the pipeline answers is what was measured
    wins = [task for task, won in (
        ("rating", results["eval_stacking_rating_accuracy"] > results["eval_rating_accuracy"]),
        ("age", results["eval_stacking_age_mae"] < results["eval_age_mae"])) if won]
    assert model.config.stacking_heads == (wins or None) and model.config.rating_logit_offsets is None
    for task, metric in (("rating", "rating_accuracy"), ("age", "age_mae")):
        source = "eval_stacking_" if task in wins else "eval_"
        assert results[f"eval_served_{metric}"] == pytest.approx(results[source + metric]), task
    assert {"stacking_heads.safetensors", "stacking_heads.json", "stacking_heads.py"} <= {
        path.name for path in output_dir.iterdir()}
    for key in ("test_served_rating_accuracy", "test_served_rating_macro_f1", "test_served_age_mae",
                "eval_rating_offsets_cross_fit_gain", "eval_rating_offsets_cross_fit_standard_error",
                "eval_rating_expected_macro_f1_gain", "eval_rating_expected_accuracy", "test_rating_expected_macro_f1"):
        assert key in results, key
    served = modeling.load_rating_age_pipeline(str(output_dir))(list(test_split["text"]), batch_size=8)
    assert [item["rating"] for item in served] == predictions["predicted_rating"].tolist()
    assert [item["age"] for item in served] == pytest.approx(predictions["predicted_age"].tolist(), abs=0.11)
    served_accuracy = float(np.mean([item["rating"] - 1 for item in served] == np.asarray(test_split["rating"])))
    assert served_accuracy == pytest.approx(results["test_served_rating_accuracy"])
    assert "stacking_heads.safetensors" in card_text or not wins  # saved always, described where they serve
    rating_name = "Rating accuracy (stacking heads)" if "rating" in wins else "Rating accuracy"
    assert any(metric["name"] == rating_name and metric["value"] == pytest.approx(
        results["test_served_rating_accuracy"], abs=1e-4) for result in card.data.to_dict()["model-index"][0]["results"]
        for metric in result["metrics"])


@pytest.mark.parametrize(
    "hub_arguments, message",
    [(["--hub_model_id", "not a repo id"], "not a Hub model id"), (["--hub_model_id", "me/model"], "token")],
)
def test_push_without_token_or_with_a_malformed_id_fails_before_training(tmp_path, tiny_encoder_dir, clothing_slice,
                                                                        hub_arguments, message, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no_login"))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train_multitask.py"),
         *common_arguments(tiny_encoder_dir, clothing_slice, tmp_path / "out", "--do_train", "--max_steps", "2",
                           "--push_to_hub", *hub_arguments)],
        capture_output=True, text=True, env=env, timeout=120, cwd=REPO_ROOT,
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert "Tokenizing" not in result.stderr + result.stdout and not (tmp_path / "out" / "model.safetensors").exists()


def test_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_run(tmp_path, tiny_encoder_dir, clothing_slice):
    steps = ["--do_train", "--max_steps", "8", "--save_steps", "4", "--max_train_samples", "200"]
    uninterrupted, interrupted = tmp_path / "uninterrupted", tmp_path / "interrupted"
    run_script(*common_arguments(tiny_encoder_dir, clothing_slice, uninterrupted, *steps))
    run_script(*common_arguments(tiny_encoder_dir, clothing_slice, interrupted, *steps))
    # Interrupted after the first checkpoint: only checkpoint-4 survives.
    shutil.rmtree(interrupted)
    shutil.copytree(uninterrupted / "checkpoint-4", interrupted / "checkpoint-4")
    run_script(*common_arguments(tiny_encoder_dir, clothing_slice, interrupted, *steps,
                                 "--resume_from_checkpoint", str(interrupted / "checkpoint-4")))
    expected, resumed = load_file(uninterrupted / "model.safetensors"), load_file(interrupted / "model.safetensors")
    assert expected.keys() == resumed.keys()
    for name in expected:
        torch.testing.assert_close(resumed[name], expected[name], rtol=0, atol=1e-6, msg=name)


def _one_step_weights(tokenized: Dataset, batch_size: int, accumulation: int, output_dir) -> dict:
    torch.manual_seed(0)
    encoder = DistilBertConfig(vocab_size=600, dim=16, n_layers=1, n_heads=2, hidden_dim=32, dropout=0.0,
                               attention_dropout=0.0)
    model = MultiTaskReviewModel(MultiTaskReviewConfig(encoder=encoder.to_dict(), classifier_dropout=0.0,
                                                       age_mean=40.0, age_std=10.0))
    arguments = ReviewTrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=batch_size, gradient_accumulation_steps=accumulation,
        max_steps=1, learning_rate=0.1, optim="sgd", train_sampling_strategy="sequential", report_to="none",
        logging_steps=1, save_strategy="no", use_cpu=True,
    )
    trainer = MultiTaskTrainer(model=model, args=arguments, train_dataset=tokenized,
                               )
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry][0]
    return {"state": {k: v.clone() for k, v in model.state_dict().items()}, "loss": logged["loss"]}


def test_loss_flags_reach_the_model_config(tiny_encoder_dir, clothing_slice):
    from train_multitask import ModelArguments, build_model

    train_split = load_clothing_reviews(train_file=clothing_slice).splits["train"]
    model = build_model(ModelArguments(model_name_or_path=str(tiny_encoder_dir), loss_weighting="uncertainty",
                                       age_loss="huber", huber_delta=0.1, class_weighted_rating_loss=True), train_split)
    assert (model.config.loss_weighting, model.config.age_loss, model.config.huber_delta) == ("uncertainty", "huber", 0.1)
    assert len(model.config.rating_class_weights) == 5 and model.task_log_variances.requires_grad


def test_gradient_accumulation_gives_the_same_step_as_one_big_batch(tmp_path):
    examples = {
        "input_ids": [[1, 5, 7, 9, 2]] * 2 + [[1, 8, 8, 3, 2]] * 2,
        "attention_mask": [[1] * 5] * 4,
        "labels": [4, 0, 2, 3],
        "age_labels": [25.0, 61.0, 40.0, 33.0],
    }
    tokenized = Dataset.from_dict(examples)
    big = _one_step_weights(tokenized, batch_size=4, accumulation=1, output_dir=tmp_path / "big")
    accumulated = _one_step_weights(tokenized, batch_size=2, accumulation=2, output_dir=tmp_path / "accumulated")
    assert accumulated["loss"] == pytest.approx(big["loss"], rel=1e-4)
    for name, value in big["state"].items():
        torch.testing.assert_close(accumulated["state"][name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_two_process_ddp_run_on_cpu(tmp_path, tiny_encoder_dir, clothing_slice):
    output_dir = tmp_path / "ddp"
    launcher = two_process_launcher()
    result = run_script(*common_arguments(tiny_encoder_dir, clothing_slice, output_dir, "--do_train", "--do_eval",
                                          "--max_steps", "4", "--use_cpu", "--ddp_backend", "gloo"),
                        launcher=launcher)
    output = result.stdout + result.stderr
    assert "Process rank 0" in output and "Process rank 1" in output
    assert "distributed True" in output
    assert "Total train batch size (w. parallel, distributed & accumulation) = 16" in output
    assert isinstance(AutoModel.from_pretrained(output_dir), MultiTaskReviewModel)
    assert "eval_rating_accuracy" in json.loads((output_dir / "all_results.json").read_text())


def test_two_processes_start_over_from_an_old_checkpoint(tmp_path, tiny_encoder_dir, clothing_slice):
    """--overwrite_output_dir under accelerate launch: the main process deletes the old checkpoints while the other
    waits (two processes deleting the same folders race), and the run trains from scratch."""
    output_dir = tmp_path / "ddp"
    run_script(*common_arguments(tiny_encoder_dir, clothing_slice, output_dir, "--do_train", "--max_steps", "2",
                                 "--save_steps", "2", "--max_train_samples", "64"))
    assert (output_dir / "checkpoint-2").is_dir()
    launcher = two_process_launcher()
    result = run_script(*common_arguments(tiny_encoder_dir, clothing_slice, output_dir, "--do_train", "--max_steps",
                                          "2", "--save_strategy", "no", "--max_train_samples", "64",
                                          "--overwrite_output_dir", "--use_cpu", "--ddp_backend", "gloo"),
                        launcher=launcher)
    output = result.stdout + result.stderr
    assert "Process rank 1" in output and output.count("deleted the checkpoints in") == 1
    assert not (output_dir / "checkpoint-2").exists()
    assert json.loads((output_dir / "train_results.json").read_text())["train_samples"] == 64
