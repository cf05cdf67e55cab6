"""The README's results summary and docs/RESULTS.md, written from the benchmarks' JSON under benchmarks/results/
through the Markdown templates in reporting/templates/, so every figure in them traces back to a file a benchmark
wrote. The benchmarks only measure and write JSON; the wording lives in the templates, the verdicts here.

    python -m reporting.results [--quick]     # or: python -m benchmarks.run_all --report_only [--quick]
"""

import argparse
import json
import re
import shlex
import textwrap
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from benchmarks import common
from reporting import figures
from benchmarks.multitask_selection import COMBINED, DEFAULTS, SELECTION_ROWS, settings_flags, switched_off
from benchmarks.multitask_selection import TARGETS as QUALITY_TARGETS
from benchmarks.topic_validity import EXPECTED_LABEL, NON_MEDIA
from benchmarks.topic_validity import TARGETS as VALIDITY_TARGETS
from data_prep.topic_model import OTHER_LABEL

START_MARKER, END_MARKER = "<!-- results:start -->", "<!-- results:end -->"
README, RESULTS_PAGE = Path("README.md"), Path("docs") / "RESULTS.md"  # relative to the repo root
TEMPLATES = Path(__file__).with_name("templates")
# The app's flags for each backend the serving benchmarks measure
BACKEND_FLAGS = {"torch": "--backend torch", "torch_bf16": "--backend torch --bf16", "onnx": "--backend onnx",
                 "onnx_int8": "--backend onnx-int8"}
SERVING_TARGETS = {"throughput": 4.0, "latency_ms": 10.0, "threads": "2", "text_set": "clothing", "cold_start_s": 5.0,
                   "peak_rss_mb": 400}
# (target, higher is better): the multi-task defaults on the test split, training speed (× padding to max length) and
# data prep at the largest size (× pandas' time and peak memory)
TARGETS = {**{name: (value, name != "age_mae") for name, value in QUALITY_TARGETS.items()},
           "training_speedup": (1.5, True), "data_prep_time": (1.0, False), "data_prep_memory": (0.33, False),
           "labelling_minutes": (5.0, False), "labelling_memory_growth": (1.1, False)}
# Amazon review counts the labelling projection speaks of: the shared files, the seed's Amazon-mention filter on Review
# Full, and all of Review Full
# The packaged MiniLM's test stage measured again on its selected settings (`--validated_settings`): the served default
# on the current training code
SERVED_RESULTS = "multitask_quality_MiniLM"
LABELLING_SIZES = {"the 92,715 shared reviews": 92_715,
                   "112,106 reviews (the seed's count after the Amazon-mention filter, without reading Review Full)": 112_106,
                   "all 3,000,000 reviews of Review Full": 3_000_000}


def target_words(value: float, target: float, higher_is_better: bool, unit: str = "") -> str:
    """A figure against its target in plain words: "meeting the 0.72 target", "short of ...", "over ..."."""
    met = value >= target if higher_is_better else value <= target
    return f"{'meeting' if met else 'short of' if higher_is_better else 'over'} the {target:g}{unit} target"


def against(value: float, target: float, higher_is_better: bool, digits: int = 3, unit: str = "") -> str:
    return f"{value:.{digits}f}{unit}, {target_words(value, target, higher_is_better, unit)}"


def target(name: str, value: float, digits: int = 3, unit: str = "") -> str:
    """`against` one of TARGETS."""
    return against(value, *TARGETS[name], digits, unit)


def difference_verdict(gain: float, standard_error: float) -> str:
    """The benchmark's rule for a difference (gain: positive is better): it counts past two standard errors."""
    return ("better" if gain > 2 * standard_error else "worse" if gain < -2 * standard_error
            else "no measurable difference")


def versus_baseline(ours: dict, baseline: dict, seeds: int, higher_is_better: bool, digits: int) -> tuple[str, bool]:
    """The defaults' mean minus a baseline, and whether it beats it by the benchmark's `difference_verdict` rule."""
    difference = ours["mean"] - baseline["mean"]
    if seeds < 2:
        return f"{difference:+.{digits}f} (one seed: no standard error yet)", False
    se = ours["std"] / seeds ** 0.5
    judged = difference_verdict(difference if higher_is_better else -difference, se)
    return f"{difference:+.{digits}f} ± {se:.{digits}f} ({judged})", judged == "better"


