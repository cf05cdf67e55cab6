"""Hub round trip with no network: push to the loopback Hub, pull by repo id (and by commit) in a process that does
not have this project; push arguments checked before training; generated model cards."""

import json

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, constants

from hub_fixtures import hub_server, loopback_hub, run_outside_project  # noqa: F401 - fixtures
from modeling import MultiTaskReviewModel, load_rating_age_pipeline
from modeling.hub import check_push_arguments, parse_model_reference, push_model_folder
from modeling.model_card import (
    build_model_card,
    evaluated_metrics,
    multitask_card_info,
    topic_card_info,
    write_model_card,
)

REPO_ID = "review-lab/tiny-rating-age"
REVIEWS = ["Lovely dress, fits true to size.", "The fabric is cheap and it ripped after one wash.", "ok"]
RUN_METRICS = {
    "epoch": 1.0,
    "train_loss": 2.31,
    "eval_loss": 2.2,
    "eval_rating_accuracy": 0.55,
    "eval_rating_macro_f1": 0.21,
    "eval_rating_f1_5_stars": 0.71,
    "eval_age_mae": 10.4,
    "eval_age_rmse": 12.9,
    "eval_runtime": 1.5,
    "eval_samples_per_second": 80.0,
    "eval_samples": 120,
    "test_rating_accuracy": 0.53,
    "test_age_mae": 10.9,
}


def tiny_multitask_model(encoder_dir, seed: int) -> MultiTaskReviewModel:
    torch.manual_seed(seed)
    return MultiTaskReviewModel.from_encoder(str(encoder_dir), age_mean=43.0, age_std=12.0).eval()


def save_with_card(model, tokenizer, folder, model_name_or_path: str) -> None:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    card = multitask_card_info(
        REPO_ID, RUN_METRICS, model_name_or_path=model_name_or_path, data_source="a test slice",
        filter_counts={"no review text": 7}, split_sizes={"train": 960, "validation": 120, "test": 120},
        hyperparameters={"learning_rate": 5e-5, "max_steps": 3}, age_mean=43.0, age_std=12.0,
    )
    write_model_card(folder, card)


def reference_outputs(model, tokenizer) -> dict:
    batch = tokenizer(REVIEWS, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return {"rating_logits": outputs.rating_logits.tolist(), "age": outputs.age.tolist()}


PULL_OUTSIDE_PROJECT = """
import importlib.util, json, sys
import torch
from transformers import AutoModel, AutoTokenizer, pipeline

assert importlib.util.find_spec("modeling") is None and importlib.util.find_spec("data_prep") is None, sys.path
REPO_ID, PINNED_COMMIT, REVIEWS = {repo_id!r}, {pinned_commit!r}, {reviews!r}

def outputs_of(revision=None):
    tokenizer = AutoTokenizer.from_pretrained(REPO_ID, revision=revision, trust_remote_code=True)
    model = AutoModel.from_pretrained(REPO_ID, revision=revision, trust_remote_code=True).eval()
    batch = tokenizer(REVIEWS, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return {{"class": type(model).__name__, "rating_logits": outputs.rating_logits.tolist(),
            "age": outputs.age.tolist()}}

rating_age = pipeline(model=REPO_ID, trust_remote_code=True)
print(json.dumps({{
    "main": outputs_of(),
    "pinned": outputs_of(PINNED_COMMIT),
    "pipeline": rating_age(REVIEWS, batch_size=2),
}}))
"""


def assert_same_outputs(pulled: dict, original: dict) -> None:
    assert torch.allclose(torch.tensor(pulled["rating_logits"]), torch.tensor(original["rating_logits"]), atol=1e-5)
    assert torch.allclose(torch.tensor(pulled["age"]), torch.tensor(original["age"]), atol=1e-4)


def test_pushed_model_loads_by_repo_id_and_commit_without_the_project(
    loopback_hub, tmp_path, tiny_encoder_dir, tiny_tokenizer
):
    first, second = tiny_multitask_model(tiny_encoder_dir, seed=1), tiny_multitask_model(tiny_encoder_dir, seed=2)
    first_folder, second_folder = tmp_path / "first", tmp_path / "second"
    save_with_card(first, tiny_tokenizer, first_folder, str(tiny_encoder_dir))
    save_with_card(second, tiny_tokenizer, second_folder, str(tiny_encoder_dir))
    (second_folder / "checkpoint-3").mkdir()
    (second_folder / "checkpoint-3" / "optimizer.pt").write_bytes(b"not for the Hub")
    (second_folder / "runs").mkdir()
    (second_folder / "runs" / "events.out.tfevents").write_bytes(b"logs")

    first_commit = push_model_folder(first_folder, REPO_ID, commit_message="First model")
    second_commit = push_model_folder(second_folder, REPO_ID, commit_message="Second model")
    assert first_commit.oid != second_commit.oid

    assert ("POST", "/api/validate-yaml", 200) in loopback_hub.requests  # the card's metadata passed the check
    files = HfApi(endpoint=loopback_hub.url).list_repo_files(REPO_ID)
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json", "configuration_multitask.py",
            "modeling_multitask.py", "pipeline_multitask.py"} <= set(files)
    assert not [name for name in files if name.startswith(("checkpoint-", "runs/"))]

    expected_pipeline = load_rating_age_pipeline(str(second_folder))(REVIEWS, batch_size=2)
    pulled = run_outside_project(
        PULL_OUTSIDE_PROJECT.format(repo_id=REPO_ID, pinned_commit=first_commit.oid, reviews=REVIEWS), tmp_path
    )
    assert pulled["main"]["class"] == "MultiTaskReviewModel"
    assert_same_outputs(pulled["main"], reference_outputs(second, tiny_tokenizer))
    assert_same_outputs(pulled["pinned"], reference_outputs(first, tiny_tokenizer))
    for got, expected in zip(pulled["pipeline"], expected_pipeline, strict=True):
        assert got["rating"] == expected["rating"]
        assert got["age"] == pytest.approx(expected["age"], abs=0.05)
        assert got["rating_scores"] == pytest.approx(expected["rating_scores"], abs=1e-5)


