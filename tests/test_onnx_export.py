"""ONNX export of the three model kinds (multi-task, frozen-features topic, fine-tuned sequence classifier) and their
outputs on ONNX Runtime against torch, on the tiny test models."""

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import modeling
from modeling import export_onnx
from onnx_fixtures import exported_multitask_dir, exported_topic_dir  # noqa: F401 - fixtures
from tests.conftest import TOPIC_LABELS

FP32_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def exported_features_dir(tmp_path_factory, tiny_encoder_dir, tiny_tokenizer) -> Path:
    """A frozen-features topic model whose head standardizes with non-trivial statistics."""
    torch.manual_seed(1)
    model = modeling.TopicFeaturesModel.from_encoder(
        str(tiny_encoder_dir), id2label=dict(enumerate(TOPIC_LABELS)),
        label2id={label: index for index, label in enumerate(TOPIC_LABELS)}, head_hidden_sizes=[16],
    ).eval()
    model.head.set_feature_statistics(torch.randn(40, model.config.feature_size) * 3 + 1)
    folder = tmp_path_factory.mktemp("onnx_features") / "model"
    model.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    export_onnx.export_onnx(folder)
    return folder


def padded_batch(folder: Path, texts: list[str]) -> dict[str, np.ndarray]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="np",
                        return_token_type_ids=False)
    return {name: encoded[name].astype(np.int64) for name in export_onnx.INPUT_NAMES}


def torch_outputs(folder: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    model = export_onnx.load_model_for_export(folder)
    with torch.inference_mode():
        outputs = model(**{name: torch.from_numpy(values) for name, values in inputs.items()})
    return {name: outputs[name].numpy() for name in export_onnx.output_names_for(model.config)}


def onnx_outputs(path: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs)))


REVIEWS = [
    "Runs small but the fabric is lovely.",
    "Terrible quality, returned it the next day and asked for a refund because the zipper broke",
    "ok",
]


@pytest.mark.parametrize("folder_fixture", ["exported_multitask_dir", "exported_topic_dir", "exported_features_dir"])
def test_onnx_fp32_outputs_match_torch_within_1e_4(request, folder_fixture):
    folder = request.getfixturevalue(folder_fixture)
    inputs = padded_batch(folder, REVIEWS)
    expected = torch_outputs(folder, inputs)
    found = onnx_outputs(export_onnx.onnx_paths(folder)["fp32"], inputs)
    assert set(found) == set(expected)
    for name, values in expected.items():
        assert found[name].shape == values.shape
        np.testing.assert_allclose(found[name], values, atol=FP32_TOLERANCE, rtol=0)


def test_multitask_export_outputs_rating_logits_and_age_in_years(exported_multitask_dir):
    inputs = padded_batch(exported_multitask_dir, REVIEWS)
    found = onnx_outputs(export_onnx.onnx_paths(exported_multitask_dir)["fp32"], inputs)
    assert found["rating_logits"].shape == (3, 5)
    assert found["age"].shape == (3,)
    assert np.all((found["age"] > 13) & (found["age"] < 100))  # untrained head: age_mean 43, std 12 around 0


def test_export_has_dynamic_batch_and_sequence_axes(exported_topic_dir):
    graph = onnx.load(str(export_onnx.onnx_paths(exported_topic_dir)["fp32"])).graph
    for graph_input in graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        assert [dim.dim_value for dim in dims] == [0, 0], graph_input.name  # 0: symbolic, not a fixed size
    path = export_onnx.onnx_paths(exported_topic_dir)["fp32"]
    for batch_size, length in ((1, 3), (7, 90)):
        inputs = {"input_ids": np.full((batch_size, length), 7, dtype=np.int64),
                  "attention_mask": np.ones((batch_size, length), dtype=np.int64)}
        assert onnx_outputs(path, inputs)["logits"].shape == (batch_size, len(TOPIC_LABELS))


def test_int8_export_quantizes_the_matrix_products(exported_multitask_dir):
    paths = export_onnx.onnx_paths(exported_multitask_dir)
    operators = {node.op_type for node in onnx.load(str(paths["int8"])).graph.node}
    assert operators & {"DynamicQuantizeMatMul", "MatMulInteger", "DynamicQuantizeLinear"}, operators
    inputs = padded_batch(exported_multitask_dir, REVIEWS)
    expected = torch_outputs(exported_multitask_dir, inputs)
    found = onnx_outputs(paths["int8"], inputs)
    assert found["rating_logits"].shape == expected["rating_logits"].shape
    assert np.abs(found["age"] - expected["age"]).max() < 5  # int8 rounding moves it a little, not wildly


