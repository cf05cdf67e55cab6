"""Smoke runs of the benchmarks with the tiny model, so a broken flag or field shows up in CI and not after an hour
of benchmarking, and checks that the README's results section and docs/RESULTS.md are what the report module
writes from the committed JSON. Smoke runs write to a temporary folder (BENCHMARK_RESULTS_DIR), never to
benchmarks/results/."""

import ast
import json
import os
import shutil
import subprocess
import sys

import pytest

from onnx_fixtures import exported_multitask_dir, exported_topic_dir  # noqa: F401 - fixtures
from tests.conftest import REPO_ROOT, SHARED_DATA, read_clothing_frame, require_shared_data

pytestmark = pytest.mark.slow


def run_benchmark(benchmark: str, *arguments: str, results_dir) -> None:
    """`python -m benchmarks.<benchmark> arguments...` from the repo root, as the README runs it."""
    env = {**os.environ, "BENCHMARK_RESULTS_DIR": str(results_dir), "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run([sys.executable, "-m", f"benchmarks.{benchmark}", *arguments], cwd=REPO_ROOT,
                               env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]


def drawn_figures(results_dir) -> set[str]:
    """The figures the report draws from the results files a smoke run wrote (the benchmarks write JSON only)."""
    from reporting.figures import draw_all

    return {path.name for path in draw_all(results_dir) if path.is_file()}


def test_training_speed_benchmark_runs_both_ways(tmp_path, tiny_encoder_dir):
    run_benchmark("training_speed", "--model_name_or_path", str(tiny_encoder_dir), "--steps", "2",
                  "--max_seq_length", "32", "--batch_size", "4", results_dir=tmp_path)
    result = json.loads((tmp_path / "training_speed.json").read_text())
    from benchmarks.common import bf16_training_flags

    assert len(result["runs"]) == 2 + bool(bf16_training_flags()) and result["speedup"] > 0
    assert all(run["train_samples_per_second"] > 0 and run["peak_rss_mb"] > 0 for run in result["runs"].values())
    assert drawn_figures(tmp_path) == {"training_speed.png"}


def test_readme_results_and_docs_results_page_are_what_the_report_writes_from_the_committed_json():
    from reporting import results

    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index(results.START_MARKER):readme.index(results.END_MARKER) + len(results.END_MARKER)]
    page = (REPO_ROOT / results.RESULTS_PAGE).read_text()
    fix = ("run `python -m benchmarks.run_all --report_only` (add --quick for quick-mode figures)")
    modes = [quick for quick in (False, True) if section == results.readme_section(quick)]
    assert modes, f"README's results section is out of step with benchmarks/results/: {fix}"
    assert page == results.results_page(modes[0]), f"docs/RESULTS.md is out of step with benchmarks/results/: {fix}"
    assert "docs/RESULTS.md" in section and "missed by" not in section + page
    for text, folder in ((section, REPO_ROOT), (page, REPO_ROOT / "docs")):  # every image a page shows is there
        for image in (part.split(")", 1)[0] for part in text.split("](")[1:] if ".png)" in part):
            assert (folder / image).is_file(), image


def test_report_says_how_long_each_mode_took_and_what_was_reused(tmp_path, monkeypatch):
    from benchmarks import common
    from reporting import results

    machine = {"cpu_cores": 2, "cpu": "Test CPU", "processor": "x86_64", "torch": "2.13.0", "gpu": None}
    for name, minutes, kept in (("run_all", 80, 18), ("run_all_quick", 36, 0)):
        (tmp_path / f"{name}.json").write_text(json.dumps({
            "wall_seconds": minutes * 60, "multitask_runs": 18 if kept else 6, "multitask_runs_kept_from_earlier": kept,
            "machine": machine}))
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)

    full = " ".join(results.results_page(quick=False).split())
    assert "Produced by `python -m benchmarks.run_all` in 80 minutes" in full and "Test CPU" in full
    assert "18 of the multi-task table's 18 fine-tuning runs were kept" in full
    assert "`python -m benchmarks.run_all --quick` took 36 minutes" in full
    quick = " ".join(results.results_page(quick=True).split())
    assert "--quick` in 36 minutes" in quick and "were kept" not in quick
    assert results.readme_section(quick=False).startswith(results.START_MARKER)  # renders with no benchmark results