def current_command(recorded: str) -> str:
    """A results file's command as it is typed today: files written before the benchmarks ran as modules say
    `python benchmarks/serving_speed.py --multitask-model ...`, today `python -m benchmarks.serving_speed
    --multitask_model ...` (the same run)."""
    words = shlex.split(recorded)
    if len(words) > 1 and words[1].startswith("benchmarks/"):
        words[1:2] = ["-m", words[1].removesuffix(".py").replace("/", ".")]
    return shlex.join("--" + word[2:].replace("-", "_") if word.startswith("--") else word for word in words)


def cell(summary: dict, key: str, seeds: int, digits: int = 3, off: set = frozenset()) -> str:
    """A metric's mean (± standard deviation over seeds), or — where it was not measured or its task was off."""
    if key not in summary or key in off:
        return "—"
    stat = summary[key]
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}" if seeds > 1 else f"{stat['mean']:.{digits}f}"


def number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def flag_value(flags: list[str], flag: str) -> str:
    return flags[flags.index(flag) + 1]


def curve_points(curve: dict, key: str, lower_is_better: bool) -> list[str]:
    """Per training size, multi-task minus single-task on one metric, judged by the benchmark's rule."""
    points = []
    for size, point in curve.items():
        if key not in point:
            continue
        entry, se = point[key], point[key]["standard_error"]
        gain = -entry["difference"] if lower_is_better else entry["difference"]
        judged = "one seed: no standard error yet" if se is None else difference_verdict(gain, se)
        judged = f"multi-task {judged}" if judged in ("better", "worse") else judged
        points.append(f"{int(size):,} reviews: {entry['difference']:+.3f}" + (f" ± {se:.3f}" if se is not None else "")
                      + f" ({judged})")
    return points


def single_task_verdict(entry: dict, lower_is_better: bool) -> str:
    """A single-task model against multi-task on one curve point, in words."""
    if entry["standard_error"] is None:
        return "one seed: no standard error yet"
    gain = entry["difference"] if lower_is_better else -entry["difference"]  # the single-task model's gain
    judged = difference_verdict(gain, entry["standard_error"])
    return f"measurably {judged}" if judged in ("better", "worse") else judged


def selection_verdict(payload: dict, name: str) -> str:
    """The "chosen" column of a selection row: the selected row, a part of it, its lever's winner, or not."""
    row, chosen, winners = payload["selection"][name], payload["selected_row"], payload["selection_winners"]
    chosen_changes = payload["selection"][chosen]["changes"].items() if chosen else {}.items()
    return ("—" if winners is None or row["lever"] is None else "yes" if name == chosen else
            "part of the chosen" if row["changes"].items() <= chosen_changes else
            "best of its lever, not kept" if name in winners.values() else "no")


def method_label(name: str) -> str:
    """How the serving tables name a measured method: the pipeline, or the app with its flags."""
    return "`transformers.pipeline`" if name == "pipeline" else f"app `{BACKEND_FLAGS[name]}`"


def meets_agreement_bars(agreement: dict, name: str) -> bool:
    """True when every task measured in onnx_agreement.json meets its bars on this backend."""
    tasks = [agreement[task] for task in ("rating_age", "topic") if task in agreement]
    return bool(tasks) and all(task["backends"][name]["meets_bars"] for task in tasks)


def fastest_backend(serving: dict, agreement: dict) -> str | None:
    """The backend with the most reviews/s at batch 32 on clothing reviews with 2 threads, among those that meet the
    agreement bars (torch is the reference and always does): what `--backend auto` should pick on that machine."""
    speeds = target_serving(serving).get("throughput", {})
    eligible = [name for name in BACKEND_FLAGS
                if name in speeds and (name == "torch" or meets_agreement_bars(agreement, name))]
    return max(eligible, key=lambda name: speeds[name]["reviews_per_s"]) if eligible else None


def bar_verdicts(agreement: dict) -> str:
    return ", ".join(f"{key}: {'met' if meets_agreement_bars(agreement, key) else 'not met'}"
                     for key in ("torch_bf16", "onnx", "onnx_int8"))


def target_serving(serving: dict | None) -> dict:
    """The serving results the targets speak of (clothing reviews, 2 threads), or {}."""
    return (serving or {}).get("threads", {}).get(SERVING_TARGETS["threads"], {}).get(SERVING_TARGETS["text_set"], {})


def first_available(*names: str) -> tuple[str | None, dict | None]:
    for name in names:
        if (payload := common.load_result(name)) is not None:
            return name, payload
    return None, None


def in_mode(quick: bool, name: str) -> tuple[str | None, dict | None]:
    """A benchmark's quick-mode file in quick mode; else its full one, or the quick one where that is all there is."""
    return first_available(*([f"{name}_quick"] if quick else [name, f"{name}_quick"]))


