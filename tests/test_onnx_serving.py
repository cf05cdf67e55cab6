"""Serving on the ONNX backends: the same answers as torch, the fallback to torch, the app's `--backend` choice, and
`--export_onnx` at the end of training with the Hub push carrying `onnx/`."""

import json
import logging
import os
import shutil
import subprocess
import sys
from functools import partial

import pytest
from huggingface_hub import HfApi

import app
from modeling import backends, serving
from modeling.stacking_heads import StackingHeads
from onnx_fixtures import exported_multitask_dir, exported_topic_dir  # noqa: F401 - fixtures
from hub_fixtures import loopback_hub  # noqa: F401 - fixture
from benchmarks.common import site_packages_without_torch
from tests.conftest import REPO_ROOT, read_clothing_frame

REVIEWS = [
    "Runs small but the fabric is lovely.",
    "Terrible quality, returned it the next day and asked for a refund because the zipper broke after one wash",
    "ok",
    "",
    "Great album, the songs are wonderful and the sound is clear",
]


@pytest.mark.parametrize("backend", [backends.ONNX_FP32, backends.ONNX_INT8])
def test_rating_age_model_runs_the_folders_onnx_file(exported_multitask_dir, backend):
    served = serving.RatingAgeModel.load(str(exported_multitask_dir), backend=backend)
    assert isinstance(served.backend, backends.OnnxBackend)
    expected_file = "model.onnx" if backend == backends.ONNX_FP32 else "model_int8.onnx"
    assert served.backend.path == exported_multitask_dir / "onnx" / expected_file
    results = served.predict(REVIEWS)
    assert results[3] is None
    for result in results[:3] + results[4:]:
        assert sum(result["rating_scores"].values()) == pytest.approx(1, abs=1e-5)
        assert result["rating"] in range(1, 6) and 13 < result["age"] < 100


def test_a_graph_exported_before_the_review_vector_output_still_serves_a_model_without_stacking_heads(
    exported_multitask_dir, tmp_path
):
    import onnx

    folder = tmp_path / "model"
    shutil.copytree(exported_multitask_dir, folder)
    graph_file = folder / "onnx" / "model.onnx"
    graph = onnx.load(str(graph_file))
    kept = [output for output in graph.graph.output if output.name != "review_vector"]
    del graph.graph.output[:]
    graph.graph.output.extend(kept)
    onnx.save(graph, str(graph_file))
    served = serving.RatingAgeModel.load(str(folder), backend=backends.ONNX_FP32)
    expected = serving.RatingAgeModel.load(str(exported_multitask_dir), backend=backends.ONNX_FP32)
    assert served.backend.output_names == ("rating_logits", "age")
    assert served.predict(REVIEWS) == expected.predict(REVIEWS)


def test_onnx_fp32_answers_are_torchs(exported_multitask_dir, exported_topic_dir):
    for model_class, folder in ((serving.RatingAgeModel, exported_multitask_dir),
                                (serving.TopicClassifier, exported_topic_dir)):
        on_torch = model_class.load(str(folder)).predict(REVIEWS)
        on_onnx = model_class.load(str(folder), backend=backends.ONNX_FP32).predict(REVIEWS)
        for expected, found in zip(on_torch, on_onnx, strict=True):
            if expected is None:
                assert found is None
                continue
            scores = "rating_scores" if model_class is serving.RatingAgeModel else "scores"
            assert found[scores] == pytest.approx(expected[scores], abs=1e-4)
            assert found["truncated"] == expected["truncated"]
            if model_class is serving.RatingAgeModel:
                assert abs(found["age"] - expected["age"]) <= 0.1 + 1e-9  # both rounded to 0.1 year


def test_topic_classifier_on_int8_gives_a_distribution_over_the_labels(exported_topic_dir):
    classifier = serving.TopicClassifier.load(str(exported_topic_dir), backend=backends.ONNX_INT8)
    assert classifier.backend.path.name == "model_int8.onnx"
    result = classifier.predict(["The DVD picture is grainy"])[0]
    assert set(result["scores"]) == set(classifier.labels) and result["topic"] in classifier.labels
    assert sum(result["scores"].values()) == pytest.approx(1, abs=1e-5)


def test_folder_without_onnx_export_falls_back_to_torch_with_a_log_line(multitask_model_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="modeling.serving"):
        served = serving.RatingAgeModel.load(str(multitask_model_dir), backend=backends.ONNX_INT8)
    assert isinstance(served.backend, backends.TorchBackend)
    assert "has no onnx/ export for the onnx-int8 backend" in caplog.text and "serving on torch" in caplog.text


def test_unknown_backend_is_refused_by_name(multitask_model_dir):
    with pytest.raises(ValueError, match="unknown backend 'tensorrt': choose one of auto, torch, onnx, onnx-int8"):
        serving.RatingAgeModel.load(str(multitask_model_dir), backend="tensorrt")


