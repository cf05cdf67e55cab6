"""Model cards rendered from freshly trained folders say what the saved settings say: the labels (with `other` when
the topic config has it), how the topic labels were made (the embedding labeller's saved decision) and the
multi-task losses; re-rendered after a setting changes, the card follows it."""

import itertools
import json
import shutil

import pytest

from modeling.model_card import multitask_card_info, read_all_results, topic_card_info, write_model_card
from test_train_multitask import clothing_slice, common_arguments, run_script  # noqa: F401 - fixture

pytestmark = pytest.mark.slow

# What an age loss is called in a card; a card must name its config's loss and none of the others.
AGE_LOSS_WORDING = {
    "l1": ("mean absolute error (L1 loss)", ["L1"]),
    "mse": ("mean squared error (MSE)", ["MSE", "mean squared error"]),
    "huber": ("Huber loss (delta 1.0)", ["Huber"]),
}
# What the cards said before their text followed the code.
STALE_CLAIMS = ["MSE or Huber", "still gets one of", "dominant topic", "by keywords", "keyword rules"]


def card_text(folder) -> str:
    """The card's body with line breaks and runs of spaces as single spaces (Markdown wraps sentences)."""
    body = (folder / "README.md").read_text().split("\n---\n", 1)[1]
    return " ".join(body.split())


def read_config(folder) -> dict:
    return json.loads((folder / "config.json").read_text())