def test_report_says_plainly_whether_each_target_is_met():
    from reporting.results import against

    assert against(0.694, 0.72, True) == "0.694, short of the 0.72 target"
    assert against(0.73, 0.72, True) == "0.730, meeting the 0.72 target"
    assert against(9.14, 8.9, False, 2) == "9.14, over the 8.9 target"
    assert against(8.8, 8.9, False, 2) == "8.80, meeting the 8.9 target"
    assert against(2.87, 4, True, 2, "×") == "2.87×, short of the 4× target"


def test_report_shows_each_recorded_command_as_it_is_typed_today():
    from reporting.results import current_command

    assert current_command("python benchmarks/serving_speed.py --multitask-model out/multitask --num-reviews 128") == (
        "python -m benchmarks.serving_speed --multitask_model out/multitask --num_reviews 128")
    today = "python -m benchmarks.multitask_quality --bf16"
    assert current_command(today) == today


def test_benchmark_modules_import_each_other_without_a_circle():
    """benchmarks/ is a tree of imports, and no benchmark reads the report (reporting/): benchmarks only measure."""
    folder = REPO_ROOT / "benchmarks"
    imports = {}
    for path in folder.glob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "benchmarks":
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("benchmarks."):
                found.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("benchmarks.")}
        imports[path.stem] = found & {other.stem for other in folder.glob("*.py")}

    def reaches(start, module, seen=()):
        return any(other == start or (other not in seen and reaches(start, other, (*seen, other)))
                   for other in imports[module])

    assert not [module for module in imports if reaches(module, module)]
    assert not [path.name for path in folder.glob("*.py") if "from reporting" in path.read_text()
                or "import reporting" in path.read_text()]


def test_benchmarks_run_as_modules_without_touching_sys_path():
    for path in [*(REPO_ROOT / "benchmarks").glob("*.py"), REPO_ROOT / "tests" / "test_benchmarks.py"]:
        assert "sys.path." + "insert" not in path.read_text(), path


def test_report_counts_a_win_over_a_baseline_only_past_two_standard_errors():
    from reporting.results import versus_baseline

    # 3 seeds, std 0.0669: standard error 0.039, so 0.02 years below TF-IDF is no win
    age = {"mean": 9.14, "std": 0.0669}
    assert versus_baseline(age, {"mean": 9.16}, 3, False, 2) == ("-0.02 ± 0.04 (no measurable difference)", False)
    assert versus_baseline({**age, "mean": 9.00}, {"mean": 9.16}, 3, False, 2) == ("-0.16 ± 0.04 (better)", True)
    accuracy = {"mean": 0.650, "std": 0.002}
    assert versus_baseline(accuracy, {"mean": 0.661}, 3, True, 3) == ("-0.011 ± 0.001 (worse)", False)
    one_seed = versus_baseline({"mean": 0.695, "std": 0.0}, {"mean": 0.661}, 1, True, 3)
    assert one_seed == ("+0.034 (one seed: no standard error yet)", False)


