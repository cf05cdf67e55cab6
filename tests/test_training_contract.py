"""What a transformers user relies on in both scripts and both custom models: predictions that stay with their rows,
age in float32, saved folders that keep their settings and their length, resume that cannot mislead, the
PreTrainedModel contract, and task losses logged without a sync per step."""

import dataclasses
import importlib
import json
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig, BertModel

import modeling
from data_prep.clothing import load_clothing_reviews
from modeling import MultiTaskReviewConfig, MultiTaskReviewModel, TopicFeaturesModel
from modeling.training_run import ReviewTrainingArguments
from modeling.trainer import MultiTaskTrainer, ReviewTrainer
from modeling.configuration_multitask import MODEL_SETTINGS, VALIDATED_DEFAULTS
from tests.conftest import REPO_ROOT, two_process_launcher
from test_train_multitask import clothing_slice, common_arguments, run_script  # noqa: F401 - fixture
from train_multitask import ModelArguments, build_model


def direct_forward(folder, texts: list[str], bf16: bool) -> tuple[list[int], list[float]]:
    """Each review on its own through the saved model: no batching, no sampler, nothing to reorder."""
    model = AutoModel.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ratings, ages = [], []
    for text in texts:
        inputs = tokenizer(text, truncation=True, return_tensors="pt", return_token_type_ids=False)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            output = model(**inputs)
        ratings.append(int(output.rating_logits.argmax(-1)) + 1)
        ages.append(float(output.age))
    return ratings, ages


@pytest.fixture(scope="module")
def distinct_outputs_model_dir(tmp_path_factory, tiny_encoder_dir, tiny_tokenizer, clothing_slice) -> str:
    """A multi-task model whose heads are scaled so that every review gets its own age (spread of ~6 years) and the
    ratings vary: a row paired with another row's prediction then shows."""
    torch.manual_seed(0)
    model = MultiTaskReviewModel.from_encoder(str(tiny_encoder_dir), age_mean=43.0, age_std=12.0).eval()
    texts = load_clothing_reviews(train_file=clothing_slice).splits["train"]["text"][:64]
    batch = tiny_tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt",
                           return_token_type_ids=False)
    with torch.no_grad():
        hidden = model.encoder(**batch).last_hidden_state
        pooled = modeling.encoders.pool_hidden_states(hidden, batch["attention_mask"], "mean")
        centred = pooled - pooled.mean(dim=0)
        for head, spread in ((model.age_head, 0.5), (model.rating_head, 2.0)):
            head.weight.normal_()
            head.weight.mul_(spread / (centred @ head.weight.T).std(dim=0, keepdim=True).T)
            head.bias.copy_(-(pooled.mean(dim=0) @ head.weight.T))
    folder = tmp_path_factory.mktemp("distinct_outputs")
    model.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.mark.slow
@pytest.mark.parametrize("precision", [[], ["--bf16", "--use_cpu"]], ids=["fp32", "bf16"])
def test_every_prediction_row_is_the_forward_pass_of_its_own_text(tmp_path, distinct_outputs_model_dir,
                                                                  clothing_slice, precision):
    output_dir = tmp_path / "out"
    run_script(*common_arguments(distinct_outputs_model_dir, clothing_slice, output_dir, "--do_train", "--do_predict",
                                 "--max_steps", "2", "--learning_rate", "1e-7", *precision))
    predictions = pd.read_csv(output_dir / "test_predictions.csv", keep_default_na=False)
    ratings, ages = direct_forward(output_dir, predictions["text"].tolist(), bf16=bool(precision))
    ages = pd.Series(ages)
    assert ages.std() > 2 and pd.Series(ratings).nunique() >= 3  # rows differ, so a shuffle would show
    error = (predictions["predicted_age"] - ages).abs()
    error_of_neighbours = (predictions["predicted_age"] - ages.shift(1)).abs().dropna()
    assert error.max() <= (0.6 if precision else 0.051)  # the CSV rounds to 0.1; bf16 batches pad differently
    assert error.mean() < 0.1 * error_of_neighbours.mean()
    agreement = (predictions["predicted_rating"] == pd.Series(ratings)).mean()
    assert agreement >= (0.95 if precision else 1.0)


