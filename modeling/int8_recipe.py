"""An int8 export that gives the float32 answers: the matrix products whose quantization changes the most answers on
held-out reviews stay float32 (`nodes_to_exclude`), the rest are int8.

A per-node sensitivity pass quantizes one MatMul at a time and counts the reviews whose top-1 class (the first
output: rating or topic) then differs from float32's; the most sensitive nodes are kept float32, one more at a time,
until the whole int8 graph agrees with float32 on at least `bar` of the reviews; a quarter of the reviews is kept out of
that choice and confirms it. The choice, both agreements and the CPU it was measured on go to `onnx/int8_recipe.json`
(README, "Serving on ONNX Runtime").
"""

import hashlib
import json
import logging
import platform
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .cpu import cpu_flags

logger = logging.getLogger(__name__)

RECIPE_FILE = "int8_recipe.json"
CONFIRMATION_SHARE = 0.25  # of the agreement reviews, kept out of the node choice to confirm it
QUANTIZED_OPS = ["MatMul", "Gemm"]


def file_sha256(path: Path) -> str:
    """The recipe names the graph it describes: a later plain re-export beside it must not inherit its agreement."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def quantize(prepared: Path, output: Path, per_channel: bool, exclude: Sequence[str] = ()) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(prepared, output, op_types_to_quantize=QUANTIZED_OPS, per_channel=per_channel,
                     weight_type=QuantType.QInt8, nodes_to_exclude=list(exclude))


def padded_batches(tokenizer, texts: Sequence[str], batch_size: int = 32) -> list[tuple[list[int], dict]]:
    """Length-sorted, padding-tight batches of the texts as ONNX feeds, with the rows each batch holds."""
    encoded = tokenizer(list(texts), truncation=True, max_length=tokenizer.model_max_length,
                        return_token_type_ids=False)["input_ids"]
    order = sorted(range(len(encoded)), key=lambda index: len(encoded[index]))
    pad = tokenizer.pad_token_id or 0
    batches = []
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        longest = max(len(encoded[index]) for index in rows)
        input_ids = np.full((len(rows), longest), pad, dtype=np.int64)
        attention_mask = np.zeros((len(rows), longest), dtype=np.int64)
        for row, index in enumerate(rows):
            input_ids[row, :len(encoded[index])] = encoded[index]
            attention_mask[row, :len(encoded[index])] = 1
        batches.append((rows, {"input_ids": input_ids, "attention_mask": attention_mask}))
    return batches


def top_classes(path: Path, batches, output_name: str, count: int, offsets=None) -> np.ndarray:
    """The class each review is given: the argmax of the output plus the model's decision offsets (the multi-task
    model's `rating_logit_offsets`, which the pipeline adds), so agreement is counted on the answers served."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shift = np.asarray(offsets, dtype=np.float32) if offsets is not None else 0.0
    classes = np.zeros(count, dtype=np.int64)
    for rows, feeds in batches:
        classes[rows] = (session.run([output_name], feeds)[0] + shift).argmax(-1)
    return classes


def sensitive_nodes(prepared: Path, batches, reference: np.ndarray, output_name: str, per_channel: bool,
                    scratch: Path, offsets=None) -> list[tuple[str, float]]:
    """(node, share of reviews whose top-1 changes when only it is int8), most sensitive first."""
    import onnx

    nodes = [node.name for node in onnx.load(str(prepared)).graph.node if node.op_type in QUANTIZED_OPS]
    changed = []
    for node in nodes:
        quantize(prepared, scratch / "one.onnx", per_channel, exclude=[other for other in nodes if other != node])
        classes = top_classes(scratch / "one.onnx", batches, output_name, len(reference), offsets)
        changed.append((node, float((classes != reference).mean())))
    return sorted(changed, key=lambda item: -item[1])


def quantize_to_agree(prepared: Path, fp32_path: Path, int8_path: Path, tokenizer, texts: Sequence[str],
                      output_name: str, per_channel: bool, bar: float = 0.99, offsets=None,
                      confirmation_share: float = CONFIRMATION_SHARE) -> dict:
    """Write `int8_path` with the fewest float32 MatMuls (most sensitive first) that agree with float32's top-1 on
    at least `bar` of the first part of `texts`, then measure the agreement on the last `confirmation_share`, which
    chose nothing (the figure `--backend auto` trusts); return the recipe (also written as `int8_recipe.json`)."""
    import onnxruntime

    held_out = round(len(texts) * confirmation_share)
    texts, confirmation_texts = list(texts[:len(texts) - held_out]), list(texts[len(texts) - held_out:])
    batches = padded_batches(tokenizer, texts)
    reference = top_classes(fp32_path, batches, output_name, len(texts), offsets)
    with tempfile.TemporaryDirectory() as scratch:
        ranked = sensitive_nodes(prepared, batches, reference, output_name, per_channel, Path(scratch), offsets)
    excluded, agreement = [], 0.0
    for count in range(len(ranked) + 1):
        excluded = [node for node, _ in ranked[:count]]
        quantize(prepared, int8_path, per_channel, exclude=excluded)
        agreement = float((top_classes(int8_path, batches, output_name, len(texts), offsets) == reference).mean())
        logger.info("int8 with %d MatMuls kept float32: top-1 agreement %.4f on %d reviews", count, agreement,
                    len(texts))
        if agreement >= bar:
            break
    confirmed = None
    if confirmation_texts:
        confirmation = padded_batches(tokenizer, confirmation_texts)
        confirmed = float((top_classes(int8_path, confirmation, output_name, held_out, offsets)
                           == top_classes(fp32_path, confirmation, output_name, held_out, offsets)).mean())
        logger.info("int8 top-1 agreement on %d reviews that chose nothing: %.4f", held_out, confirmed)
    recipe = {"method": "dynamic int8, per-node sensitivity on held-out reviews", "per_channel": per_channel,
              "float32_nodes": excluded, "quantized_nodes": len(ranked) - len(excluded), "agreement_output": output_name,
              "decision_offsets": list(offsets) if offsets is not None else None,
              "top1_agreement": round(agreement, 4), "bar": bar, "reviews": len(texts),
              "confirmed_top1_agreement": round(confirmed, 4) if confirmed is not None else None,
              "confirmation_reviews": held_out,
              "sensitivity": {node: share for node, share in ranked if share > 0},
              "cpu": platform.processor() or platform.machine(), "machine": platform.machine(), "cpu_flags": cpu_flags(),
              "int8_sha256": file_sha256(int8_path),
              "onnxruntime": onnxruntime.__version__}
    (int8_path.parent / RECIPE_FILE).write_text(json.dumps(recipe, indent=2) + "\n")
    return recipe