def test_multitask_quality_benchmark_selects_on_validation_and_keeps_its_runs(tmp_path, tiny_encoder_dir, clothing_file,
                                                                            monkeypatch):
    from benchmarks.multitask_selection import BASE_SETTINGS, DEFAULTS

    # A slice: the TF-IDF grids on all 15,388 training reviews took most of this test's five minutes
    (tmp_path / "data").mkdir()
    read_clothing_frame(clothing_file, nrows=6000).to_csv(tmp_path / "data" / "womens_clothing_reviews.csv.gz")
    monkeypatch.setenv("REVIEW_DATA_DIR", str(tmp_path / "data"))
    rows = [DEFAULTS, "single-task rating", "single-task age", "MSE age loss"]
    arguments = ("--stages", "selection", "test", "--seeds", "42", "--rows", *rows, "--model_name_or_path",
                 str(tiny_encoder_dir), "--train_flags", "--max_steps 2 --max_eval_samples 200 --max_predict_samples 200")
    run_benchmark("multitask_quality", *arguments, results_dir=tmp_path)
    first = json.loads((tmp_path / "multitask_quality.json").read_text())
    assert list(first["rows"])[:2] == ["majority class / median age", next(r for r in first["rows"] if r.startswith("TF-IDF"))]
    # Selection reads validation only: the one deviation is chosen exactly when its change is below 0.
    selection = first["selection"]
    assert set(selection) == set(rows) and selection["single-task age"]["change"] is None
    assert "test" not in selection[DEFAULTS] and "served_rating_macro_f1" in selection[DEFAULTS]["validation"]
    assert "rating_offsets_cross_fit_gain" in selection[DEFAULTS]["validation"]
    mse, base = selection["MSE age loss"]["validation"], selection[DEFAULTS]["validation"]
    change = ((1 - mse["rating_accuracy"]["mean"]) / (1 - base["rating_accuracy"]["mean"]) - 1
              + mse["age_mae"]["mean"] / base["age_mae"]["mean"] - 1)
    assert selection["MSE age loss"]["change"] == pytest.approx(change)
    assert first["selected_settings"] == {**BASE_SETTINGS, **({"age_loss": "mse"} if change < 0 else {})}
    # The test stage ran on the selected settings: validation beside test, and the defaults as served (stacking).
    defaults_row = first["rows"][DEFAULTS]
    assert defaults_row["seeds"] == 1 and defaults_row["settings"] == first["selected_settings"]
    assert {"rating_accuracy", "age_mae"} <= defaults_row["validation"].keys()
    assert {"rating_expected_macro_f1", "served_rating_macro_f1"} <= defaults_row["test"].keys()
    stacking = next(row for name, row in first["rows"].items() if "as served: stacking heads" in name)
    assert stacking["test"]["rating_accuracy"] == defaults_row["test"]["served_rating_accuracy"]
    assert 0 <= stacking["test"]["rating_accuracy"]["mean"] <= 1 and stacking["test"]["age_mae"]["mean"] > 0
    assert 4000 < first["split_sizes"]["train"] < 6000  # the slice, and more than the curve's largest size
    assert "rating_accuracy" in first["curve"][str(first["split_sizes"]["train"])]  # the test stage is the curve's end
    # The curve stage was not asked for: its 6 runs (2 sizes x 3 rows, one seed) are missing, and said so. The test
    # stage reuses the 4 selection runs when the base settings win; when MSE wins, the defaults' test run is the MSE
    # selection run, kept, and the two single-task rows are new: 6 runs.
    kept = len(list((tmp_path / "multitask_quality_runs").glob("*.json")))
    assert first["runs_done"] == kept == (4 if change >= 0 else 6) and first["runs_missing"] == 6

    run_benchmark("multitask_quality", *arguments, results_dir=tmp_path)
    second = json.loads((tmp_path / "multitask_quality.json").read_text())
    assert second["runs_kept_from_earlier"] == kept and second["rows"] == first["rows"]
    assert "multitask_quality.png" in drawn_figures(tmp_path) and (tmp_path / "multitask_quality_curve.png").is_file()

    # Another encoder on the selected settings: no selection of its own, its own results file, beside MiniLM's speed.
    other = tmp_path / "other-encoder"
    shutil.copytree(tiny_encoder_dir, other)
    encoder_arguments = ("--validated_settings", "--model_name_or_path", str(other), "--seeds", "42", "--rows",
                         DEFAULTS, "--work_dir", str(tmp_path / "work"), "--speed_steps", "2", *arguments[-2:])
    run_benchmark("multitask_quality", *encoder_arguments, results_dir=tmp_path)
    encoder_result = json.loads((tmp_path / "multitask_quality_other-encoder.json").read_text())
    row = encoder_result["rows"][f"other-encoder {DEFAULTS}"]
    assert encoder_result["selection"] is None and row["settings"] == first["selected_settings"]
    assert set(encoder_result["encoder_speed"]) == {"MiniLM", "other-encoder"}
    assert all(speed["pipeline_reviews_per_second"] > 0 for speed in encoder_result["encoder_speed"].values())
    # A run that finished in --work_dir is read back, not trained again, when its kept result is gone; runs are keyed
    # by the encoder folder's name, so the same folder under another path finds it.
    for path in (tmp_path / "multitask_quality_other-encoder_runs").glob("*.json"):
        path.unlink()
    elsewhere = tmp_path / "elsewhere" / "other-encoder"
    shutil.copytree(other, elsewhere)
    run_benchmark("multitask_quality", *[str(elsewhere) if argument == str(other) else argument
                                         for argument in encoder_arguments], results_dir=tmp_path)
    again = json.loads((tmp_path / "multitask_quality_other-encoder.json").read_text())["rows"][
        f"other-encoder {DEFAULTS}"]
    assert again["test"] == row["test"] and again["runs"][0]["resumed_from"] == "a finished run's folder"