def test_project_pipeline_pulls_a_reference_with_revision(loopback_hub, tmp_path, tiny_encoder_dir, tiny_tokenizer):
    first, second = tiny_multitask_model(tiny_encoder_dir, seed=1), tiny_multitask_model(tiny_encoder_dir, seed=2)
    save_with_card(first, tiny_tokenizer, tmp_path / "first", str(tiny_encoder_dir))
    save_with_card(second, tiny_tokenizer, tmp_path / "second", str(tiny_encoder_dir))
    first_commit = push_model_folder(tmp_path / "first", REPO_ID)
    push_model_folder(tmp_path / "second", REPO_ID)

    pinned = load_rating_age_pipeline(*parse_model_reference(f"{REPO_ID}@{first_commit.oid}"))
    latest = load_rating_age_pipeline(*parse_model_reference(REPO_ID))
    assert pinned(REVIEWS[0]) == load_rating_age_pipeline(str(tmp_path / "first"))(REVIEWS[0])
    assert latest(REVIEWS[0]) == load_rating_age_pipeline(str(tmp_path / "second"))(REVIEWS[0])

    pushed_card = ModelCard.load(REPO_ID)
    assert pushed_card.data.library_name == "transformers"
    assert {result.metric_name for result in pushed_card.data.eval_results} >= {"Rating accuracy", "Age MAE (years)"}


def test_push_to_a_branch_creates_it(loopback_hub, tmp_path, tiny_encoder_dir, tiny_tokenizer):
    save_with_card(tiny_multitask_model(tiny_encoder_dir, seed=1), tiny_tokenizer, tmp_path / "model", "x/y")
    commit = push_model_folder(tmp_path / "model", REPO_ID, revision="experiment")
    api = HfApi(endpoint=loopback_hub.url)
    assert api.model_info(REPO_ID, revision="experiment").sha == commit.oid
    assert "config.json" not in api.list_repo_files(REPO_ID)  # main keeps only the initial commit


