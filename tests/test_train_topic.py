"""The frozen-features topic classifier (model class, Auto classes, pipeline, remote code) and train_topic.py end to
end on a slice of the real Amazon data with the tiny model, for both methods."""

import json
import os
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, DistilBertConfig, pipeline

import train_topic
from data_prep.topic_model import CATEGORY_NAMES, OTHER_LABEL, TopicModel
from hub_fixtures import loopback_hub, run_outside_project  # noqa: F401 - fixture
from huggingface_hub import ModelCard
from modeling import TopicFeaturesConfig, TopicFeaturesModel
from modeling.hub import push_model_folder
from test_topics import write_shared_slice
from tests.conftest import REPO_ROOT, run_command, two_process_launcher

LABELS = {"id2label": dict(enumerate(CATEGORY_NAMES)), "label2id": {n: i for i, n in enumerate(CATEGORY_NAMES)}}
TRAINED_LABELS = [*CATEGORY_NAMES, OTHER_LABEL]  # the topics step's classes by default
INPUTS = {"input_ids": torch.tensor([[1, 5, 7, 2], [1, 9, 2, 0]]),
          "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])}


def tiny_config(**options) -> TopicFeaturesConfig:
    encoder = DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32)
    return TopicFeaturesConfig(encoder=encoder.to_dict(), **{**LABELS, **options})


# The model ---------------------------------------------------------------------------------------------------------


def test_features_give_the_same_logits_as_tokens():
    model = TopicFeaturesModel(tiny_config(head_hidden_sizes=[8, 4])).eval()
    from_tokens = model(**INPUTS).logits
    from_features = model(features=model.encode(**INPUTS)).logits
    assert from_tokens.shape == (2, len(CATEGORY_NAMES))
    torch.testing.assert_close(from_tokens, from_features)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooling_modes(pooling):
    model = TopicFeaturesModel(tiny_config(pooling=pooling)).eval()
    hidden = model.encoder(**INPUTS).last_hidden_state.detach()
    if pooling == "cls":
        expected = hidden[:, 0]
    else:  # the second review's padding token is left out of its mean
        expected = torch.stack([hidden[0].mean(dim=0), hidden[1, :3].mean(dim=0)])
    torch.testing.assert_close(model.encode(**INPUTS), expected)


def test_only_the_head_trains_and_the_encoder_stays_in_eval_mode():
    model = TopicFeaturesModel(tiny_config()).train()
    assert not model.encoder.training and model.head.training
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert trainable and all(name.startswith("head.") for name in trainable)
    loss = model(**INPUTS, labels=torch.tensor([0, 3])).loss
    loss.backward()
    assert all(parameter.grad is None for parameter in model.encoder.parameters())


def test_features_are_standardized_with_train_statistics():
    model = TopicFeaturesModel(tiny_config(head_hidden_sizes=[])).eval()
    features = torch.randn(50, 16) * 5 + 3
    features[:, 0] = 7.0  # a constant dimension keeps std 1
    model.head.set_feature_statistics(features)
    torch.testing.assert_close(model.head.feature_mean, features.mean(dim=0))
    assert model.head.feature_std[0] == 1.0
    linear = model.head.mlp[0]
    expected = linear((features - features.mean(0)) / model.head.feature_std)
    torch.testing.assert_close(model(features=features).logits, expected)


@pytest.mark.parametrize("field, value", [("pooling", "max"), ("head_hidden_sizes", [0]), ("head_dropout", 1.0)])
def test_bad_config_values_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        tiny_config(**{field: value})


def test_save_and_load_through_auto_classes(tmp_path):
    model = TopicFeaturesModel(tiny_config(pooling="cls")).eval()
    model.head.set_feature_statistics(torch.randn(20, 16) + 2)
    model.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, TopicFeaturesConfig) and config.pooling == "cls"
    assert config.auto_map == {
        "AutoConfig": "configuration_topic_features.TopicFeaturesConfig",
        "AutoModelForSequenceClassification": "modeling_topic_features.TopicFeaturesModel",
    }
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, TopicFeaturesModel)
    torch.testing.assert_close(loaded.head.feature_mean, model.head.feature_mean)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(**INPUTS).logits, model(**INPUTS).logits)


