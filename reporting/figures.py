"""Every figure the README and docs/RESULTS.md show, drawn from a benchmark's results JSON
(benchmarks/results/<name>.json -> <name>.png): the benchmarks write JSON only, so a figure never disagrees with the
table beside it."""

import json
from pathlib import Path

import numpy as np

from benchmarks import common
from benchmarks.data_prep_speed import PIPELINES, STAGES
from benchmarks.multitask_selection import TARGETS, switched_off
from benchmarks.topic_validity import EXPECTED_LABEL

SERVING_COLORS = {"pipeline": "#9ca3af", "torch": "#6366f1", "torch_bf16": "#10b981", "onnx": "#f59e0b",
                  "onnx_int8": "#ef4444"}


def pyplot():
    """matplotlib.pyplot drawing to files only (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: Path, dpi: int = 110, rect=(0, 0, 1, 1)) -> None:
    figure.tight_layout(rect=rect)
    figure.savefig(path, dpi=dpi)
    pyplot().close(figure)


# How each kind of answer is drawn in every panel: marker, vertical offset within the row, colour, legend label.
ANSWER_STYLES = {"heads": ("o", 0.0, "C0", "the row's prediction (argmax)"),
                 "expected": ("D", 0.15, "C1", "expected rating"),
                 "served": ("s", 0.3, "C2", "as served")}


def multitask_quality(payload: dict, path: Path) -> None:
    """The test rows against the targets, and (where the file has one) the learning curve as <name>_curve.png."""
    plt, test_rows, curve = pyplot(), payload["rows"], payload.get("curve") or {}
    names = list(test_rows)
    panels = (("test rating accuracy", {"heads": "rating_accuracy", "expected": "rating_expected_accuracy",
                                        "served": "served_rating_accuracy"}, TARGETS["rating_accuracy"]),
              ("test rating macro-F1", {"heads": "rating_macro_f1", "expected": "rating_expected_macro_f1",
                                        "served": "served_rating_macro_f1"}, TARGETS["rating_macro_f1"]),
              ("test age MAE (years, lower is better)", {"heads": "age_mae", "served": "served_age_mae"},
               TARGETS["age_mae"]))
    # Dots with ± one standard deviation over seeds, not bars from zero: the rows differ by hundredths.
    figure, axes = plt.subplots(1, 3, figsize=(15, 0.45 * len(names) + 2.5), sharey=True)
    for axis, (title, keys, target) in zip(axes, panels):
        for kind, key in keys.items():
            marker, offset, color, label = ANSWER_STYLES[kind]
            shown = [(position, test_rows[name]["test"][key]) for position, name in enumerate(names)
                     if key in test_rows[name]["test"] and key not in switched_off(test_rows[name].get("settings", {}))]
            if shown:
                axis.errorbar([entry["mean"] for _, entry in shown], [position + offset for position, _ in shown],
                              xerr=[entry["std"] for _, entry in shown], fmt=marker, color=color, capsize=3,
                              label=label)
        axis.axvline(target, color="grey", linestyle="--", label="target")
        axis.set_title(title)
        axis.grid(axis="x", alpha=0.3)
    legend = {label: handle for axis in axes for handle, label in zip(*axis.get_legend_handles_labels())}
    figure.legend(legend.values(), legend.keys(), loc="lower center", ncol=len(legend), fontsize="small")
    axes[0].set_yticks(range(len(names)), names)
    axes[0].invert_yaxis()
    save_figure(figure, path, rect=(0, 0.4 / (0.45 * len(names) + 2.5), 1, 1))  # 0.4 inch for the legend's row
    if not curve:
        return
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    for axis, key, title in zip(axes, ("rating_accuracy", "rating_macro_f1", "age_mae"),
                                ("test rating accuracy", "test rating macro-F1", "test age MAE (years)")):
        sizes = [int(size) for size, point in curve.items() if key in point]
        for which, label in (("single", "single-task"), ("multi", "multi-task (defaults)")):
            axis.plot(sizes, [curve[str(size)][key][which] for size in sizes], marker="o", label=label)
        axis.set_xscale("log")
        axis.set_xlabel("training reviews")
        axis.set_title(title)
        axis.legend()
    save_figure(figure, path.with_name(f"{path.stem}_curve.png"))


def data_prep_speed(payload: dict, path: Path) -> None:
    results = payload["results"]
    figure, (time_axis, memory_axis) = pyplot().subplots(1, 2, figsize=(12, 4.5))
    sizes = [result["rows"] for result in results]
    positions = range(len(sizes))
    width = 0.38
    colors = {"read": "tab:blue", "filter": "tab:orange", "cleaning": "tab:green"}
    for offset, pipeline in zip((-width / 2, width / 2), PIPELINES):
        bottom = [0.0] * len(sizes)
        for name in STAGES:
            seconds = [result[pipeline]["stages"][name]["seconds"] for result in results]
            time_axis.bar([p + offset for p in positions], seconds, width, bottom=bottom, color=colors[name],
                          hatch="" if pipeline == "datasets" else "//", edgecolor="black",
                          label=f"{pipeline}: {name}")
            bottom = [b + s for b, s in zip(bottom, seconds)]
        memory_axis.bar([p + offset for p in positions], [result[pipeline]["peak_rss_mb"] for result in results],
                        width, hatch="" if pipeline == "datasets" else "//", edgecolor="black",
                        color="tab:purple" if pipeline == "datasets" else "tab:gray", label=f"{pipeline}: RSS")
        memory_axis.scatter([p + offset for p in positions], [result[pipeline]["peak_anon_mb"] for result in results],
                            marker="_", s=600, color="black", zorder=3,
                            label="without file-backed pages" if pipeline == "datasets" else None)
    labels = [f"{rows / 1e6:g}M rows" for rows in sizes]
    time_axis.set_xticks(list(positions), labels)
    memory_axis.set_xticks(list(positions), labels)
    time_axis.set_ylabel("seconds (stacked: read, filter, cleaning)")
    memory_axis.set_ylabel("peak RSS, MB (process tree)")
    target_mb = payload["targets"]["peak_rss_mb"]
    memory_axis.axhline(target_mb, color="red", linestyle="--", linewidth=1, label=f"{target_mb / 1024:g} GB target")
    time_axis.set_title("Time per stage (plain: datasets, hatched: pandas)")
    memory_axis.set_title("Peak memory")
    time_axis.legend(fontsize=7, ncol=2)
    memory_axis.legend(fontsize=8)
    save_figure(figure, path)


def serving_speed(payload: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    thread_counts = list(payload["threads"])
    figure = Figure(figsize=(6 * len(thread_counts), 7), layout="constrained")
    axes = figure.subplots(2, len(thread_counts), squeeze=False)
    for column, threads in enumerate(thread_counts):
        per_set = payload["threads"][threads]
        sets = list(per_set)
        for row, (measure_name, value, title) in enumerate((
                ("throughput", "reviews_per_s", f"reviews/s at batch {payload['batch_size']} (higher is better)"),
                ("latency", "p50_ms", "p50 ms, one review (lower is better)"))):
            names = list(per_set[sets[0]][measure_name])
            width = 0.8 / len(names)
            for offset, name in enumerate(names):
                heights = [per_set[text_set][measure_name][name][value] for text_set in sets]
                drawn = axes[row][column].bar([index + offset * width for index in range(len(sets))], heights, width,
                                              label=name, color=SERVING_COLORS[name])
                axes[row][column].bar_label(drawn, fmt="%.0f" if row == 0 else "%.1f", fontsize=7)
            axes[row][column].set_xticks([index + width * (len(names) - 1) / 2 for index in range(len(sets))], sets)
            axes[row][column].set_title(f"{threads} thread(s): {title}", fontsize=9)
            axes[row][column].legend(fontsize=7)
    figure.suptitle(f"{payload['model']}, {payload['num_reviews']} real reviews per set; {payload['cpu']}", fontsize=9)
    figure.savefig(path, dpi=80)


def topic_validity(payload: dict, path: Path) -> None:
    plt = pyplot()
    rows = list(payload["rows"])
    categories = list(EXPECTED_LABEL)
    figure, axis = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / len(rows)
    for index, row in enumerate(rows):
        entries = payload["rows"][row]["categories"]
        values = [entries[c].get("own_label_share", entries[c].get("media_label_share")) or 0 for c in categories]
        axis.bar(np.arange(len(categories)) + index * width, values, width, label=row)
    axis.set_xticks(np.arange(len(categories)) + 0.4 - width / 2,
                    [f"{c}\n→ {EXPECTED_LABEL[c] or 'media (want low)'}" for c in categories], fontsize=8)
    axis.axhline(0.8, color="grey", linestyle="--", linewidth=0.8)
    axis.axhline(0.05, color="grey", linestyle=":", linewidth=0.8)
    axis.set_ylabel("share of the category's test reviews")
    axis.set_title("Topic labels against the product category (test split)")
    axis.legend(fontsize=7)
    save_figure(figure, path)


def training_speed(payload: dict, path: Path) -> None:
    runs = payload["runs"]
    figure, axis = pyplot().subplots(figsize=(8, 2.6))
    names = list(runs)
    axis.barh(names, [runs[name]["train_samples_per_second"] for name in names],
              color=["#999999", "#4c72b0", "#10b981"][: len(names)])
    axis.set_xlabel("training samples / s")
    axis.invert_yaxis()
    save_figure(figure, path)


# benchmark -> its figure; a results file <benchmark>.json or <benchmark>_<mode or encoder>.json gets one
FIGURES = {"multitask_quality": multitask_quality, "data_prep_speed": data_prep_speed, "serving_speed": serving_speed,
           "topic_validity": topic_validity, "training_speed": training_speed}


def draw_all(results_dir: Path | None = None) -> list[Path]:
    """Draws the figure of every results file in `results_dir` (default: the benchmarks' results folder) that has
    one, next to it; returns those figures (a multi-task file's learning curve goes beside its figure as well)."""
    drawn = []
    for json_path in sorted(Path(results_dir or common.RESULTS_DIR).glob("*.json")):
        benchmark = next((name for name in FIGURES
                          if json_path.stem == name or json_path.stem.startswith(f"{name}_")), None)
        if benchmark is not None:
            FIGURES[benchmark](json.loads(json_path.read_text()), json_path.with_suffix(".png"))
            drawn.append(json_path.with_suffix(".png"))
    return drawn