def test_evaluation_and_prediction_keep_the_dataset_order_with_length_grouping(tmp_path):
    from datasets import Dataset

    dataset = Dataset.from_dict({"input_ids": [[1] * n for n in (3, 9, 1, 7, 5)], "length": [3, 9, 1, 7, 5]})
    arguments = ReviewTrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True,
                                        per_device_eval_batch_size=2)
    assert arguments.train_sampling_strategy == "group_by_length"
    trainer = ReviewTrainer(model=torch.nn.Linear(1, 1), args=arguments)
    assert list(trainer._get_eval_sampler(dataset)) == [0, 1, 2, 3, 4]


def test_age_stays_float32_under_bf16_autocast(tiny_tokenizer):
    from tests.conftest import tiny_distilbert_config

    torch.manual_seed(0)
    model = MultiTaskReviewModel(MultiTaskReviewConfig(encoder=tiny_distilbert_config(tiny_tokenizer).to_dict(),
                                                       age_mean=41.3, age_std=12.7)).eval()
    batch = tiny_tokenizer(["a lovely top", "too small", "the fabric pills", "fits well"], padding=True,
                           return_tensors="pt", return_token_type_ids=False)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        age = model(**batch).age
    with torch.no_grad():
        reference = model(**batch).age
    assert age.dtype == torch.float32
    off_grid = (age * 4 - (age * 4).round()).abs()
    assert off_grid.max() > 1e-3  # not the bf16 grid of quarter years near 40
    torch.testing.assert_close(age, reference, atol=0.2, rtol=0)


# Saved folders keep their settings -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clothing_train_split(clothing_slice):
    return load_clothing_reviews(train_file=clothing_slice).splits["train"]


def test_training_a_saved_folder_further_keeps_its_settings(tmp_path, tiny_encoder_dir, tiny_tokenizer,
                                                            clothing_train_split):
    first = build_model(ModelArguments(model_name_or_path=str(tiny_encoder_dir), pooling="cls",
                                       classifier_dropout=0.3, age_loss="huber", huber_delta=0.2,
                                       class_weighted_rating_loss=True, rating_loss_weight=2.0), clothing_train_split)
    first.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)

    again = build_model(ModelArguments(model_name_or_path=str(tmp_path)), clothing_train_split)
    for name in ("pooling", "classifier_dropout", "age_loss", "huber_delta", "rating_class_weights",
                 "rating_loss_weight", "age_mean", "age_std"):
        assert getattr(again.config, name) == getattr(first.config, name), name

    changed = build_model(ModelArguments(model_name_or_path=str(tmp_path), pooling="mean",
                                         class_weighted_rating_loss=False), clothing_train_split)
    assert (changed.config.pooling, changed.config.rating_class_weights) == ("mean", None)
    assert changed.config.age_loss == "huber"  # not given, kept


def test_new_model_takes_the_validated_defaults_for_unset_flags(tiny_encoder_dir, clothing_train_split):
    from train_multitask import MultiTaskTrainingArguments

    model = build_model(ModelArguments(model_name_or_path=str(tiny_encoder_dir)), clothing_train_split)
    config_defaults = MultiTaskReviewConfig()
    for name in MODEL_SETTINGS:
        assert getattr(model.config, name) == getattr(config_defaults, name), name
    for name in set(VALIDATED_DEFAULTS) & set(MODEL_SETTINGS):
        assert getattr(config_defaults, name) == VALIDATED_DEFAULTS[name], name
    assert (model.config.rating_class_weights is not None) == VALIDATED_DEFAULTS["class_weighted_rating_loss"]
    training_args = MultiTaskTrainingArguments(output_dir="unused")
    for name in set(VALIDATED_DEFAULTS) - set(MODEL_SETTINGS) - {"class_weighted_rating_loss"}:
        assert getattr(training_args, name) == VALIDATED_DEFAULTS[name], name


def test_every_unset_model_flag_is_a_config_setting_and_none_is_refused_where_defaults_exist():
    unset_flags = {spec.name for spec in dataclasses.fields(ModelArguments) if spec.default is None}
    assert unset_flags == {*MODEL_SETTINGS, "class_weighted_rating_loss", "attn_implementation"}
    with pytest.raises(ValueError, match="age_loss must be set"):
        MultiTaskReviewConfig(age_loss=None)