def folder_with_exports(tmp_path, int8_agreement=None, measured_flags=()):
    """A model folder's onnx/ as `choose_backend` sees it: which files exist and what the int8 recipe says."""
    import json

    from modeling.export_onnx import onnx_paths
    from modeling.int8_recipe import RECIPE_FILE

    import platform

    from modeling.int8_recipe import file_sha256

    paths = onnx_paths(tmp_path)
    paths["fp32"].parent.mkdir()
    for path in paths.values():
        path.write_bytes(b"graph")
    if int8_agreement is not None:
        (paths["int8"].parent / RECIPE_FILE).write_text(json.dumps(
            {"top1_agreement": 0.996, "reviews": 600, "confirmed_top1_agreement": int8_agreement,
             "confirmation_reviews": 200, "cpu_flags": list(measured_flags), "machine": platform.machine(),
             "int8_sha256": file_sha256(paths["int8"])}))
    return str(tmp_path)


@pytest.mark.parametrize("agreement, measured_flags, flags, cuda, expected", [
    (None, (), ["avx2"], True, ("torch", True)),                       # a GPU: torch on it
    (0.995, ["avx512_vnni"], ["avx2", "avx512_vnni"], False, ("onnx-int8", False)),  # int8 that agreed, same kernels
    (0.995, ["avx512_vnni"], ["avx2"], False, ("onnx", False)),         # agreed on VNNI, this CPU has none
    (0.985, ["avx2"], ["avx2"], False, ("onnx", False)),                # int8 under the 99% bar on unseen reviews
    (None, (), ["avx2"], False, ("onnx", False)),                       # int8 without a recipe: no evidence
    (None, (), ["avx2", "avx512_bf16"], False, ("torch", True)),        # native bf16: torch bf16
    (0.985, ["amx_bf16"], ["avx2", "amx_bf16"], False, ("torch", True)),
])
def test_auto_backend_is_the_fastest_that_meets_the_bars_on_this_machine(tmp_path, agreement, measured_flags, flags,
                                                                         cuda, expected):
    import torch

    folder = folder_with_exports(tmp_path, agreement, measured_flags)
    choice = backends.choose_backend(folder, None, flags=flags, cuda=cuda)
    bf16_expected = expected[1] and (not cuda or torch.cuda.is_available())
    assert (choice.backend, choice.bf16) == (expected[0], bf16_expected)
    assert choice.reason


def test_auto_backend_ignores_a_recipe_written_for_another_int8_graph(tmp_path):
    """A plain re-export (no --agreement-texts) replaces the graph; the old recipe must not vouch for the new one."""
    from modeling.export_onnx import onnx_paths

    folder = folder_with_exports(tmp_path, 0.995, ["avx512_vnni"])
    onnx_paths(folder)["int8"].write_bytes(b"another graph")
    assert backends.choose_backend(folder, None, flags=["avx512_vnni"], cuda=False).backend == "onnx"


def test_auto_backend_without_an_export_is_torch_float32(tmp_path):
    choice = backends.choose_backend(str(tmp_path), None, flags=["avx2"], cuda=False)
    assert (choice.backend, choice.bf16) == ("torch", False) and "no onnx/ export" in choice.reason


def test_auto_backend_is_logged_and_shown_in_the_app_footer(exported_multitask_dir, monkeypatch, caplog):
    monkeypatch.setattr(backends, "cpu_flags", lambda: ["avx2"])
    with caplog.at_level(logging.INFO, logger="modeling.serving"):
        served = serving.RatingAgeModel.load(str(exported_multitask_dir), backend=backends.AUTO)
    assert isinstance(served.backend, backends.OnnxBackend) and served.backend.path.name == "model.onnx"
    assert "backend onnx (auto: no native bf16 and no int8 export that agrees: ONNX float32)" in caplog.text
    footer = app.served_by_footer(None, served)
    assert footer.startswith("<small>Served by: Rating-and-age model: onnxruntime model.onnx (auto: no native bf16")