def defaults_row(rows: dict) -> dict | None:
    """The defaults' row of a multi-task results file (named with its encoder's prefix), or None."""
    return next((row for name, row in rows.items() if name.endswith(DEFAULTS)), None)


def served_row_name(rows: dict) -> str | None:
    """The name of the `... as served ...` row of a multi-task results file (what its pipeline answers), or None."""
    return next((name for name in rows if " as served" in name), None)


def is_tfidf_baseline(row_name: str) -> bool:
    """TF-IDF alone (not the stacking row, whose name also starts with TF-IDF)."""
    return row_name.startswith("TF-IDF +") and "stacking" not in row_name


def multitask_results(quick: bool) -> dict | None:
    """The multi-task payload with what the tables and targets derive from it: the defaults and TF-IDF rows."""
    name, payload = in_mode(quick, "multitask_quality")
    if payload is None or "selection" not in payload:
        return None
    rows = payload["rows"]
    result = {"name": name, "p": payload,
              "defaults": defaults_row(rows),
              "tfidf": next((row for key, row in rows.items() if is_tfidf_baseline(key)), None),
              "combinations": sum(row["lever"] == COMBINED for row in payload["selection"].values()),
              "has_stacking": any("stacking" in row for row in rows),
              "serves_stacking": served_row_name(rows) is not None,
              "not_kept": [f"{row} ({100 * entry['change']:+.1f}%)" for row, entry in payload["selection"].items()
                           if entry["lever"] == COMBINED and row != payload["selected_row"]],
              "peak_rss": [run["peak_rss_mb"] for row in rows.values() for run in row.get("runs", [])
                           if run.get("peak_rss_mb")]}
    if result["defaults"] and result["tfidf"]:
        seeds, test, tfidf = result["defaults"]["seeds"], result["defaults"]["test"], result["tfidf"]["test"]
        result["versus_tfidf"] = {key: versus_baseline(test[key], tfidf[key], seeds, key != "age_mae", digits)
                                  for key, digits in (("rating_accuracy", 3), ("age_mae", 2))}
        result["not_beaten"] = [task for task, key in (("accuracy", "rating_accuracy"), ("age MAE", "age_mae"))
                                if not result["versus_tfidf"][key][1]]
        result["curve_wins"] = [f"{int(size):,}" for size, point in payload["curve"].items()
                                if {"rating_accuracy", "age_mae"} <= point.keys()
                                and point["rating_accuracy"]["difference"] >= 0 and point["age_mae"]["difference"] <= 0]
    return result


def other_encoders() -> list[dict]:
    """The multi-task benchmark's --validated_settings results for other encoders
    (multitask_quality_<encoder folder>.json), each with its defaults row, its served row (None from training code
    that did not serve them) and the rows the README's table shows: all but the majority class and TF-IDF, which are
    the main file's."""
    paths = [path for path in sorted(common.RESULTS_DIR.glob("multitask_quality_*.json"))
             if path.stem not in ("multitask_quality_quick", SERVED_RESULTS)]
    encoders = []
    for path in paths:
        payload = json.loads(path.read_text())
        rows = {name: row for name, row in payload["rows"].items()
                if not name.startswith("majority") and not is_tfidf_baseline(name)}
        encoders.append({"name": path.stem, "p": payload, "defaults": defaults_row(payload["rows"]), "rows": rows,
                         "served": rows.get(served_row_name(rows))})
    return encoders


def served_default(quick: bool) -> dict | None:
    """The served default (train_multitask.py's defaults as the pipeline answers: the `... as served ...` row) from
    the newest measurement of the packaged MiniLM: the test stage rerun on the selected settings
    (SERVED_RESULTS.json) where there is one, else the main results file; with its model-heads row, TF-IDF, the
    comparison with TF-IDF and the decision levers measured on validation. None where no run measured it."""
    for name in ([] if quick else [SERVED_RESULTS]) + [in_mode(quick, "multitask_quality")[0]]:
        payload = common.load_result(name) if name else None
        rows = (payload or {}).get("rows", {})
        served_name = served_row_name(rows)
        if served_name is None:
            continue
        served = rows[served_name]
        heads, tfidf = defaults_row(rows), next(row for key, row in rows.items() if is_tfidf_baseline(key))
        seeds = served["seeds"]
        return {"name": name, "p": payload, "row_name": served_name, "row": served, "heads": heads, "tfidf": tfidf,
                "stacking": stacking_choice(served),
                "versus_tfidf": {key: versus_baseline(served["test"][key], tfidf["test"][key], seeds,
                                                      key != "age_mae", digits)
                                 for key, digits in (("rating_accuracy", 3), ("rating_macro_f1", 3), ("age_mae", 2))},
                "levers": decision_levers(heads["validation"])}
    return None