def test_the_config_file_run_as_remote_code_without_the_defaults_file_loads_a_saved_config(tmp_path, monkeypatch):
    """A pushed model's configuration_multitask.py arrives without multitask_defaults.json: constructing it bare (as
    transformers does to diff a config) must work, and a saved config.json sets every setting."""
    package = tmp_path / "remote_copy"
    package.mkdir()
    for name in ("configuration_multitask.py", "encoders.py", "stacking_heads.py"):  # the config file and its imports
        shutil.copy(REPO_ROOT / "modeling" / name, package / name)
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    remote = importlib.import_module("remote_copy.configuration_multitask")
    assert remote.VALIDATED_DEFAULTS == {}
    bare = remote.MultiTaskReviewConfig()
    assert bare.age_loss is None and bare.rating_loss_weight is None
    saved = MultiTaskReviewConfig(age_loss="huber", rating_loss_weight=0.5).to_dict()
    loaded = remote.MultiTaskReviewConfig.from_dict(saved)
    assert (loaded.age_loss, loaded.rating_loss_weight, loaded.pooling) == ("huber", 0.5, VALIDATED_DEFAULTS["pooling"])
    assert "age_loss" in json.loads(loaded.to_json_string())
    for module in [name for name in sys.modules if name.startswith("remote_copy")]:
        del sys.modules[module]  # the copy must not stand in for anything later


# Resume that cannot mislead ----------------------------------------------------------------------------------------


def test_resume_is_automatic_refused_when_finished_or_different_and_overwrite_starts_over(
        tmp_path, tiny_encoder_dir, clothing_slice):
    output_dir = tmp_path / "out"
    base = ["--do_train", "--max_train_samples", "160", "--save_steps", "4"]

    run_script(*common_arguments(tiny_encoder_dir, clothing_slice, output_dir, *base, "--max_steps", "4"))
    assert (output_dir / "checkpoint-4").is_dir()

    result = run_script(*common_arguments(tiny_encoder_dir, clothing_slice, output_dir, *base, "--max_steps", "8"))
    assert "training resumes from it" in result.stdout + result.stderr
    assert "Resuming training from checkpoint with epoch" in result.stdout + result.stderr
    assert "and global step 4" in result.stdout + result.stderr
    assert json.loads((output_dir / "trainer_state.json").read_text())["global_step"] == 8

    finished = run_script(*common_arguments(tiny_encoder_dir, clothing_slice, output_dir, *base, "--max_steps", "8"),
                          check=False)
    assert finished.returncode != 0
    message = finished.stderr.strip().splitlines()[-1]
    assert "checkpoint-8" in message and "already reached step 8" in message
    assert "--overwrite_output_dir" in message and "--output_dir" in message

    different = run_script(*common_arguments(tiny_encoder_dir, clothing_slice, output_dir, *base, "--max_steps", "12",
                                             "--pooling", "cls"), check=False)
    assert different.returncode != 0
    assert "pooling: 'mean' there, 'cls' now" in different.stderr

    over = run_script(*common_arguments(tiny_encoder_dir, clothing_slice, output_dir, *base, "--max_steps", "4",
                                        "--pooling", "cls", "--overwrite_output_dir"))
    assert "training starts over" in over.stdout + over.stderr
    assert sorted(path.name for path in output_dir.glob("checkpoint-*")) == ["checkpoint-4"]
    assert AutoConfig.from_pretrained(output_dir).pooling == "cls"


def test_push_without_training_is_an_error(tmp_path, tiny_encoder_dir, clothing_slice):
    result = run_script(*common_arguments(tiny_encoder_dir, clothing_slice, tmp_path / "out", "--do_eval",
                                          "--push_to_hub", "--hub_model_id", "me/model"), check=False)
    assert result.returncode != 0 and "without --do_train nothing is trained" in result.stderr


# Saved folders remember their length; the pipeline refuses what it does not know ---------------------------------


@pytest.mark.slow
def test_saved_folder_truncates_as_training_did_and_is_saved_by_the_trainer(tmp_path, tiny_encoder_dir,
                                                                           clothing_slice):
    output_dir = tmp_path / "out"
    run_script(*common_arguments(tiny_encoder_dir, clothing_slice, output_dir, "--do_train", "--max_steps", "2",
                                 "--max_seq_length", "48", "--gradient_checkpointing"))
    assert AutoTokenizer.from_pretrained(output_dir).model_max_length == 48
    assert (output_dir / "training_args.bin").is_file()  # written by Trainer.save_model, which gathers FSDP weights
    assert (output_dir / "pipeline_multitask.py").is_file()
    assert AutoConfig.from_pretrained(output_dir).custom_pipelines["review-rating-age"]["impl"] == (
        "pipeline_multitask.ReviewRatingAgePipeline")
    rating_age = modeling.load_rating_age_pipeline(str(output_dir))
    long_review = "The fabric is soft but the seams came apart. " * 40
    assert rating_age.preprocess(long_review)["input_ids"].shape[-1] == 48
    with pytest.raises(TypeError, match="unknown argument.*top_k"):
        rating_age("Lovely", top_k=2)


