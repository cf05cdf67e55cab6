"""The README's serving tables and target lines, from `serving_speed.json` and `onnx_agreement.json`, and the backend
those files say the app should default to (the fastest that meets the agreement bars)."""

# serving_speed.py's name of each backend -> the app flags that select it
BACKEND_FLAGS = {"torch": "--backend torch", "torch_bf16": "--backend torch --bf16", "onnx": "--backend onnx",
                 "onnx_int8": "--backend onnx-int8"}
APP_BACKENDS = {"torch": "torch", "onnx": "onnx", "onnx_int8": "onnx-int8"}  # choices of --backend alone
THROUGHPUT_TARGET = 4.0  # × the pipeline's reviews/s at batch 32
LATENCY_TARGET_MS = 10.0  # p50, one review
TARGET_THREADS, TARGET_SET = "2", "clothing"


def meets_agreement_bars(agreement: dict, name: str) -> bool:
    """True when every task measured in onnx_agreement.json meets its bars on this backend."""
    tasks = [agreement[task] for task in ("rating_age", "topic") if task in agreement]
    return bool(tasks) and all(task["backends"][name]["meets_bars"] for task in tasks)


def fastest_app_backend(serving: dict, agreement: dict) -> str | None:
    """The app's `--backend` value with the most reviews/s at batch 32 on clothing reviews with 2 threads, among
    those that meet the agreement bars (torch is the reference and always does)."""
    speeds = serving["threads"].get(TARGET_THREADS, {}).get(TARGET_SET, {}).get("throughput", {})
    eligible = [name for name in APP_BACKENDS if name in speeds and (name == "torch" or meets_agreement_bars(agreement, name))]
    return APP_BACKENDS[max(eligible, key=lambda name: speeds[name]["reviews_per_s"])] if eligible else None