def test_push_needs_a_saved_model_folder(loopback_hub, tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        push_model_folder(tmp_path, REPO_ID)


# ---- push arguments, checked before training --------------------------------------------------------------------


@pytest.fixture
def no_saved_token(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_token"))


def test_push_without_a_token_fails_at_start_up(no_saved_token):
    with pytest.raises(ValueError, match="token"):
        check_push_arguments(True, "me/review-model", None)


def test_push_token_from_argument_or_environment_is_accepted(no_saved_token, monkeypatch):
    check_push_arguments(True, "me/review-model", "hf_from_argument")
    monkeypatch.setenv("HF_TOKEN", "hf_from_environment")
    check_push_arguments(True, "me/review-model", None)


@pytest.mark.parametrize(
    "hub_model_id", [None, "", "review-model", "me/review model", "me/a/b", "me/..model", "me/x--y"]
)
def test_push_with_missing_or_malformed_repo_id_fails_at_start_up(hub_model_id):
    with pytest.raises(ValueError, match="hub_model_id"):
        check_push_arguments(True, hub_model_id, "hf_token")


def test_no_push_needs_nothing(no_saved_token):
    check_push_arguments(False, None, None)


# ---- model references ---------------------------------------------------------------------------------------------


def test_parse_model_reference(tmp_path):
    assert parse_model_reference("me/model@0123abc") == ("me/model", "0123abc")
    assert parse_model_reference("me/model@main") == ("me/model", "main")
    assert parse_model_reference("me/model") == ("me/model", None)
    assert parse_model_reference("distilbert-base-uncased@v1.0") == ("distilbert-base-uncased", "v1.0")
    folder = tmp_path / "run@2"
    folder.mkdir()
    assert parse_model_reference(str(folder)) == (str(folder), None)


@pytest.mark.parametrize("reference", ["me/model@", "not a repo", "a/b/c@main"])
def test_parse_model_reference_rejects_malformed_references(reference):
    with pytest.raises(ValueError, match="repo|revision|@"):
        parse_model_reference(reference)


# ---- model cards -----------------------------------------------------------------------------------------------


def test_card_metadata_holds_the_run_metrics(tmp_path):
    card = multitask_card_info(
        REPO_ID, RUN_METRICS, model_name_or_path="distilbert-base-uncased", data_source="the PyPI copy",
        filter_counts={"no review text": 728}, hyperparameters={"learning_rate": 5e-5},
    )
    loaded = ModelCard.load(write_model_card(tmp_path, card))
    assert loaded.content.startswith("---\n")
    assert loaded.data.library_name == "transformers"
    assert loaded.data.license == "apache-2.0"
    assert loaded.data.base_model == "distilbert-base-uncased"
    assert loaded.data.datasets == ["saattrupdan/womens-clothing-ecommerce-reviews"]
    assert loaded.data.pipeline_tag is None
    reported = {(result.dataset_split, result.metric_name): result.metric_value for result in loaded.data.eval_results}
    assert reported == {
        ("validation", "Rating accuracy"): 0.55, ("validation", "Rating macro-F1"): 0.21,
        ("validation", "Age MAE (years)"): 10.4, ("test", "Rating accuracy"): 0.53, ("test", "Age MAE (years)"): 10.9,
    }
    assert "| no review text | 728 |" in loaded.text
    assert "| learning_rate | 5e-05 |" in loaded.text
    assert "| rating_accuracy | 0.5500 | 0.5300 |" in loaded.text
    assert "weak and sensitive" in loaded.text
    assert 'AutoModel.from_pretrained("review-lab/tiny-rating-age", trust_remote_code=True)' in loaded.text


def test_card_has_no_base_model_for_a_local_encoder(tmp_path, tiny_encoder_dir):
    card = multitask_card_info(REPO_ID, RUN_METRICS, model_name_or_path=str(tiny_encoder_dir), data_source="a file")
    loaded = ModelCard.load(write_model_card(tmp_path, card))
    assert loaded.data.base_model is None
    assert "base_model" not in loaded.content


def test_topic_card_has_pipeline_tag_widget_and_data_terms():
    card = build_model_card(topic_card_info(
        "me/review-topics", {"eval_accuracy": 0.8, "eval_macro_f1": 0.7, "eval_f1_books": 0.9},
        label_names=["books", "games"], model_name_or_path="distilbert-base-uncased", method="features",
        training_data="Amazon review samples.",
    ))
    assert card.data.pipeline_tag == "text-classification"
    assert card.data.license == "other" and card.data.license_name
    assert len(card.data.widget) == 6 and all(set(example) == {"text"} for example in card.data.widget)
    assert {result.metric_type for result in card.data.eval_results} == {"accuracy", "f1"}
    assert 'pipeline("text-classification", model="me/review-topics", trust_remote_code=True)' in card.text


def test_evaluated_metrics_keep_quality_metrics_by_split():
    assert evaluated_metrics(RUN_METRICS) == {
        "validation": {"rating_accuracy": 0.55, "rating_macro_f1": 0.21, "rating_f1_5_stars": 0.71,
                       "age_mae": 10.4, "age_rmse": 12.9},
        "test": {"rating_accuracy": 0.53, "age_mae": 10.9},
    }


def test_saved_folder_carries_pipeline_and_card(tmp_path, tiny_encoder_dir, tiny_tokenizer):
    save_with_card(tiny_multitask_model(tiny_encoder_dir, seed=1), tiny_tokenizer, tmp_path, str(tiny_encoder_dir))
    config = json.loads((tmp_path / "config.json").read_text())
    assert "custom_pipelines" in config
    assert ModelCard.load(tmp_path / "README.md").data.eval_results


@pytest.mark.parametrize("reference, error", [("./missing_model", FileNotFoundError), ("/no/such/folder", FileNotFoundError),
                                              ("", ValueError), ("  ", ValueError)])
def test_missing_local_folder_or_empty_reference_is_a_clear_error(reference, error):
    with pytest.raises(error):
        parse_model_reference(reference)