# The PreTrainedModel contract, for both custom models -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
              ).save_pretrained(folder)
    return folder


def new_model(model_class, encoder_dir, **options):
    torch.manual_seed(0)
    if model_class is MultiTaskReviewModel:
        return MultiTaskReviewModel.from_encoder(str(encoder_dir), age_mean=40.0, age_std=10.0, classifier_dropout=0.0,
                                                 **options)
    return TopicFeaturesModel.from_encoder(str(encoder_dir), id2label={0: "a", 1: "b"}, head_dropout=0.0, **options)


def first_output(model, input_ids):
    output = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
    return output.rating_logits if isinstance(model, MultiTaskReviewModel) else output.logits


MODELS = [MultiTaskReviewModel, TopicFeaturesModel]
INPUT_IDS = torch.tensor([[2, 15, 27, 33, 3], [2, 41, 9, 3, 0]])


@pytest.mark.parametrize("model_class", MODELS)
def test_activation_checkpointing_gives_the_same_gradients(model_class, tiny_bert_dir):
    gradients = []
    for checkpointing in (False, True):
        model = new_model(model_class, tiny_bert_dir).train()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            assert model.is_gradient_checkpointing
        first_output(model, INPUT_IDS).sum().backward()
        gradients.append({name: parameter.grad.clone() for name, parameter in model.named_parameters()
                          if parameter.grad is not None})
    assert gradients[0] and gradients[1].keys() == gradients[0].keys()
    for name, gradient in gradients[0].items():
        torch.testing.assert_close(gradients[1][name], gradient, msg=name)


@pytest.mark.parametrize("model_class", MODELS)
def test_resized_token_embeddings_save_and_load(model_class, tiny_bert_dir, tmp_path):
    model = new_model(model_class, tiny_bert_dir).eval()
    assert model.get_input_embeddings() is model.encoder.embeddings.word_embeddings
    model.resize_token_embeddings(120, mean_resizing=False)
    assert model.config.encoder.vocab_size == 120
    model.save_pretrained(tmp_path)
    reloaded = model_class.from_pretrained(tmp_path).eval()
    assert reloaded.get_input_embeddings().weight.shape == (120, 32)
    new_tokens = INPUT_IDS % 20 + 100
    torch.testing.assert_close(first_output(reloaded, new_tokens), first_output(model, new_tokens))


@pytest.mark.parametrize("model_class", MODELS)
@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_attention_implementation_reaches_the_encoder(model_class, implementation, tiny_bert_dir, tmp_path):
    new_model(model_class, tiny_bert_dir).save_pretrained(tmp_path)
    model = model_class.from_pretrained(tmp_path, attn_implementation=implementation)
    assert model.encoder.config._attn_implementation == implementation
    built = new_model(model_class, tiny_bert_dir, attn_implementation=implementation)
    assert built.encoder.config._attn_implementation == implementation


@pytest.mark.parametrize("model_class", MODELS)
def test_flash_attention_is_left_to_the_encoder_and_the_hardware(model_class, tiny_bert_dir, tmp_path):
    new_model(model_class, tiny_bert_dir).save_pretrained(tmp_path)
    try:
        model = model_class.from_pretrained(tmp_path, attn_implementation="flash_attention_2")
    except (ImportError, ValueError) as error:  # no flash-attn package / no GPU here: the reason is not our class
        assert model_class.__name__ not in str(error), error
    else:
        assert model.encoder.config._attn_implementation == "flash_attention_2"


