"""The multi-task model: losses against hand-computed values, age in years, save/load, Auto classes, pipeline."""

import math

import pytest
import torch
from torch.nn import functional as F
from transformers import AutoConfig, AutoModel, DistilBertConfig

import modeling
from modeling import MultiTaskReviewConfig, MultiTaskReviewModel, load_rating_age_pipeline


def tiny_config(**options) -> MultiTaskReviewConfig:
    encoder = DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32)
    return MultiTaskReviewConfig(encoder=encoder.to_dict(), **{"age_mean": 40.0, "age_std": 10.0, **options})


def model_with_fixed_heads(**options) -> MultiTaskReviewModel:
    """Heads set so that rating_logits = [0, 1, 2, 3, 4] and standardized age = 0.5 for any input; the losses are
    spelled out (both weights 1, MSE age loss) unless `options` say otherwise, not left to the validated defaults."""
    torch.manual_seed(0)
    losses = {"rating_loss_weight": 1.0, "age_loss_weight": 1.0, "age_loss": "mse", "loss_weighting": "fixed"}
    model = MultiTaskReviewModel(tiny_config(classifier_dropout=0.0, **{**losses, **options})).eval()
    with torch.no_grad():
        model.rating_head.weight.zero_()
        model.rating_head.bias.copy_(torch.arange(5.0))
        model.age_head.weight.zero_()
        model.age_head.bias.fill_(0.5)
    return model


INPUTS = {"input_ids": torch.tensor([[1, 5, 7, 2], [1, 9, 2, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])}
LABELS = torch.tensor([4, 0])
AGES = torch.tensor([45.0, 25.0])  # standardized: 0.5 and -1.5


def hand_cross_entropy() -> float:
    log_z = math.log(sum(math.exp(k) for k in range(5)))
    return ((log_z - 4) + (log_z - 0)) / 2


def hand_mse() -> float:
    return ((0.5 - 0.5) ** 2 + (0.5 + 1.5) ** 2) / 2  # = 2.0


def test_age_is_returned_in_years():
    output = model_with_fixed_heads()(**INPUTS)
    assert torch.allclose(output.age, torch.tensor([45.0, 45.0]))  # 0.5 * 10 + 40


def test_loss_is_weighted_sum_of_cross_entropy_and_standardized_mse():
    output = model_with_fixed_heads(rating_loss_weight=2.0, age_loss_weight=0.5, age_loss="mse")(**INPUTS, labels=LABELS, age_labels=AGES)
    assert output.rating_loss.item() == pytest.approx(hand_cross_entropy(), rel=1e-5)
    assert output.age_loss.item() == pytest.approx(hand_mse(), rel=1e-5)
    assert output.loss.item() == pytest.approx(2.0 * hand_cross_entropy() + 0.5 * hand_mse(), rel=1e-5)


def test_zero_weight_turns_a_task_off():
    model = model_with_fixed_heads(age_loss_weight=0.0)
    output = model(**INPUTS, labels=LABELS, age_labels=AGES)
    assert output.loss.item() == pytest.approx(hand_cross_entropy(), rel=1e-5)
    output.loss.backward()
    assert model.age_head.bias.grad is None or model.age_head.bias.grad.abs().sum() == 0


def test_huber_age_loss():
    output = model_with_fixed_heads(age_loss="huber")(**INPUTS, age_labels=AGES)
    # errors 0 and 2: huber(0) = 0, huber(2) = 1 * (2 - 0.5) = 1.5
    assert output.age_loss.item() == pytest.approx(0.75, rel=1e-5)


def test_huber_delta_sets_where_the_age_loss_turns_linear():
    output = model_with_fixed_heads(age_loss="huber", huber_delta=0.5)(**INPUTS, age_labels=AGES)
    # errors 0 and 2: huber(2) = 0.5 * (2 - 0.25) = 0.875
    assert output.age_loss.item() == pytest.approx(0.4375, rel=1e-5)


def test_class_weighted_cross_entropy():
    weights = [1.0, 2.0, 3.0, 4.0, 5.0]
    output = model_with_fixed_heads(rating_class_weights=weights)(**INPUTS, labels=LABELS)
    logits = torch.arange(5.0).expand(2, 5)
    assert output.rating_loss.item() == pytest.approx(F.cross_entropy(logits, LABELS, weight=torch.tensor(weights)).item())


def test_uncertainty_weighting_formula_and_learned_log_variances():
    model = model_with_fixed_heads(loss_weighting="uncertainty", age_loss="mse")
    with torch.no_grad():
        model.task_log_variances.copy_(torch.tensor([0.2, -0.4]))
    output = model(**INPUTS, labels=LABELS, age_labels=AGES)
    expected = (math.exp(-0.2) * hand_cross_entropy() + 0.1) + (0.5 * math.exp(0.4) * hand_mse() - 0.2)
    assert output.loss.item() == pytest.approx(expected, rel=1e-5)
    output.loss.backward()
    assert model.task_log_variances.grad is not None and model.task_log_variances.grad.abs().sum() > 0


def test_log_variances_get_their_own_learning_rate_and_no_weight_decay(tmp_path):
    from transformers import TrainingArguments

    from modeling.trainer import MultiTaskTrainer

    model = MultiTaskReviewModel(tiny_config(loss_weighting="uncertainty"))
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-4, weight_decay=0.01, report_to="none", use_cpu=True)
    optimizer = MultiTaskTrainer(model=model, args=args, log_variance_learning_rate=0.05).create_optimizer()
    groups = [group for group in optimizer.param_groups if any(p is model.task_log_variances for p in group["params"])]
    assert len(groups) == 1 and groups[0]["params"] == [model.task_log_variances]
    assert groups[0]["lr"] == 0.05 and groups[0]["weight_decay"] == 0.0
    trained = sum(len(group["params"]) for group in optimizer.param_groups)
    assert trained == sum(1 for p in model.parameters() if p.requires_grad)
    given = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = MultiTaskTrainer(model=model, args=args, optimizers=(given, None), log_variance_learning_rate=0.05)
    assert trainer.create_optimizer() is given and len(given.param_groups) == 1  # a given optimizer is left alone