def test_export_of_a_folder_without_a_model_names_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        export_onnx.export_onnx(tmp_path)


def test_command_line_writes_both_files_and_prints_their_paths_last(multitask_model_dir, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(multitask_model_dir, folder)
    export_onnx.main([str(folder)])
    printed = capsys.readouterr().out.split()[-2:]
    assert printed == [str(folder / "onnx" / "model.onnx"), str(folder / "onnx" / "model_int8.onnx")]
    assert all(Path(path).stat().st_size > 0 for path in printed)


def test_int8_recipe_keeps_sensitive_matmuls_float32_until_it_agrees(tmp_path, multitask_model_dir):
    """--agreement-texts: a per-node sensitivity pass on held-out reviews, then the most sensitive MatMuls kept
    float32 one at a time until int8 gives float32's top-1 on the bar (1.0 here: always reachable, at worst with
    every MatMul float32); the recipe is written beside the graph."""
    import csv
    import json
    import shutil

    from modeling import export_onnx
    from modeling.int8_recipe import RECIPE_FILE, TopOneDecision, padded_batches, top_classes
    from transformers import AutoTokenizer

    folder = tmp_path / "model"
    shutil.copytree(multitask_model_dir, folder)
    texts = ["Runs small, returned it.", "Perfect fit and soft fabric!", "The color faded after one wash.",
             "Great dress for a wedding", "Too long for me but pretty", "Itchy.", "Love it, bought two"] * 3
    with open(tmp_path / "held_out.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["text"], *([text] for text in texts)])
    export_onnx.main([str(folder), "--agreement-texts", str(tmp_path / "held_out.csv"), "--agreement-bar", "1.0",
                      "--agreement-reviews", "21"])
    recipe = json.loads((folder / "onnx" / RECIPE_FILE).read_text())
    assert recipe["top1_agreement"] == 1.0 and recipe["agreement_output"] == "rating_logits"
    assert recipe["rating_from_stacking_heads"] is False  # no stacking heads: the model's own rating logits decide
    assert (recipe["reviews"], recipe["confirmation_reviews"]) == (16, 5) and 0 <= recipe["confirmed_top1_agreement"] <= 1
    assert recipe["quantized_nodes"] + len(recipe["float32_nodes"]) > 0 and "cpu_flags" in recipe
    batches = padded_batches(AutoTokenizer.from_pretrained(folder), texts)
    paths = export_onnx.onnx_paths(folder)
    decision = TopOneDecision("rating_logits")
    assert (top_classes(paths["int8"], batches, texts, decision) == top_classes(paths["fp32"], batches, texts, decision)
            ).all()


def test_int8_agreement_counts_the_answer_served_by_stacking_heads():
    """For a model served by stacking heads the recipe compares the heads' answer on the review's text and review
    vector (then the offsets), not the argmax of the model's own rating logits."""
    from modeling.int8_recipe import TopOneDecision
    from modeling.stacking_heads import StackingHeads

    heads = StackingHeads(vocabulary=["great", "awful"], idf=np.ones(2), vector_mean=np.zeros(1), vector_std=np.ones(1),
                          vector_scale=1.0, rating_weights=np.array([[0.0, 5.0, 0.0], [5.0, 0.0, 0.0]]),
                          rating_bias=np.zeros(2), age_weights=np.zeros(3), age_bias=40.0)
    outputs = {"rating_logits": np.array([[9.0, 0.0], [9.0, 0.0]]), "review_vector": np.zeros((2, 1))}
    texts = ["great dress", "awful zipper"]
    assert TopOneDecision("rating_logits").classes(outputs, texts).tolist() == [0, 0]
    stacked = TopOneDecision("rating_logits", stacking_heads=heads)
    assert stacked.outputs == ("rating_logits", "review_vector")
    assert stacked.classes(outputs, texts).tolist() == [1, 0]
    assert TopOneDecision("rating_logits", [10.0, 0.0], heads).classes(outputs, texts).tolist() == [0, 0]
