"""An int8 export that gives the float32 answers: the matrix products whose quantization changes the most answers on
held-out reviews stay float32 (`nodes_to_exclude`), the rest are int8.

A per-node sensitivity pass quantizes one MatMul at a time and counts the reviews whose served class (`TopOneDecision`:
the rating or topic as the model's pipeline decides it) then differs from float32's; the most sensitive nodes are kept
float32, one more at a time, until the whole int8 graph agrees with float32 on at least `bar` of the reviews; a
quarter of the reviews is kept out of that choice and confirms it. The choice, both agreements and the CPU it was
measured on go to `onnx/int8_recipe.json` (README, "Serving on ONNX Runtime").
"""

import hashlib
import json
import logging
import platform
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cpu import cpu_flags
from .stacking_heads import StackingHeads

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


@dataclass
class TopOneDecision:
    """How the class served for a review is read off the graph's outputs, as the model's pipeline decides it: the
    argmax of `output_name` (rating or topic logits), or, for a model whose rating its `stacking_heads` serve, of the
    heads' rating logits on the review's text and review vector; plus the model's decision `offsets` (the multi-task model's
    `rating_logit_offsets`) when it has them. Agreement is counted on the answers served."""

    output_name: str
    offsets: Sequence[float] | None = None
    stacking_heads: StackingHeads | None = None

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.output_name, "review_vector") if self.stacking_heads is not None else (self.output_name,)

    def classes(self, outputs: dict[str, np.ndarray], texts: Sequence[str]) -> np.ndarray:
        logits = (outputs[self.output_name] if self.stacking_heads is None
                  else self.stacking_heads.predict(list(texts), outputs["review_vector"])[0])
        return (logits + (np.asarray(self.offsets) if self.offsets is not None else 0.0)).argmax(-1)


def top_classes(path: Path, batches, texts: Sequence[str], decision: TopOneDecision) -> np.ndarray:
    """The class served for each of `texts` (in `batches`, from `padded_batches`) by the graph at `path`."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    classes = np.zeros(len(texts), dtype=np.int64)
    for rows, feeds in batches:
        outputs = dict(zip(decision.outputs, session.run(list(decision.outputs), feeds)))
        classes[rows] = decision.classes(outputs, [texts[index] for index in rows])
    return classes


def sensitive_nodes(prepared: Path, batches, texts: Sequence[str], reference: np.ndarray, decision: TopOneDecision,
                    per_channel: bool, scratch: Path) -> list[tuple[str, float]]:
    """(node, share of reviews whose served class changes when only it is int8), most sensitive first."""
    import onnx

    nodes = [node.name for node in onnx.load(str(prepared)).graph.node if node.op_type in QUANTIZED_OPS]
    changed = []
    for node in nodes:
        quantize(prepared, scratch / "one.onnx", per_channel, exclude=[other for other in nodes if other != node])
        classes = top_classes(scratch / "one.onnx", batches, texts, decision)
        changed.append((node, float((classes != reference).mean())))
    return sorted(changed, key=lambda item: -item[1])


def quantize_to_agree(prepared: Path, fp32_path: Path, int8_path: Path, tokenizer, texts: Sequence[str],
                      decision: TopOneDecision, per_channel: bool, bar: float = 0.99,
                      confirmation_share: float = CONFIRMATION_SHARE) -> dict:
    """Write `int8_path` with the fewest float32 MatMuls (most sensitive first) that give float32's served class on
    at least `bar` of the first part of `texts`, then measure the agreement on the last `confirmation_share`, which
    chose nothing (the figure `--backend auto` trusts); return the recipe (also written as `int8_recipe.json`)."""
    import onnxruntime

    held_out = round(len(texts) * confirmation_share)
    texts, confirmation_texts = list(texts[:len(texts) - held_out]), list(texts[len(texts) - held_out:])
    batches = padded_batches(tokenizer, texts)
    reference = top_classes(fp32_path, batches, texts, decision)
    with tempfile.TemporaryDirectory() as scratch:
        ranked = sensitive_nodes(prepared, batches, texts, reference, decision, per_channel, Path(scratch))
    excluded, agreement = [], 0.0
    for count in range(len(ranked) + 1):
        excluded = [node for node, _ in ranked[:count]]
        quantize(prepared, int8_path, per_channel, exclude=excluded)
        agreement = float((top_classes(int8_path, batches, texts, decision) == reference).mean())
        logger.info("int8 with %d MatMuls kept float32: top-1 agreement %.4f on %d reviews", count, agreement,
                    len(texts))
        if agreement >= bar:
            break
    confirmed = None
    if confirmation_texts:
        confirmation = padded_batches(tokenizer, confirmation_texts)
        confirmed = float((top_classes(int8_path, confirmation, confirmation_texts, decision)
                           == top_classes(fp32_path, confirmation, confirmation_texts, decision)).mean())
        logger.info("int8 top-1 agreement on %d reviews that chose nothing: %.4f", held_out, confirmed)
    recipe = {"method": "dynamic int8, per-node sensitivity on held-out reviews", "per_channel": per_channel,
              "float32_nodes": excluded, "quantized_nodes": len(ranked) - len(excluded),
              "agreement_output": decision.output_name,
              "decision_offsets": list(decision.offsets) if decision.offsets is not None else None,
              "rating_from_stacking_heads": decision.stacking_heads is not None,
              "top1_agreement": round(agreement, 4), "bar": bar, "reviews": len(texts),
              "confirmed_top1_agreement": round(confirmed, 4) if confirmed is not None else None,
              "confirmation_reviews": held_out,
              "sensitivity": {node: share for node, share in ranked if share > 0},
              "cpu": platform.processor() or platform.machine(), "machine": platform.machine(), "cpu_flags": cpu_flags(),
              "int8_sha256": file_sha256(int8_path),
              "onnxruntime": onnxruntime.__version__}
    (int8_path.parent / RECIPE_FILE).write_text(json.dumps(recipe, indent=2) + "\n")
    return recipe