@pytest.mark.parametrize("model_class", MODELS)
def test_loads_in_bfloat16(model_class, tiny_bert_dir, tmp_path):
    new_model(model_class, tiny_bert_dir).save_pretrained(tmp_path)
    model = model_class.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    assert {parameter.dtype for parameter in model.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        assert first_output(model, INPUT_IDS).isfinite().all()


# Task losses: no sync per step, one meaning across processes ----------------------------------------------------------


def test_task_losses_are_kept_on_the_device_between_logging_steps(tmp_path, tiny_bert_dir, monkeypatch):
    model = new_model(MultiTaskReviewModel, tiny_bert_dir).train()
    trainer = MultiTaskTrainer(model=model, args=ReviewTrainingArguments(output_dir=str(tmp_path), report_to="none",
                                                                         use_cpu=True))
    batches = [{"input_ids": INPUT_IDS, "attention_mask": torch.ones_like(INPUT_IDS),
                "labels": torch.tensor([4, 0]), "age_labels": torch.tensor([float(age), 50.0])} for age in (20, 30, 60)]
    item_calls = []
    real_item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda self: item_calls.append(1) or real_item(self))
    outputs = [trainer.compute_loss(model, batch, return_outputs=True)[1] for batch in batches]
    assert not item_calls
    monkeypatch.undo()

    logged = {}
    monkeypatch.setattr(ReviewTrainer, "log", lambda self, logs, start_time=None: logged.update(logs))
    trainer.log({"loss": 1.0})
    for name in ("rating_loss", "age_loss"):
        expected = sum(float(getattr(output, name)) for output in outputs) / len(outputs)
        assert logged[name] == pytest.approx(expected, abs=1e-4)


@pytest.mark.slow
def test_ddp_task_losses_describe_the_same_batches_as_the_loss(tmp_path, tiny_encoder_dir, clothing_slice):
    output_dir = tmp_path / "ddp"
    launcher = two_process_launcher()
    run_script(*common_arguments(tiny_encoder_dir, clothing_slice, output_dir, "--do_train", "--max_steps", "6",
                                 "--use_cpu", "--ddp_backend", "gloo", "--logging_steps", "3", "--loss_weighting",
                                 "fixed", "--rating_loss_weight", "0.5", "--age_loss_weight", "1.0"), launcher=launcher)
    logs = [entry for entry in json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
            if "loss" in entry]
    assert logs
    for entry in logs:  # fixed weights: the loss is the weighted sum of the (unweighted) task losses, same batches
        assert entry["loss"] == pytest.approx(0.5 * entry["rating_loss"] + entry["age_loss"], abs=2e-3), entry


def test_non_default_arguments_are_a_short_list(tmp_path):
    from modeling.training_run import non_default_arguments

    arguments = ReviewTrainingArguments(output_dir=str(tmp_path), learning_rate=3e-4, report_to="none")
    changed = non_default_arguments(arguments)
    assert changed["learning_rate"] == 3e-4 and "output_dir" in changed
    assert "adam_beta1" not in changed and len(changed) < 15


# Levers for the rating/age quality (issue 14): an L1 age loss and a macro-F1 decision rule ---------------------------


def test_l1_age_loss_is_the_mean_absolute_error_of_standardized_age():
    from tests.test_multitask_model import tiny_config

    model = MultiTaskReviewModel(tiny_config(age_loss="l1", age_mean=40.0, age_std=10.0)).eval()
    output = model(input_ids=INPUT_IDS % 50, age_labels=torch.tensor([30.0, 65.0]))
    standardized = (output.age - 40.0) / 10.0
    expected = (standardized - torch.tensor([-1.0, 2.5])).abs().mean()
    torch.testing.assert_close(output.age_loss, expected)


def test_fitted_logit_offsets_raise_macro_f1_and_are_zero_when_nothing_helps():
    import numpy as np
    from sklearn.metrics import f1_score

    from modeling.metrics import fit_logit_offsets

    generator = np.random.default_rng(0)
    labels = generator.choice(3, size=600, p=[0.1, 0.2, 0.7])
    logits = generator.normal(size=(600, 3)) + np.eye(3)[labels] * 1.0 + np.array([0.0, 0.0, 1.5])  # skewed to 2
    offsets = fit_logit_offsets(logits, labels, 3)
    before = f1_score(labels, logits.argmax(-1), average="macro")
    after = f1_score(labels, (logits + offsets).argmax(-1), average="macro")
    assert offsets[-1] == 0.0 and after > before + 0.02
    perfect = np.eye(3)[labels] * 10.0
    assert fit_logit_offsets(perfect, labels, 3) == [0.0, 0.0, 0.0]