def test_multitask_selection_keeps_a_combination_of_winners_only_if_it_measures_better():
    from benchmarks.multitask_selection import BASE_SETTINGS, COMBINED, DEFAULTS, chosen_settings

    def row(lever, changes, change):
        return {"lever": lever, "changes": changes, "change": change}

    selection = {DEFAULTS: row(None, {}, None), "MSE age loss": row("age loss", {"age_loss": "mse"}, -0.011),
                 "CLS pooling": row("pooling", {"pooling": "cls"}, 0.001),
                 "rating loss weight 0.2 (age first)": row("loss weights", {"rating_loss_weight": 0.2}, -0.016)}
    expected = list(selection)
    combination = "rating loss weight 0.2 (age first) + MSE age loss"
    # two winners (the best first): the rule asks for their combination before it selects anything
    settings, winners, chosen, pending = chosen_settings(selection, expected)
    assert settings is None and pending == {"row": combination,
                                            "changes": {"rating_loss_weight": 0.2, "age_loss": "mse"}}
    assert winners == {"age loss": "MSE age loss", "loss weights": "rating loss weight 0.2 (age first)"}
    for measured, expected_row in ((0.022, "rating loss weight 0.2 (age first)"), (-0.02, combination)):
        selection[combination] = row(COMBINED, pending["changes"], measured)
        settings, _, chosen, pending_now = chosen_settings(selection, expected)
        assert chosen == expected_row and pending_now is None
        assert settings == {**BASE_SETTINGS, **selection[expected_row]["changes"]}
    # no deviation below 0: the base; a missing expected row: nothing yet
    assert chosen_settings({DEFAULTS: row(None, {}, None)}, [DEFAULTS]) == (BASE_SETTINGS, {}, None, None)
    assert chosen_settings({DEFAULTS: row(None, {}, None)}, expected)[0] is None


def test_committed_multitask_defaults_are_the_selected_settings():
    """modeling/multitask_defaults.json holds what the committed selection chose, or, while the selection is
    incomplete, the settings it starts from."""
    from benchmarks.common import load_result
    from benchmarks.multitask_selection import BASE_SETTINGS

    defaults = json.loads((REPO_ROOT / "modeling" / "multitask_defaults.json").read_text())
    quality = load_result("multitask_quality")
    selected = (quality or {}).get("selected_settings")
    assert defaults == (selected or BASE_SETTINGS)


def test_readme_flag_table_shows_the_committed_multitask_defaults():
    """The README's train_multitask.py flag table gives today's validated values in brackets: they follow the file."""
    defaults = json.loads((REPO_ROOT / "modeling" / "multitask_defaults.json").read_text())

    def shown(key):
        value = defaults[key]
        return ("on" if value else "off") if isinstance(value, bool) else f"`{value}`" if isinstance(value, str) else value

    readme = (REPO_ROOT / "README.md").read_text()
    rows = {"`--rating_loss_weight`, `--age_loss_weight`": f"{shown('rating_loss_weight')}, {shown('age_loss_weight')}",
            **{f"`--{key}`": shown(key) for key in ("loss_weighting", "age_loss", "class_weighted_rating_loss", "pooling")}}
    for flag, value in rows.items():
        assert f"| {flag} | validated ({value}) |" in readme, flag


def test_serving_benchmark_compares_every_backend_with_the_pipeline(tmp_path, exported_multitask_dir):
    run_benchmark("serving_speed", "--multitask_model", str(exported_multitask_dir), "--text_sets", "clothing",
                  "--num_reviews", "16", "--batch_size", "8", "--latency_reviews", "4", "--rounds", "1",
                  "--threads", "1", "2", results_dir=tmp_path)
    result = json.loads((tmp_path / "serving_speed.json").read_text())
    methods = {"pipeline", "torch", "torch_bf16", "onnx", "onnx_int8"}
    assert set(result["threads"]) == {"1", "2"}
    for per_set in result["threads"].values():
        clothing = per_set["clothing"]
        assert set(clothing["throughput"]) == set(clothing["latency"]) == methods
        assert all(row["reviews_per_s"] > 0 and row["p95_ms"] >= row["p50_ms"] > 0
                   for row in clothing["latency"].values())
        assert clothing["agreement_with_pipeline"]["onnx"]["max_rating_probability_difference"] < 1e-4
    fresh = result["fresh_process"]
    assert set(fresh) == methods and all(row["peak_rss_mb"] > 0 and row["cold_start_s"] > 0 for row in fresh.values())
    assert [name for name, row in fresh.items() if not row["torch_loaded"]] == ["onnx", "onnx_int8"]
    assert set(result["file_sizes_mb"]) == {"torch", "onnx", "onnx_int8"}
    assert result["command"].startswith("python -m benchmarks.serving_speed --multitask_model")
    assert drawn_figures(tmp_path) == {"serving_speed.png"}