def test_the_app_serves_both_onnx_models_where_torch_is_not_installed(tmp_path, exported_multitask_dir,
                                                                      exported_topic_dir):
    packages = site_packages_without_torch(tmp_path / "site-packages")
    code = f"""
import importlib.util, json, sys
assert importlib.util.find_spec("torch") is None
import app
from modeling.serving import RatingAgeModel, TopicClassifier
rating_age = RatingAgeModel.load({str(exported_multitask_dir)!r}, backend="auto")
topic = TopicClassifier.load({str(exported_topic_dir)!r}, backend="auto")
app.build_demo(topic, rating_age, None, None)
print(json.dumps({{"rating_age": rating_age.predict({REVIEWS!r}), "topic": topic.predict({REVIEWS!r}),
                   "served_by": [rating_age.served_by, topic.served_by], "torch_loaded": "torch" in sys.modules}}))
"""
    result = subprocess.run([sys.executable, "-s", "-S", "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(packages)])})
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["torch_loaded"] is False
    assert all("torch is not installed" in served_by for served_by in found["served_by"]), found["served_by"]
    for model_class, folder, key in ((serving.RatingAgeModel, exported_multitask_dir, "rating_age"),
                                     (serving.TopicClassifier, exported_topic_dir, "topic")):
        expected = model_class.load(str(folder), backend=backends.ONNX_FP32).predict(REVIEWS)
        for got, want in zip(found[key], expected, strict=True):
            assert (got is None) == (want is None)
            if want is not None:
                assert {k: v for k, v in got.items() if "scores" not in k} == {
                    k: v for k, v in want.items() if "scores" not in k}
                scores = "rating_scores" if key == "rating_age" else "scores"
                assert got[scores] == pytest.approx(want[scores], abs=1e-6)


def test_app_backend_comes_from_the_flag_then_the_space_variable_then_the_default(monkeypatch):
    monkeypatch.delenv("REVIEW_BACKEND", raising=False)
    monkeypatch.delenv("APP_BF16", raising=False)
    assert app.parse_arguments([]).backend == backends.DEFAULT_BACKEND
    assert app.parse_arguments(["--bf16"]).backend == backends.TORCH  # bf16 autocast is a torch feature
    monkeypatch.setenv("REVIEW_BACKEND", "onnx")
    assert app.parse_arguments([]).backend == "onnx"
    assert app.parse_arguments(["--backend", "torch"]).backend == "torch"


def test_app_refuses_bf16_on_an_onnx_backend(capsys):
    with pytest.raises(SystemExit):
        app.parse_arguments(["--bf16", "--backend", "onnx-int8"])
    assert "--bf16 applies to the torch backend" in capsys.readouterr().err


def test_app_main_loads_both_models_on_the_chosen_backend(exported_multitask_dir, exported_topic_dir, monkeypatch):
    launched = {}
    monkeypatch.setattr(app, "launch", lambda demo, host, port, concurrency_limit: launched.update(demo=demo))
    monkeypatch.setattr(app, "build_demo", lambda topic, rating_age, *rest: (topic, rating_age))
    app.main(["--topic-model", str(exported_topic_dir), "--multitask-model", str(exported_multitask_dir),
              "--backend", "onnx-int8"])
    topic_classifier, rating_age_model = launched["demo"]
    assert topic_classifier.backend.path.name == rating_age_model.backend.path.name == "model_int8.onnx"


def count_calls(calls: list, function, *arguments, **options):
    calls.append(arguments)
    return function(*arguments, **options)


@pytest.mark.slow
def test_training_with_export_onnx_pushes_the_onnx_folder_and_serves_it_from_the_hub(
    loopback_hub, tmp_path, tiny_encoder_dir, clothing_file, monkeypatch
):
    train_file = tmp_path / "slice.csv"
    read_clothing_frame(clothing_file, nrows=300).to_csv(train_file)
    output_dir, repo_id = tmp_path / "out", "review-lab/tiny-onnx"
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train_multitask.py"), "--model_name_or_path", str(tiny_encoder_dir),
         "--train_file", str(train_file), "--output_dir", str(output_dir), "--do_train", "--do_eval", "--max_steps", "2",
         "--per_device_train_batch_size", "8", "--max_seq_length", "64", "--report_to", "none",
         "--save_strategy", "no", "--export_onnx", "--push_to_hub", "--hub_model_id", repo_id],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "TOKENIZERS_PARALLELISM": "false"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert (output_dir / "onnx" / "model.onnx").is_file() and (output_dir / "onnx" / "model_int8.onnx").is_file()
    pushed = set(HfApi(endpoint=loopback_hub.url).list_repo_files(repo_id))
    assert {"onnx/model.onnx", "onnx/model_int8.onnx", "config.json", "stacking_heads.safetensors",
            "stacking_heads.json", "stacking_heads.py"} <= pushed

    # served by its stacking heads (the default with --do_eval) on every backend, as the pipeline answers; each load
    # reads them once (on torch the pipeline does)
    heads_loads = []
    monkeypatch.setattr(StackingHeads, "load", partial(count_calls, heads_loads, StackingHeads.load))
    from_hub = serving.RatingAgeModel.load(repo_id, backend=backends.ONNX_FP32)
    assert isinstance(from_hub.backend, backends.OnnxBackend) and from_hub.stacking_heads is not None
    assert len(heads_loads) == 1
    local = serving.RatingAgeModel.load(str(output_dir))
    assert local.stacking_heads is not None and local.stacking_heads is local.pipeline.stacking_heads
    assert len(heads_loads) == 2
    pipeline_answers = local.pipeline(REVIEWS[:3])
    for expected, found, answer in zip(local.predict(REVIEWS[:3]), from_hub.predict(REVIEWS[:3]), pipeline_answers,
                                       strict=True):
        assert found["rating_scores"] == pytest.approx(expected["rating_scores"], abs=1e-4)
        assert found["rating"] == expected["rating"] == answer["rating"]
        assert expected["rating_scores"] == pytest.approx(answer["rating_scores"], abs=1e-5)
        assert abs(found["age"] - answer["age"]) <= 0.1 + 1e-9