# train_topic.py ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def topic_dataset_dir(real_topic_slice) -> Path:
    """The topics step's dataset of 1,500 real reviews from each shared Amazon file (shared with test_topics.py)."""
    return real_topic_slice[1]


def run_training(encoder_dir, dataset_dir, output_dir, method: str, *extra: str) -> dict:
    return train_topic.main([
        "--model_name_or_path", str(encoder_dir), "--dataset_dir", str(dataset_dir), "--method", method,
        "--output_dir", str(output_dir), "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "64",
        "--max_seq_length", "64", "--learning_rate", "1e-3", "--report_to", "none", "--save_strategy", "no",
        "--seed", "3", *extra,
    ])


def check_model_folder(output_dir: Path, model_class=None) -> None:
    """Metrics, confusion matrices, the topic model, and loading + predicting like any text classifier."""
    results = json.loads((output_dir / "all_results.json").read_text())
    for key in ("train_loss", "eval_accuracy", "eval_macro_f1", "eval_macro_f1_present_classes", "test_accuracy",
                "test_macro_f1",
                *(f"eval_f1_{name.replace('-', '_')}" for name in TRAINED_LABELS)):
        assert key in results, key
    for run in ("eval", "test"):
        matrix = json.loads((output_dir / f"{run}_confusion_matrix.json").read_text())
        assert matrix["labels"] == TRAINED_LABELS and len(matrix["matrix"]) == len(TRAINED_LABELS)
        assert sum(map(sum, matrix["matrix"])) == results[f"{run}_samples"]
        assert (output_dir / f"{run}_confusion_matrix.png").is_file()

    topic_words = TopicModel.load(output_dir / "topic_model").decision_words(["The album's songs are wonderful"],
                                                                            [OTHER_LABEL])
    assert len(topic_words) == 1 and topic_words[0]

    model = AutoModelForSequenceClassification.from_pretrained(output_dir)
    assert model.config.id2label == dict(enumerate(TRAINED_LABELS))
    if model_class is not None:
        assert isinstance(model, model_class)
    classify = pipeline("text-classification", model=str(output_dir))
    predictions = classify(["A wonderful novel, I read it twice", "The DVD picture is grainy"], top_k=None)
    assert len(predictions) == 2 and {p["label"] for p in predictions[0]} == set(TRAINED_LABELS)
    assert sum(p["score"] for p in predictions[0]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_features_method_trains_the_head_on_features_computed_once(tmp_path, tiny_encoder_dir, topic_dataset_dir,
                                                                   monkeypatch):
    encoded_texts = []
    original_encode = TopicFeaturesModel.encode

    def counting_encode(self, input_ids, attention_mask=None):
        encoded_texts.append(len(input_ids))
        return original_encode(self, input_ids, attention_mask)

    monkeypatch.setattr(TopicFeaturesModel, "encode", counting_encode)
    options = ("--do_train", "--do_eval", "--do_predict", "--max_steps", "15", "--max_train_samples", "400",
               "--pooling", "cls", "--head_hidden_sizes", "32", "16")
    run_training(tiny_encoder_dir, topic_dataset_dir, tmp_path / "first", "features", *options)
    splits = json.loads((tmp_path / "first" / "all_results.json").read_text())
    # every review of the three splits went through the encoder once; training itself never ran it
    assert sum(encoded_texts) == 400 + splits["eval_samples"] + splits["test_samples"]

    encoded_texts.clear()
    run_training(tiny_encoder_dir, topic_dataset_dir, tmp_path / "second", "features", *options)
    assert encoded_texts == []  # the features came from the datasets cache

    check_model_folder(tmp_path / "second", TopicFeaturesModel)
    config = AutoConfig.from_pretrained(tmp_path / "second")
    assert config.pooling == "cls" and config.head_hidden_sizes == [32, 16]


@pytest.mark.slow
def test_finetune_method(tmp_path, tiny_encoder_dir, topic_dataset_dir):
    results = run_training(tiny_encoder_dir, topic_dataset_dir, tmp_path / "finetune", "finetune",
                           "--do_train", "--do_eval", "--do_predict", "--max_steps", "6", "--max_train_samples", "200",
                           "--max_eval_samples", "100", "--max_predict_samples", "100")
    assert results["eval_samples"] == 100
    assert results["eval_macro_f1_present_classes"] >= results["eval_macro_f1"]
    check_model_folder(tmp_path / "finetune")


@pytest.mark.slow
def test_features_model_pushed_to_the_hub_loads_by_repo_id_outside_the_project(
    loopback_hub, tmp_path, tiny_encoder_dir, topic_dataset_dir
):
    output_dir = tmp_path / "features"
    run_training(tiny_encoder_dir, topic_dataset_dir, output_dir, "features", "--do_train", "--do_eval",
                 "--max_steps", "3", "--max_train_samples", "64", "--max_eval_samples", "50")
    card = ModelCard.load(output_dir / "README.md")
    assert card.data.pipeline_tag == "text-classification" and card.data.widget

    repo_id = "review-lab/tiny-topic-features"
    commit = push_model_folder(output_dir, repo_id)
    reviews = ["Great album, the songs are wonderful", "The DVD picture is grainy"]
    expected = pipeline("text-classification", model=str(output_dir))(reviews, top_k=None)
    code = (
        "import importlib.util, json\n"
        "from transformers import pipeline\n"
        "assert importlib.util.find_spec('modeling') is None\n"
        f"classify = pipeline('text-classification', model={repo_id!r}, revision={commit.oid!r}, "
        "trust_remote_code=True)\n"
        f"print(json.dumps({{'class': type(classify.model).__name__, 'scores': classify({reviews!r}, top_k=None)}}))\n"
    )
    pulled = run_outside_project(code, tmp_path)
    assert pulled["class"] == "TopicFeaturesModel"
    for got, want in zip(pulled["scores"], expected, strict=True):
        assert {p["label"]: p["score"] for p in got} == pytest.approx({p["label"]: p["score"] for p in want}, abs=1e-5)


@pytest.mark.slow
def test_train_file_runs_the_topics_step_first(topic_run_from_train_file):
    report = json.loads((topic_run_from_train_file / "topics" / "topics.json").read_text())
    assert report["settings"]["num_topics"] == 8 and report["settings"]["min_category_share"] == 0.6
    assert (topic_run_from_train_file / "model" / "topic_model" / "topic_model.json").is_file()


@pytest.mark.slow
def test_two_processes_label_once_and_train(tmp_path, tiny_encoder_dir):
    """Under accelerate launch the main process labels and saves while the other waits and loads (two CPU processes,
    gloo; --log_level_replica info shows what the second one does). Keywords, no review embedding: the ranks are the
    point here, not the encoder."""
    inputs = write_shared_slice(tmp_path, rows_per_file=120)
    completed = run_command([
        *two_process_launcher(), str(REPO_ROOT / "train_topic.py"), "--model_name_or_path", str(tiny_encoder_dir),
        "--train_file", *map(str, inputs), "--no_mention_filter", "--num_topics", "6", "--topic_mapping", "keywords",
        "--review_weight", "0", "--dataset_dir", str(tmp_path / "topics"), "--method", "finetune",
        "--output_dir", str(tmp_path / "model"), "--do_train", "--max_steps", "2", "--use_cpu", "--ddp_backend", "gloo",
        "--log_level_replica", "info", "--report_to", "none", "--save_strategy", "no",
    ], {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}, 600)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-3000:]
    assert "Process rank 0" in output and "Process rank 1" in output
    assert output.count("reviews have a category (labelled in") == 3  # train, validation, test: labelled once
    assert "Process 1 loads the topic dataset the main process labelled" in output
    assert (tmp_path / "model" / "config.json").is_file()


def test_missing_dataset_is_a_clear_error(tmp_path, tiny_encoder_dir):
    base = ["--model_name_or_path", str(tiny_encoder_dir), "--output_dir", str(tmp_path / "out"), "--do_train",
            "--report_to", "none"]
    with pytest.raises(ValueError, match="Give --dataset_dir"):
        train_topic.main(base)
    with pytest.raises(FileNotFoundError, match="is not a topic dataset"):
        train_topic.main([*base, "--dataset_dir", str(tmp_path / "nothing_here")])