def serving_lines(serving: dict | None, agreement: dict | None) -> list[str]:
    if not serving:
        return []
    lines = [
        f"**Serving** (`{serving['command']}`; {serving['model']}, {serving['num_reviews']} real reviews per set, "
        f"{serving['cpu']}, torch {serving['torch']}, onnxruntime {serving['onnxruntime']}; serving_speed.json). "
        "Batch 1: one review per call through the app's whole `/rating_age` function (or `pipe(review)`), over "
        f"{serving['latency_reviews']} reviews; batch {serving['batch_size']}: the app given the reviews as requests "
        f"of {serving['batch_size']}, against `pipe(reviews, batch_size={serving['batch_size']})`, by wall clock and "
        "by the process's CPU time (the machine is shared: CPU time is what a quiet core would take); agreement: "
        "share of reviews given the pipeline's rating, and the largest gap in a rating probability:",
        "",
        "| threads | reviews | method (app flags) | batch 1 p50 / p95 (ms) | batch 1 p50 CPU (ms) | batch 1 reviews/s | "
        f"batch {serving['batch_size']} reviews/s | × pipeline (wall) | × pipeline (CPU time) | agreement with pipeline |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for threads, per_set in serving["threads"].items():
        for text_set, result in per_set.items():
            for name, speed in result["throughput"].items():
                latency = result["latency"][name]
                agreed = result["agreement_with_pipeline"].get(name)
                lines.append(
                    f"| {threads} | {text_set} | {'`transformers.pipeline`' if name == 'pipeline' else f'app `{BACKEND_FLAGS[name]}`'} | "
                    f"{latency['p50_ms']:.1f} / {latency['p95_ms']:.1f} | {latency['p50_cpu_ms']:.1f} | "
                    f"{latency['reviews_per_s']:.1f} | "
                    f"{speed['reviews_per_s']:.1f} | {result['throughput_speedup'][name]:.2f}× | "
                    f"{result['throughput_speedup_cpu_time'][name]:.2f}× | "
                    + (f"{agreed['same_rating']:.1%}, {agreed['max_rating_probability_difference']:.4f} |" if agreed else "— |"))
    before, after = (", ".join(f"{load:.1f}" for load in serving[key]) for key in ("load_average_before", "load_average_after"))
    lines += ["", f"Load average (1, 5, 15 min) before the run: {before}; after: {after}, on {serving['cpu_cores']} cores "
              "shared with other jobs.", "",
              f"| method | peak RSS serving {serving['num_reviews']} reviews at batch {serving['batch_size']}, fresh "
              "process (MB) | model file (MB) |", "|---|---|---|"]
    for name, peak in serving["peak_rss_mb"].items():
        size = serving["file_sizes_mb"].get(name if name in ("onnx", "onnx_int8") else "torch")
        label = "`transformers.pipeline`" if name == "pipeline" else f"app `{BACKEND_FLAGS[name]}`"
        lines.append(f"| {label} | {peak} | {size if size is not None else '—'} |")
    lines += ["", "The ONNX backends keep the torch model loaded too (its config and the pipeline's postprocess make "
              "each answer), so their RSS includes the torch weights.", ""]
    lines += agreement_lines(agreement)
    lines += ["![serving speed](benchmarks/results/serving_speed.png)", ""]
    return lines


def agreement_lines(agreement: dict | None) -> list[str]:
    if not agreement:
        return []
    bars = agreement["bars"]
    lines = [f"**Agreement with torch fp32 on trained models** (`{agreement['command']}`; onnx_agreement.json; bars: "
             f"top-1 agreement ≥ {bars['agreement']:.0%}, age mean absolute difference ≤ "
             f"{bars['age_mean_abs_difference_years']} years):", ""]
    if "rating_age" in agreement:
        task = agreement["rating_age"]
        lines += [f"Rating and age: {task['model']}, first {task['reviews']} reviews of the {task['split']}.", "",
                  "| backend | rating agreement | largest rating probability gap | age mean / max abs diff (years) | "
                  "test accuracy | test macro-F1 | test age MAE | meets bars |", "|---|---|---|---|---|---|---|---|"]
        for name, row in task["backends"].items():
            lines.append(f"| {name} | {row['rating_agreement']:.1%} | {row['max_rating_probability_gap']:.4f} | "
                         f"{row['age_mean_abs_difference_years']:.3f} / {row['age_max_abs_difference_years']:.2f} | "
                         f"{row['test_rating_accuracy']:.3f} | {row['test_rating_macro_f1']:.3f} | "
                         f"{row['test_age_mae']:.2f} | {'yes' if row['meets_bars'] else 'no'} |")
        lines.append("")
    if "topic" in agreement:
        task = agreement["topic"]
        lines += [f"Topic: {task['model']}, first {task['reviews']} reviews of the {task['split']}.", "",
                  "| backend | topic agreement | largest topic probability gap | test accuracy | test macro-F1 | "
                  "meets bars |", "|---|---|---|---|---|---|"]
        for name, row in task["backends"].items():
            lines.append(f"| {name} | {row['topic_agreement']:.1%} | {row['max_topic_probability_gap']:.4f} | "
                         f"{row['test_topic_accuracy']:.3f} | {row['test_topic_macro_f1']:.3f} | "
                         f"{'yes' if row['meets_bars'] else 'no'} |")
        lines.append("")
    return lines


def serving_target_lines(serving: dict | None, agreement: dict | None) -> list[str]:
    if not serving or TARGET_THREADS not in serving["threads"] or TARGET_SET not in serving["threads"][TARGET_THREADS]:
        return []
    default = fastest_app_backend(serving, agreement or {})
    name = next(key for key, value in APP_BACKENDS.items() if value == default)
    result = serving["threads"][TARGET_THREADS][TARGET_SET]
    ratio = result["throughput_speedup"][name]
    cpu_ratio = result["throughput_speedup_cpu_time"][name]
    latency, latency_cpu = result["latency"][name]["p50_ms"], result["latency"][name]["p50_cpu_ms"]
    lines = [
        f"- Serving default: `--backend {default}`, the fastest `--backend` choice at batch 32 on {TARGET_SET} reviews "
        f"with {TARGET_THREADS} threads whose answers meet the agreement bars.",
        f"- Serving at batch 32 ({TARGET_SET}, {TARGET_THREADS} threads, `--backend {default}`): {ratio:.2f}× the reviews/s "
        f"of `transformers.pipeline` by wall clock, {cpu_ratio:.2f}× by CPU time (target ≥ {THROUGHPUT_TARGET:.0f}×: "
        + ("met" if ratio >= THROUGHPUT_TARGET else f"missed by {THROUGHPUT_TARGET - ratio:.2f}×") + ").",
        f"- p50 latency of one review ({TARGET_SET}, {TARGET_THREADS} threads, `--backend {default}`): {latency:.1f} ms "
        f"by wall clock, {latency_cpu:.1f} ms of CPU time (target ≤ {LATENCY_TARGET_MS:.0f} ms: "
        + ("met" if latency <= LATENCY_TARGET_MS else f"missed by {latency - LATENCY_TARGET_MS:.1f} ms") + ").",
    ]
    bf16 = result["throughput_speedup"].get("torch_bf16")
    if bf16 and bf16 > ratio and agreement and meets_agreement_bars(agreement, "torch_bf16"):
        lines.append(f"- `--backend torch --bf16` is faster on this CPU ({bf16:.2f}×) and meets the bars, but is not the "
                     "default: its speed rests on the native bf16 kernels (AVX512-BF16/AMX) of this CPU, which many CPUs "
                     "lack; ONNX Runtime float32 needs none.")
    if default != "onnx-int8" and "onnx_int8" in result["throughput_speedup"]:
        lines.append(f"- `--backend onnx-int8`, which misses an agreement bar, reaches "
                     f"{result['throughput_speedup']['onnx_int8']:.2f}× at batch 32 and "
                     f"{result['latency']['onnx_int8']['p50_ms']:.1f} ms p50 for one review in the same run.")
    if agreement:
        verdicts = [f"{key}: {'met' if meets_agreement_bars(agreement, key) else 'not met'}"
                    for key in ("torch_bf16", "onnx", "onnx_int8")]
        lines.append("- Agreement bars with torch fp32 on the trained models (onnx_agreement.json): "
                     + ", ".join(verdicts) + ".")
    return lines