def test_agreement_benchmark_scores_every_backend_against_torch_fp32(tmp_path, exported_multitask_dir):
    run_benchmark("onnx_agreement", "--multitask_model", str(exported_multitask_dir), "--max_reviews", "40",
                  results_dir=tmp_path)
    rows = json.loads((tmp_path / "onnx_agreement.json").read_text())["rating_age"]["backends"]
    assert set(rows) == {"torch", "torch_bf16", "onnx", "onnx_int8"}
    assert rows["torch"]["rating_agreement"] == 1 and rows["torch"]["max_rating_probability_gap"] == 0
    assert rows["onnx"]["max_rating_probability_gap"] < 1e-4 and rows["onnx"]["meets_bars"]
    assert all(0 <= row["test_rating_accuracy"] <= 1 and row["test_age_mae"] > 0 for row in rows.values())


def test_auto_backend_picked_the_fastest_meeting_the_bars_in_the_committed_results():
    """What `--backend auto` chose for the measured model on the measured CPU is the backend measured fastest there
    among those whose answers meet the agreement bars."""
    from benchmarks.common import load_result
    from reporting.results import fastest_backend
    from modeling.backends import AUTO, DEFAULT_BACKEND

    serving, agreement = load_result("serving_speed"), load_result("onnx_agreement")
    assert serving and agreement, "benchmarks/results/ lacks serving_speed.json or onnx_agreement.json"
    assert DEFAULT_BACKEND == AUTO and serving["cpu_flags"]
    assert serving["auto_choice"]["name"] == fastest_backend(serving, agreement)


def test_data_prep_benchmark_times_both_pipelines(tmp_path):
    require_shared_data(SHARED_DATA / "amazon_reviews.csv.gz")
    run_benchmark("data_prep_speed", "--rows", "20000", "--work_dir", str(tmp_path / "work"), results_dir=tmp_path)
    result = json.loads((tmp_path / "data_prep_speed.json").read_text())
    (size,) = result["results"]
    assert size["rows"] == 20000
    # Both pipelines keep the same reviews: the comparison is like for like.
    assert size["datasets"]["stages"]["filter"]["rows_out"] == size["pandas"]["stages"]["filter"]["rows_out"] > 0
    assert size["datasets_over_pandas"]["total"]["time"] > 0
    assert drawn_figures(tmp_path) == {"data_prep_speed.png"}


def test_labelling_benchmark_times_fit_and_labelling_of_every_review(tmp_path, monkeypatch):
    require_shared_data(SHARED_DATA / "amazon_reviews.csv.gz")
    run_benchmark("data_prep_speed", "--labelling", "--rows", "500", "1000", "--work_dir", str(tmp_path / "work"),
                  results_dir=tmp_path)
    result = json.loads((tmp_path / "labelling_speed.json").read_text())
    assert [size["rows"] for size in result["results"]] == [500, 1000]
    stages = result["results"][-1]["labelling"]["stages"]
    assert stages["label"]["rows_out"] == stages["fit"]["rows_out"] == 1000 and stages["label"]["rows_per_second"] > 0
    assert isinstance(result["machine"]["cpu_flags"], list) and result["resolved_precision"] in ("bf16", "fp32")
    from benchmarks import common
    from reporting import results

    scale = results.labelling_scale(result)
    assert scale["minutes"]["all 3,000,000 reviews of Review Full"] > scale["minutes"]["the 92,715 shared reviews"] > 0
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)  # the report from this file alone
    assert "**Topic labelling**" in results.readme_section(False) and "1,000 |" in results.results_page(False)