def test_pipeline_decides_with_the_offsets_and_keeps_the_raw_probabilities(tmp_path, multitask_model_dir):
    plain = modeling.load_rating_age_pipeline(str(multitask_model_dir))("Lovely dress, fits true to size.")
    shutil.copytree(multitask_model_dir, tmp_path / "adjusted")
    config_path = tmp_path / "adjusted" / "config.json"
    config = json.loads(config_path.read_text())
    config["rating_logit_offsets"] = [50.0, 0.0, 0.0, 0.0, 0.0]
    config_path.write_text(json.dumps(config))
    adjusted = modeling.load_rating_age_pipeline(str(tmp_path / "adjusted"))("Lovely dress, fits true to size.")
    assert adjusted["rating"] == 1
    assert adjusted["rating_scores"] == pytest.approx(plain["rating_scores"])


def test_cross_fitted_offsets_are_kept_only_when_they_carry_over():
    import numpy as np

    from modeling.metrics import cross_fitted_offsets

    generator = np.random.default_rng(0)
    labels = generator.choice(3, size=900, p=[0.1, 0.2, 0.7])
    skewed = generator.normal(size=(900, 3)) + np.eye(3)[labels] * 1.5 + np.array([0.0, 0.0, 2.0])  # too much for 2
    kept = cross_fitted_offsets(skewed, labels, 3)
    assert kept["keep"] and kept["gain"] > 2 * kept["standard_error"] and len(kept["offsets"]) == 3
    balanced = generator.choice(3, size=900)  # unbiased logits of balanced classes: any offsets fit only noise
    dropped = cross_fitted_offsets(generator.normal(size=(900, 3)) + np.eye(3)[balanced], balanced, 3)
    assert not dropped["keep"] and dropped["offsets"] is None


def test_expected_rating_decoding_reads_the_classes_as_a_scale():
    import numpy as np

    from modeling.metrics import expected_ratings

    # two peaks at the ends: the argmax is an end, the expectation is the middle
    logits = np.log(np.array([[0.45, 0.05, 0.0001, 0.05, 0.45], [0.01, 0.01, 0.01, 0.02, 0.95]]))
    assert expected_ratings(logits).tolist() == [2, 4]


@pytest.mark.slow
@pytest.mark.parametrize("present", [(1, 2, 3, 4), (2, 4)])
def test_stacking_heads_keep_class_ids_when_training_lacks_a_rating(present):
    from modeling.baselines import fit_stacking_heads

    rng = np.random.default_rng(0)
    words = {rating: f"word{rating} term{rating}" for rating in range(5)}
    splits = {split: rng.choice(present, size=count) for split, count in (("train", 120), ("validation", 40))}
    texts = {split: [f"{words[rating]} filler{index % 7} common text" for index, rating in enumerate(ratings)]
             for split, ratings in splits.items()}
    vectors = {split: rng.normal(size=(len(ratings), 4)) + ratings[:, None] for split, ratings in splits.items()}
    ages = {split: 30.0 + ratings * 5 for split, ratings in splits.items()}
    heads = fit_stacking_heads(texts, vectors, splits, ages, num_classes=5)
    logits, _ = heads.predict(texts["validation"], vectors["validation"])
    assert logits.shape == (40, 5)
    assert set(logits.argmax(1)) <= set(present)
    assert (logits.argmax(1) == splits["validation"]).mean() > 0.9  # ids, not positions among the present classes


@pytest.mark.parametrize("own_accuracy, own_mae, served", [
    (0.5, 3.0, ["rating", "age"]), (1.0, 3.0, ["age"]), (0.5, 0.0, ["rating"]), (1.0, 0.0, []),  # ties: the own head
])
def test_stacking_heads_serve_the_tasks_where_they_beat_the_models_heads_on_validation(own_accuracy, own_mae, served):
    from types import SimpleNamespace

    from data_prep.clothing import TEXT_COLUMN
    from modeling.stacking_heads import StackingHeads
    from train_multitask import stacking_wins

    words = ["one", "two", "three", "four", "five"]
    # the heads read the rating off the text's one word, and say 40 years to everyone: right on both tasks here
    heads = StackingHeads(vocabulary=words, idf=np.ones(5), vector_mean=np.zeros(1), vector_std=np.ones(1),
                          vector_scale=1.0, rating_weights=np.hstack([10 * np.eye(5), np.zeros((5, 1))]),
                          rating_bias=np.zeros(5), age_weights=np.zeros(6), age_bias=40.0)
    ratings = np.array([0, 1, 2, 3, 4, 4])
    validation = SimpleNamespace(predictions=(np.zeros((6, 5)), np.zeros(6), np.zeros((6, 1))),
                                 label_ids=(ratings, np.full(6, 40.0)),
                                 metrics={"eval_rating_accuracy": own_accuracy, "eval_age_mae": own_mae})
    tasks, metrics = stacking_wins(validation, {TEXT_COLUMN: [words[rating] for rating in ratings]}, heads)
    assert (metrics["eval_stacking_rating_accuracy"], metrics["eval_stacking_age_mae"]) == (1.0, 0.0)
    assert tasks == served
    assert [metrics[f"eval_stacking_serves_{task}"] for task in ("rating", "age")] == [
        float(task in served) for task in ("rating", "age")]


