"""Training throughput: dynamic padding + length-grouped batches (our default) against padding every batch to
max_seq_length with random batches (the original scripts' way), same model, steps, seed and data.

Both runs train the same number of steps on the same rows, so they see the same amount of data; their test
metrics are reported beside the speed so "faster at equal quality" can be checked. Where the machine runs bf16 fast
(a bf16 GPU, or a CPU with native bf16 kernels) a third run adds bf16 mixed precision to our default.

    python -m benchmarks.training_speed [--quick] [--steps N] [--max_seq_length L]

Writes benchmarks/results/training_speed[_quick].json.
"""

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from benchmarks.common import (
    SPLIT_SEED, bf16_training_flags, clothing_reviews_file, command_line, packaged_minilm, run_script_measured,
    write_json,
)

logger = logging.getLogger("training_speed")

MODES = {
    "pad to max_seq_length, random batches": ["--pad_to_max_length", "--train_sampling_strategy", "random"],
    "dynamic padding + length grouping (default)": [],
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 steps instead of 400")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--max_seq_length", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--model_name_or_path", default=None)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    steps = arguments.steps or (100 if arguments.quick else 400)
    model_path = arguments.model_name_or_path or packaged_minilm()

    modes = dict(MODES)
    if bf16_flags := bf16_training_flags():
        modes["dynamic padding + length grouping + bf16"] = bf16_flags
    runs = {}
    with tempfile.TemporaryDirectory() as work_dir:
        for mode, flags in modes.items():
            output_dir = Path(work_dir) / f"run_{len(runs)}"
            measured = run_script_measured("train_multitask.py", [
                "--model_name_or_path", model_path, "--train_file", str(clothing_reviews_file()), "--output_dir", str(output_dir),
                "--do_train", "--do_predict", "--max_steps", str(steps), "--seed", "42", "--split_seed", str(SPLIT_SEED),
                "--max_seq_length", str(arguments.max_seq_length), "--per_device_train_batch_size",
                str(arguments.batch_size), "--per_device_eval_batch_size", "64", "--learning_rate", "1e-4",
                "--warmup_steps", "0.06", "--age_loss_weight", "0.5", "--save_strategy", "no", "--report_to", "none",
                "--disable_tqdm", "true", *flags,
            ])
            results = json.loads((output_dir / "all_results.json").read_text())
            runs[mode] = {
                "flags": flags,
                "train_samples_per_second": results["train_samples_per_second"],
                "train_runtime_seconds": results["train_runtime"],
                "test_rating_accuracy": results["test_rating_accuracy"],
                "test_rating_macro_f1": results["test_rating_macro_f1"],
                "test_age_mae": results["test_age_mae"],
                **measured,
            }
            logger.info("%s: %s", mode, runs[mode])

    baseline, ours = (runs[mode] for mode in MODES)
    speedup = ours["train_samples_per_second"] / baseline["train_samples_per_second"]
    for run in runs.values():
        run["speedup"] = round(run["train_samples_per_second"] / baseline["train_samples_per_second"], 2)
    name = "training_speed_quick" if arguments.quick else "training_speed"
    payload = {
        "command": command_line("training_speed", sys.argv[1:]),
        "encoder": model_path, "data": clothing_reviews_file().name, "steps": steps, "batch_size": arguments.batch_size,
        "max_seq_length": arguments.max_seq_length, "runs": runs, "speedup": round(speedup, 2),
    }
    write_json(name, payload)
    print(f"dynamic padding + length grouping: {speedup:.2f}x the samples/s of padding to {arguments.max_seq_length}")


if __name__ == "__main__":
    main()