def test_kept_runs_are_keyed_by_the_training_code(tmp_path, monkeypatch):
    from benchmarks import run_cache

    files = {"train_multitask.py": "import modeling\nfrom data_prep.clothing import load\n",
             "modeling/__init__.py": "from .model import Model\n",
             "modeling/model.py": "def f():\n    from .helpers import g\n",
             "modeling/helpers.py": "g = 1\n", "modeling/serving.py": "s = 1\n",
             "data_prep/__init__.py": "", "data_prep/clothing.py": "from .text import clean\n",
             "data_prep/text.py": "clean = 1\n", "data_prep/topics.py": "t = 1\n"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(run_cache, "REPO_ROOT", tmp_path)
    assert {path.relative_to(tmp_path).as_posix() for path in run_cache.training_code_files()} == (
        set(files) - {"modeling/serving.py", "data_prep/topics.py"})
    before = run_cache.training_code_hash()
    (tmp_path / "data_prep/topics.py").write_text("t = 2\n")  # not imported by the training script
    assert run_cache.training_code_hash() == before
    for name in ("modeling/helpers.py", "data_prep/text.py", "train_multitask.py"):
        changed = run_cache.training_code_hash()
        (tmp_path / name).write_text((tmp_path / name).read_text() + "# changed\n")
        assert run_cache.training_code_hash() != changed, name

    key = {"seed": 1, "training_code": before}
    run_cache.keep(tmp_path / "runs", "row", key, {"m": 1.0})
    assert run_cache.find_kept(tmp_path / "runs", key) == {"m": 1.0}
    assert run_cache.find_kept(tmp_path / "runs", {**key, "training_code": "changed"}) is None


def test_topic_validity_scores_against_the_product_category_and_the_phrase_check():
    from benchmarks.topic_validity import against_targets, score

    truth = {"a novel": "Books", "an ebook": "Kindle_Store", "a film": "movies_tv", "an album": "Digital_Music",
             "guitar strings": "Musical_Instruments", "tax software": "software"}
    texts = [*truth, "I want a refund", "nice product"]
    labels = ["books", "movies", "movies", "music", "music", "other", "refund-and-return", "refund-and-return"]
    result = score(texts, labels, truth)
    assert result["media_precision"] == pytest.approx(3 / 5)  # the ebook called a movie, the guitar strings music
    assert result["accuracy_vs_expected_label"] == pytest.approx(3 / 4)
    assert result["non_media_given_media_label"] == pytest.approx(1 / 2)
    assert result["categories"]["Kindle_Store"]["own_label_share"] == 0.0
    assert result["themes"]["refund-and-return"] == {"reviews": 2, "phrase_precision": 0.5}
    checks = {check["target"]: check for check in against_targets({"labeller (with other)": result})}
    assert checks["media_precision"]["miss_by"] == pytest.approx(0.35)
    assert not checks["non_media_given_media_label"]["met"]
    assert against_targets({"labeller (six classes, --no_other_class)": result}) == []  # targets: default setup


def test_topic_validity_benchmark_runs_on_slices(tmp_path, tiny_encoder_dir, monkeypatch):
    from tests.conftest import write_amazon_slices

    require_shared_data(SHARED_DATA / "amazon_reviews.csv.gz")
    (tmp_path / "data").mkdir()
    write_amazon_slices(tmp_path / "data", rows_per_file=400)
    clothing = read_clothing_frame(require_shared_data(SHARED_DATA / "womens_clothing_reviews.csv.gz"), nrows=400)
    clothing.to_csv(tmp_path / "data" / "womens_clothing_reviews.csv.gz")  # the out-of-domain reviews
    monkeypatch.setenv("REVIEW_DATA_DIR", str(tmp_path / "data"))
    run_benchmark("topic_validity", "--model_name_or_path", str(tiny_encoder_dir), "--finetune_train_samples",
                  "64", results_dir=tmp_path)
    result = json.loads((tmp_path / "topic_validity.json").read_text())
    encoder = tiny_encoder_dir.name
    assert set(result["rows"]) == {
        "labeller (with other)", f"{encoder} frozen features (with other)", f"{encoder} fine-tuned (with other)",
        "labeller (six classes, --no_other_class)", f"{encoder} frozen features (six classes, --no_other_class)"}
    labeller = result["rows"]["labeller (with other)"]
    assert labeller["scored_reviews"] > labeller["reviews_with_a_category"] > 0
    assert result["truth"]["out_of_domain"].startswith("39 clothing reviews")
    assert all(0 <= row["out_of_domain_media_share"] <= 1 for row in result["rows"].values())
    assert "out_of_domain_media_share" in {check["target"] for check in result["targets"]}
    assert result["targets"] and drawn_figures(tmp_path) == {"topic_validity.png"}


def test_space_load_benchmark_serves_concurrent_clients_without_errors(tmp_path, exported_multitask_dir,
                                                                      exported_topic_dir):
    from tests.conftest import free_port

    run_benchmark("space_load", "--multitask_model", str(exported_multitask_dir), "--topic_model",
                  str(exported_topic_dir), "--clients", "4", "--batch_clients", "1", "--csv_rows", "20",
                  "--seconds", "4", "--port", str(free_port()), results_dir=tmp_path)
    result = json.loads((tmp_path / "space_load.json").read_text())
    assert result["errors"] == 0 and result["peak_rss_mb"] > 0 and result["cold_start_s"] > 0
    for name, row in result["endpoints"].items():
        assert row["requests"] > 0 and row["p99_ms"] >= row["p95_ms"] >= row["p50_ms"] > 0, name
    assert result["endpoints"]["batch"]["reviews_per_s"] == pytest.approx(
        20 * result["endpoints"]["batch"]["requests_per_s"], rel=0.01, abs=0.11)  # both rounded, slow when loaded
    assert isinstance(result["machine"]["cpu_flags"], list)


def test_report_states_the_served_default_and_each_decision_lever_against_two_standard_errors(tmp_path, monkeypatch):
    """A rerun of MiniLM's test stage on the current code (multitask_quality_MiniLM.json): the README speaks of what
    the pipeline serves, against TF-IDF and the targets, and of each rating lever measured on validation."""
    from benchmarks import common
    from benchmarks.multitask_selection import DEFAULTS
    from reporting import results

    committed = common.load_result("multitask_quality")
    (tmp_path / "multitask_quality.json").write_text(json.dumps(committed))

    def summary(values: dict, std: float = 0.004) -> dict:
        return {key: {"mean": value, "std": std} for key, value in values.items()}

    validation = summary({"rating_accuracy": 0.67, "rating_macro_f1": 0.49, "age_mae": 9.3,
                          "rating_offsets_cross_fit_gain": 0.004, "rating_offsets_cross_fit_standard_error": 0.006,
                          "rating_expected_macro_f1_gain": -0.03, "rating_expected_macro_f1_standard_error": 0.008,
                          "rating_expected_accuracy_gain": 0.002, "rating_expected_accuracy_standard_error": 0.005})
    served = summary({"rating_accuracy": 0.705, "rating_macro_f1": 0.53, "age_mae": 9.05, "age_rmse": 11.4})
    tfidf = next(row for name, row in committed["rows"].items() if name.startswith("TF-IDF +"))
    rerun = {**{key: committed[key] for key in ("command", "encoder", "data", "split_sizes", "precision")},
             "command": "python -m benchmarks.multitask_quality --bf16 --validated_settings", "training_code": "abc",
             "selected_settings": committed["selected_settings"], "runs_done": 3, "planned_runs": 3,
             "runs_missing": 0, "rows": {
                 "TF-IDF + LogisticRegression / Ridge": tfidf,
                 f"MiniLM {DEFAULTS}": {"seeds": 3, "settings": committed["selected_settings"],
                                        "validation": validation, "test": summary({"rating_accuracy": 0.69})},
                 "MiniLM defaults as served: stacking heads": {"seeds": 3, "validation": served, "test": served}}}
    (tmp_path / "multitask_quality_MiniLM.json").write_text(json.dumps(rerun))
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)

    readme = " ".join(results.readme_section(quick=False).split())
    assert "serves stacking heads" in readme and "accuracy 0.705, short of the 0.72 target" in readme
    assert "| MiniLM defaults as served: stacking heads † | 3 | 0.705 | 0.530 | 9.05 |" in readme
    assert "logit offsets, cross-fitted (5 folds), macro-F1 +0.004 ± 0.006 (no measurable difference)" in readme
    assert "expected-rating decoding, macro-F1 -0.030 ± 0.008 (worse)" in readme
    # TF-IDF's 0.661 accuracy against 0.705 ± 0.004/sqrt(3): better; its 9.16 years against 9.05: better
    assert "accuracy +0.044 ± 0.002 (better)" in readme and "-0.11 ± 0.00 (better) years" in readme
    page = " ".join(results.results_page(quick=False).split())
    assert "## The served default on the current training code" in page and "(target: better on both tasks by two " \
        "standard errors; met)" in page