def edit_json(path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def assert_no_stale_claims(text: str) -> None:
    for claim in STALE_CLAIMS:
        assert claim not in text, claim


def listed_labels(folder) -> list[str]:
    """The label of each row of the card's `| id | label |` table."""
    lines = (folder / "README.md").read_text().splitlines()
    rows = itertools.takewhile(lambda line: line.startswith("|"), lines[lines.index("| id | label |") + 2:])
    return [row.split("|")[2].strip() for row in rows]


def config_labels(config: dict) -> list[str]:
    return [config["id2label"][key] for key in sorted(config["id2label"], key=int)]


@pytest.fixture(scope="module")
def multitask_folder(tmp_path_factory, tiny_encoder_dir, clothing_slice):  # noqa: F811 - the imported fixture
    """train_multitask.py with the validated defaults (offsets fitted on validation), a few steps."""
    output_dir = tmp_path_factory.mktemp("card_multitask") / "model"
    run_script(*common_arguments(tiny_encoder_dir, clothing_slice, output_dir, "--do_train", "--do_eval",
                                 "--max_steps", "4"))
    return output_dir


@pytest.fixture(scope="module")
def topic_folder(topic_run_from_train_file):
    """train_topic.py running the topics step first (embedding labeller, `other` on: the defaults), a few steps."""
    return topic_run_from_train_file / "model"


def rerender_multitask_card(folder) -> str:
    """The card written again from the folder, with the run's hyper-parameters as the script passed them."""
    write_model_card(folder, multitask_card_info(
        "me/rating-age", read_all_results(folder), model_name_or_path="distilbert-base-uncased",
        data_source="a test slice", hyperparameters={"learning_rate": 1e-3, "age_loss": "l1"},
    ))
    return card_text(folder)


def assert_multitask_card_follows_config(folder) -> None:
    config, text = read_config(folder), card_text(folder)
    loss, _ = AGE_LOSS_WORDING[config["age_loss"]]
    assert f"{config['age_loss_weight']} × {loss} on standardized age" in text
    assert f"{config['rating_loss_weight']} × cross-entropy on the rating" in text
    for other_loss, (_, words) in AGE_LOSS_WORDING.items():
        if other_loss != config["age_loss"]:
            assert not [word for word in words if word in text], other_loss
    assert ("learned uncertainty weight" in text) == (config["loss_weighting"] == "uncertainty")
    assert (f"| age_loss | {config['age_loss']} |" in text) or "| age_loss |" not in text  # the table agrees too
    assert f"mean ({config['age_mean']:.2f}) and standard deviation ({config['age_std']:.2f})" in text
    assert listed_labels(folder) == config_labels(config)
    assert_no_stale_claims(text)


def test_fresh_multitask_card_states_the_saved_losses_and_classes(multitask_folder):
    config, text = read_config(multitask_folder), card_text(multitask_folder)
    assert config["age_loss"] == "l1"  # the validated default (multitask_defaults.json)
    assert_multitask_card_follows_config(multitask_folder)
    assert "| age_loss | l1 |" in text
    assert config["rating_logit_offsets"] and "+ torch.tensor(model.config.rating_logit_offsets)).argmax(-1)" in text


@pytest.mark.parametrize("settings", [
    {"age_loss": "mse"},
    {"age_loss": "huber", "loss_weighting": "uncertainty", "rating_loss_weight": 0.5},
    {"age_loss": "l1", "rating_logit_offsets": None},
])
def test_multitask_card_follows_a_changed_config(multitask_folder, tmp_path, settings):
    folder = shutil.copytree(multitask_folder, tmp_path / "model")
    edit_json(folder / "config.json", **settings)
    text, config = rerender_multitask_card(folder), read_config(folder)
    assert_multitask_card_follows_config(folder)
    assert f"| age_loss | {config['age_loss']} |" in text  # the saved setting, not the one the run passed
    if config["rating_logit_offsets"] is None:
        assert "rating_logit_offsets" not in text and "rating = outputs.rating_logits.argmax(-1) + 1" in text


def test_fresh_topic_card_states_the_other_class_and_the_embedding_labeller(topic_folder):
    config, text = read_config(topic_folder), card_text(topic_folder)
    decision = json.loads((topic_folder / "topic_model" / "topic_model.json").read_text())["decision"]
    assert "other" in config["id2label"].values()  # the topics step's default
    assert listed_labels(topic_folder) == config_labels(config)
    assert "Every other review is labelled `other`." in text
    assert "`other` is the class of reviews the labeller placed in none of the 6 categories" in text
    assert decision["review_weight"] > 0
    assert "blended with the review's own sentence embedding (all-MiniLM-L6-v2, the packaged copy)" in text
    assert f"makes up {decision['review_weight']} of the evidence" in text
    assert (f"subject evidence reaches {decision['min_subject_mass']} and that category holds at least "
            f"{decision['min_category_share']} of it") in text
    assert "category affinity set by embedding" in text  # the topic step's report, passed by train_topic.py
    assert "no `other` class" not in text and "is given one of them anyway" not in text
    assert_no_stale_claims(text)


def rerender_topic_card(folder, label_names: list[str]) -> str:
    write_model_card(folder, topic_card_info(
        "me/review-topics", read_all_results(folder), label_names=label_names,
        model_name_or_path="distilbert-base-uncased", method="features", training_data="Amazon review samples.",
    ))
    return card_text(folder)


def test_topic_card_follows_a_labeller_without_review_embeddings_or_other_class(topic_folder, tmp_path):
    folder = shutil.copytree(topic_folder, tmp_path / "model")
    labeller_file = folder / "topic_model" / "topic_model.json"
    labeller = json.loads(labeller_file.read_text())
    edit_json(labeller_file, decision={**labeller["decision"], "review_weight": 0.0})
    trained = config_labels(read_config(folder))
    six = [name for name in trained if name != "other"]
    edit_json(folder / "config.json", id2label=dict(enumerate(six)), label2id={name: i for i, name in enumerate(six)})

    text = rerender_topic_card(folder, label_names=trained)  # the classes the run passed; the saved config wins
    assert listed_labels(folder) == six
    assert "whole NMF topic mixture (each topic lends its share by its category affinities) alone" in text
    assert "no review is embedded" in text and "sentence embedding" not in text
    assert "Every other review was dropped: the labels have no `other` class." in text
    assert "`other` is the class" not in text and "Every other review is labelled" not in text
    assert_no_stale_claims(text)