def stacking_choice(served: dict) -> str:
    """What the served row's stacking heads served: per task where the runs chose on validation, else both tasks
    (training code from before that choice)."""
    chosen = served.get("stacking_seeds")
    if not chosen:
        return "stacking heads for both tasks"
    seeds = served["seeds"]
    return (f"stacking heads for each task where they beat the model's own head on validation (in these runs: the "
            f"rating in {chosen['rating']} and the age in {chosen['age']} of {seeds} seed{'s' if seeds > 1 else ''})")


def decision_levers(validation: dict) -> list[dict]:
    """Each rating decision lever measured on validation (mean over seeds of its gain over the argmax and of the gain's
    bootstrap standard error) and the benchmark's verdict on it."""
    names = {"rating_offsets_cross_fit": "logit offsets, cross-fitted (5 folds), macro-F1",
             "rating_expected_macro_f1": "expected-rating decoding, macro-F1",
             "rating_expected_accuracy": "expected-rating decoding, accuracy"}
    levers = []
    for key, name in names.items():
        if f"{key}_gain" in validation:
            gain, se = validation[f"{key}_gain"]["mean"], validation[f"{key}_standard_error"]["mean"]
            levers.append({"name": name, "gain": gain, "standard_error": se,
                           "verdict": difference_verdict(gain, se)})
    return levers


def labeller_selection(selection: dict | None) -> dict | None:
    """The labeller's selected decision settings, their validation figures, and those of topics alone."""
    if selection is None or selection["selected_decision"] is None:
        return None
    chosen = selection["selected_decision"]
    rows = {json.dumps(row["decision"], sort_keys=True): row["validation"] for row in selection["rows"]}
    alone = {**chosen, "review_weight": 0.0, "review_temperature": selection["grid"]["review_temperature"][0]}
    return {"chosen": chosen, "picked": rows[json.dumps(chosen, sort_keys=True)],
            "alone": rows.get(json.dumps(alone, sort_keys=True))}


def duration(minutes: float) -> str:
    return f"{minutes / 60:.1f} hours" if minutes > 120 else f"{minutes:.0f} minutes"


def labelling_scale(payload: dict | None) -> dict | None:
    """The labelling benchmark's label-stage rate at its largest size, the growth of peak anonymous memory from the
    second largest size to the largest (flat: at most TARGETS' 1.1×), and, from two sizes on, the minutes of the
    whole labelling (fit + label) at LABELLING_SIZES from a straight line through the measured (rows, seconds)."""
    if not payload or not payload["results"]:
        return None
    sizes = [(size["rows"], size["labelling"]) for size in payload["results"]]
    rows, seconds = [rows for rows, _ in sizes], [measured["total_seconds"] for _, measured in sizes]
    slope, intercept = np.polyfit(rows, seconds, 1) if len(rows) > 1 else (None, None)
    largest = sizes[-1][1]
    return {"p": payload, "label_rate": largest["stages"]["label"]["rows_per_second"], "largest": sizes[-1][0],
            "minutes": {name: (intercept + slope * count) / 60 for name, count in LABELLING_SIZES.items()}
            if slope is not None else None,
            "growth": (largest["peak_anon_mb"] / sizes[-2][1]["peak_anon_mb"], sizes[-2][0]) if len(sizes) > 1 else None}


def context(quick: bool) -> dict:
    """Everything the templates read: the results files of this mode and the verdicts drawn from them."""
    serving, agreement = common.load_result("serving_speed"), common.load_result("onnx_agreement")
    validity, selection = common.load_result("topic_validity"), common.load_result("topic_labeller_selection")
    auto_choice = (serving or {}).get("auto_choice") if target_serving(serving) else None
    names = {"training speed": "training_speed", "multi-task quality": "multitask_quality"}
    return {
        "quick": quick, "run": common.load_result("run_all_quick" if quick else "run_all"),
        "other_run": common.load_result("run_all" if quick else "run_all_quick"),
        "quick_tables": [title for title, name in names.items() if (in_mode(quick, name)[0] or "").endswith("_quick")],
        "multitask": multitask_results(quick), "encoders": [] if quick else other_encoders(),
        "served_default": served_default(quick),
        "training": dict(zip(("name", "p"), in_mode(quick, "training_speed"))),
        "validity": validity, "selection": selection, "labeller": labeller_selection(selection),
        "validity_check": lambda name: next((check for check in (validity or {}).get("targets", [])
                                             if check["target"] == name), None),
        "serving": serving, "agreement": agreement, "data_prep": common.load_result("data_prep_speed"),
        "labelling": labelling_scale(in_mode(quick, "labelling_speed")[1]),
        "labelling_fp32": None if quick else labelling_scale(common.load_result("labelling_speed_fp32")),
        "auto_choice": auto_choice, "served": target_serving(serving),
        "default_name": auto_choice["name"] if auto_choice else None,
        "fastest_name": fastest_backend(serving, agreement or {}) if target_serving(serving) else None,
    }