def test_fixed_weighting_does_not_train_log_variances():
    assert not MultiTaskReviewModel(tiny_config()).task_log_variances.requires_grad


@pytest.mark.parametrize("field, value", [("pooling", "max"), ("age_loss", "quantile"), ("loss_weighting", "magic"),
                                          ("age_std", 0.0), ("stacking_heads", ["rating", "topic"])])
def test_bad_config_values_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        tiny_config(**{field: value})


@pytest.mark.parametrize("saved, tasks", [(True, ["rating", "age"]), (False, None), (None, None), (["age"], ["age"])])
def test_stacking_heads_name_the_tasks_they_serve(saved, tasks):
    """`true` is a folder saved before the choice was made per task: its heads served both tasks."""
    assert tiny_config(stacking_heads=saved).stacking_heads == tasks


def test_save_and_load_through_auto_classes_gives_identical_outputs(tmp_path):
    model = MultiTaskReviewModel(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), MultiTaskReviewConfig)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, MultiTaskReviewModel)
    with torch.inference_mode():
        before, after = model(**INPUTS), loaded(**INPUTS)
    assert torch.equal(before.rating_logits, after.rating_logits)
    assert torch.equal(before.age, after.age)
    assert loaded.config.age_mean == 40.0 and loaded.config.id2label[4] == "5 stars"


def test_saved_config_maps_both_auto_classes_for_remote_code(tmp_path):
    MultiTaskReviewModel(tiny_config()).save_pretrained(tmp_path)
    auto_map = AutoConfig.from_pretrained(tmp_path).auto_map
    assert auto_map == {
        "AutoConfig": "configuration_multitask.MultiTaskReviewConfig",
        "AutoModel": "modeling_multitask.MultiTaskReviewModel",
    }


def test_bert_family_encoder_works(tiny_tokenizer):
    from transformers import BertConfig

    encoder = BertConfig(vocab_size=len(tiny_tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)
    model = MultiTaskReviewModel(MultiTaskReviewConfig(encoder=encoder.to_dict())).eval()
    batch = tiny_tokenizer(["a lovely top", "too small"], padding=True, return_tensors="pt")
    output = model(**batch, labels=torch.tensor([4, 1]), age_labels=torch.tensor([30.0, 50.0]))
    assert output.rating_logits.shape == (2, 5) and output.loss.isfinite()


def test_pipeline_single_and_batched(tmp_path, tiny_encoder_dir, tiny_tokenizer):
    model = MultiTaskReviewModel.from_encoder(str(tiny_encoder_dir), age_mean=43.0, age_std=12.0).eval()
    model.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).custom_pipelines["review-rating-age"]["impl"] == (
        "pipeline_multitask.ReviewRatingAgePipeline"
    )
    rating_age = load_rating_age_pipeline(str(tmp_path))
    single = rating_age("Lovely dress, fits true to size.")
    assert set(single) == {"rating", "rating_scores", "age"}
    assert single["rating"] in range(1, 6)
    assert list(single["rating_scores"]) == modeling.RATING_NAMES
    assert sum(single["rating_scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert isinstance(single["age"], float)

    texts = ["Lovely dress, fits true to size.", "Fabric is cheap " * 200, "ok"]
    batched = rating_age(texts, batch_size=2)
    assert len(batched) == 3
    assert batched[0]["rating"] == single["rating"]
    assert batched[0]["age"] == pytest.approx(single["age"], abs=0.05)