def test_readme_table_shows_another_encoders_rows_and_its_line_quotes_what_it_serves(tmp_path, monkeypatch):
    """multitask_quality_<encoder>.json: its fine-tuned, stacking and served rows join the README's table (marked ‡
    with their file and training code; its TF-IDF and majority rows are the main file's), and the larger-encoder line
    quotes its served row where it has one, beside MiniLM's served row (the results page's table shows both rows)."""
    from benchmarks import common
    from reporting import results

    committed = common.load_result("multitask_quality")
    (tmp_path / "multitask_quality.json").write_text(json.dumps(committed))
    minilm = common.load_result("multitask_quality_MiniLM")
    (tmp_path / "multitask_quality_MiniLM.json").write_text(json.dumps(minilm))
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)

    def row(accuracy: float, macro_f1: float, age_mae: float) -> dict:
        test = {"rating_accuracy": {"mean": accuracy, "std": 0.0}, "rating_macro_f1": {"mean": macro_f1, "std": 0.0},
                "age_mae": {"mean": age_mae, "std": 0.0}}
        return {"seeds": 1, "validation": test, "test": test}

    encoder = {key: committed[key] for key in ("command", "data", "split_sizes", "precision", "selected_settings")}
    encoder.update({"encoder": "models/big-encoder", "training_code": "feedc0de", "encoder_speed": None, "runs_done": 1,
                    "planned_runs": 1, "runs_missing": 0, "rows": {
                        "majority class / median age": row(0.555, 0.143, 9.85),
                        "TF-IDF + LogisticRegression (C=4.0) / Ridge (alpha=3.0)": row(0.6, 0.4, 9.9),
                        "big-encoder defaults (multi-task)": row(0.701, 0.52, 9.01),
                        "TF-IDF + big-encoder defaults' encoder features (stacking)": row(0.707, 0.53, 8.96)}})
    path = tmp_path / "multitask_quality_big-encoder.json"
    path.write_text(json.dumps(encoder))
    readme = " ".join(results.readme_section(quick=False).split())
    assert "| big-encoder defaults (multi-task) ‡ | 1 | 0.701 | 0.520 | 9.01 |" in readme
    assert "| TF-IDF + big-encoder defaults' encoder features (stacking) ‡ | 1 | 0.707 | 0.530 | 8.96 |" in readme
    assert "| 0.600 |" not in readme and readme.count("| majority class / median age |") == 1
    assert "Rows marked ‡ fine-tune models/big-encoder on the same settings (multitask_quality_big-encoder.json, " \
           "training code feedc0de)" in readme
    assert "models/big-encoder with the same settings gives 0.701 accuracy" in readme

    encoder["rows"]["big-encoder defaults as served: stacking heads per task"] = row(0.706, 0.531, 8.97)
    path.write_text(json.dumps(encoder))
    readme = " ".join(results.readme_section(quick=False).split())
    served_name = next(name for name in minilm["rows"] if " as served" in name)
    served = minilm["rows"][served_name]["test"]
    assert "| big-encoder defaults as served: stacking heads per task ‡ | 1 | 0.706 | 0.531 | 8.97 |" in readme
    assert ("models/big-encoder with the same settings as served gives 0.706 accuracy, 0.531 macro-F1 and an age MAE "
            f"of 8.97 on test (1 seed; MiniLM's defaults as served above: {served['rating_accuracy']['mean']:.3f}") \
        in readme
    # The results page's table for the other encoder compares its served row with MiniLM's, once.
    page = results.results_page(quick=False).split("## A larger encoder: models/big-encoder", 1)[1].split("\n## ")[0]
    assert page.count(f"| {served_name} | 3 |") == 1 and "| big-encoder defaults as served" in page

    # Speed beside quality: training samples/s and serving reviews/s of both encoders, with the CPU that measured them.
    encoder["machine"] = {"cpu": "Some CPU", "cpu_cores": 2, "cpu_flags": ["avx2", "avx512_bf16"]}
    encoder["encoder_speed"] = {
        "MiniLM": {"train_samples_per_second": 23.7, "train_steps": 30, "pipeline_reviews_per_second": 79.0,
                   "serving_reviews": 256},
        "big-encoder": {"train_samples_per_second": 6.9, "train_steps": 30, "pipeline_reviews_per_second": 10.2,
                        "serving_reviews": 256}}
    path.write_text(json.dumps(encoder))
    readme = " ".join(results.readme_section(quick=False).split())
    assert ("trains at 6.9 samples/s and serves 10.2 reviews/s through `transformers.pipeline` against MiniLM's 23.7 "
            "and 79.0 (Some CPU, 2 cores, flags avx2, avx512_bf16)") in readme