def environment() -> Environment:
    templates = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, trim_blocks=True,
                            lstrip_blocks=True, keep_trailing_newline=True)
    templates.filters["fmt"] = format
    templates.filters["command"] = current_command
    templates.globals.update(
        against=against, target=target, duration=duration, target_words=target_words, cell=cell, number=number, flag_value=flag_value,
        curve_points=curve_points, single_task_verdict=single_task_verdict, selection_verdict=selection_verdict,
        method_label=method_label, bar_verdicts=bar_verdicts, COMBINED=COMBINED, OTHER_LABEL=OTHER_LABEL,
        media_categories=[category for category, label in EXPECTED_LABEL.items() if label],
        switched_off=switched_off, settings_flags=settings_flags, difference_verdict=difference_verdict,
        meets_agreement_bars=meets_agreement_bars, TARGETS=TARGETS, SERVING_TARGETS=SERVING_TARGETS,
        BACKEND_FLAGS=BACKEND_FLAGS, DEFAULTS=DEFAULTS, SELECTION_ROWS=SELECTION_ROWS, EXPECTED_LABEL=EXPECTED_LABEL,
        NON_MEDIA=NON_MEDIA, VALIDITY_TARGETS=VALIDITY_TARGETS)
    return templates


def tidy(markdown: str, width: int = 120) -> str:
    """One blank line between blocks, and each paragraph and list item wrapped at `width` (the templates wrap their
    lines where their source reads best); headings, tables, images and comments stay as they are."""
    blocks, block = [], []
    for line in [*markdown.splitlines(), ""]:
        if line.strip() and not line.startswith("#"):
            block.append(line)
            continue
        blocks += [block] if block else []
        blocks, block = blocks + ([[line]] if line.startswith("#") else []), []
    return "\n\n".join(wrapped(block, width) for block in blocks) + "\n"


def wrapped(block: list[str], width: int) -> str:
    if block[0].startswith(("#", "|", "![", "<!--")):
        return "\n".join(block)
    items = []  # a paragraph, or the items of a list
    for line in block:
        if line.startswith("- ") or not items:
            items.append(line.strip())
        else:
            items[-1] += " " + line.strip()
    lines = [line for item in items for line in textwrap.wrap(
        item, width, subsequent_indent="  " if item.startswith("- ") else "", break_long_words=False,
        break_on_hyphens=False)]
    for index in range(len(lines) - 1, 0, -1):  # a line that would start a list, quote, heading or table joins the last
        if re.match(r"([-+*>#|]|\d+[.)])( |$)", lines[index].lstrip()) and not lines[index].startswith("- "):
            lines[index - 1] += " " + lines.pop(index).lstrip()
    return "\n".join(lines)


def readme_section(quick: bool) -> str:
    """The README's results section, markers included: the headline figures and what they mean for a user."""
    text = environment().get_template("readme_results.md.j2").render(context(quick), images="benchmarks/results/")
    return f"{START_MARKER}\n{tidy(text)}{END_MARKER}"


def results_page(quick: bool) -> str:
    """docs/RESULTS.md: every table, how each was measured and the command behind it."""
    return tidy(environment().get_template("results.md.j2").render(context(quick), images="../benchmarks/results/"))


def write(quick: bool, root: Path = common.REPO_ROOT) -> None:
    """Redraws the figures and rewrites the README's results section and docs/RESULTS.md from the results files."""
    figures.draw_all()
    readme = root / README
    text = readme.read_text()
    before, rest = text.split(START_MARKER, 1)
    readme.write_text(before + readme_section(quick) + rest.split(END_MARKER, 1)[1])
    (root / RESULTS_PAGE).parent.mkdir(exist_ok=True)
    (root / RESULTS_PAGE).write_text(results_page(quick))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Prefer the benchmarks' quick-mode results files")
    write(parser.parse_args().quick)
    print(f"Wrote the results section of {README} and {RESULTS_PAGE}")


if __name__ == "__main__":
    main()