def test_offsets_are_off_by_default_and_fitted_only_when_asked(tmp_path, tiny_encoder_dir, clothing_slice):
    default = tmp_path / "default"
    run_script(*common_arguments(tiny_encoder_dir, clothing_slice, default, "--do_train", "--do_eval",
                                 "--max_steps", "2", "--stacking_heads", "false"))
    config = AutoConfig.from_pretrained(default)
    assert config.rating_logit_offsets is None and not config.stacking_heads
    assert not (default / "stacking_heads.json").exists()
    results = json.loads((default / "all_results.json").read_text())
    assert results["eval_served_rating_accuracy"] == results["eval_rating_accuracy"]  # the heads are served
    asked = tmp_path / "asked"
    run_script(*common_arguments(tiny_encoder_dir, clothing_slice, asked, "--do_train", "--do_eval",
                                 "--max_steps", "2", "--stacking_heads", "false", "--fit_rating_offsets", "true"))
    results = json.loads((asked / "all_results.json").read_text())
    offsets = AutoConfig.from_pretrained(asked).rating_logit_offsets
    # kept only past two standard errors of their out-of-fold gain
    kept = results["eval_rating_offsets_cross_fit_gain"] > 2 * results["eval_rating_offsets_cross_fit_standard_error"]
    assert (offsets is not None) == kept
    if offsets is not None:
        assert len(offsets) == 5 and offsets[-1] == 0.0


@pytest.mark.parametrize("model_class", MODELS)
def test_fsdp_finds_the_encoder_layers_to_wrap_with_bert_and_distilbert(model_class, tiny_bert_dir, tiny_encoder_dir):
    """FSDP's transformer-based auto wrap (examples/accelerate/fsdp.yaml) shards the classes in `_no_split_modules`:
    BERT declares its own; DistilBERT declares none, so the models add the encoder's repeated block."""
    assert "BertLayer" in new_model(model_class, tiny_bert_dir)._no_split_modules
    assert "TransformerBlock" in new_model(model_class, tiny_encoder_dir)._no_split_modules


def test_the_labeller_embeds_on_the_gpu_when_there_is_one(monkeypatch):
    from data_prep import topic_mapping

    assert topic_mapping.embedding_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert topic_mapping.embedding_device() == "cuda"


def test_the_labeller_autocasts_to_bf16_only_where_the_device_computes_it_natively(monkeypatch, tiny_encoder_dir):
    from data_prep import topic_mapping

    assert topic_mapping.autocast_dtype("fp32", "cpu") is None
    assert topic_mapping.autocast_dtype("bf16", "cpu") is torch.bfloat16
    monkeypatch.setattr(topic_mapping, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_vnni"})  # AVX-512, no bf16
    assert topic_mapping.autocast_dtype("auto", "cpu") is None
    monkeypatch.setattr(topic_mapping, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert topic_mapping.autocast_dtype("auto", "cpu") is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)  # a T4
    assert topic_mapping.autocast_dtype("auto", "cuda") is None
    with pytest.raises(ValueError, match="precision must be one of"):
        topic_mapping.autocast_dtype("fp16", "cpu")
    texts = ["a short review", "a somewhat longer review of a book and its story"]
    fp32, bf16 = (topic_mapping.embed_texts(texts, str(tiny_encoder_dir), precision=p) for p in ("fp32", "bf16"))
    assert fp32.dtype == bf16.dtype == np.float32 and np.allclose(np.linalg.norm(bf16, axis=1), 1, atol=1e-5)
    assert np.abs(fp32 - bf16).max() < 0.1 and not np.array_equal(fp32, bf16)
