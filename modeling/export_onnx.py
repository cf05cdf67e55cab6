"""Export a saved model folder to ONNX for CPU serving on ONNX Runtime:

    python -m modeling.export_onnx MODEL_DIR

writes `MODEL_DIR/onnx/model.onnx` (float32) and `MODEL_DIR/onnx/model_int8.onnx` (dynamic int8 quantization of the
matrix products with `onnxruntime.quantization`). Works for the multi-task model (outputs `rating_logits`, `age`
in years and the `review_vector` its stacking heads read), the frozen-features topic model and any fine-tuned
`AutoModelForSequenceClassification` (`logits`).
Inputs are `input_ids` and `attention_mask`, int64, with dynamic batch and sequence axes. The Hub push uploads the
whole folder, so `onnx/` travels with the model, as in sentence-transformers repos.
"""

import argparse
import logging
import tempfile
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from .backends import ONNX_FOLDER, INPUT_NAMES, onnx_paths  # noqa: F401 - where the exported files go
from .configuration_multitask import MultiTaskReviewConfig
from .stacking_heads import StackingHeads

logger = logging.getLogger(__name__)

MULTITASK_OUTPUT_NAMES = ("rating_logits", "age", "review_vector")  # the vector feeds stacking heads, if any
CLASSIFIER_OUTPUT_NAMES = ("logits",)
# One weight scale per output channel: on the demo's trained multi-task model (first 1,000 clothing test reviews) int8
# per channel gave torch fp32's rating on 98.4% of reviews (largest probability gap 0.12, age 0.13 years off on
# average), one scale per matrix on 93.9% (gap 0.25, age 0.29 years).
INT8_PER_CHANNEL = True
EXAMPLE_BATCH, EXAMPLE_LENGTH = 2, 16  # the traced example; both axes are exported as dynamic


def output_names_for(config) -> tuple[str, ...]:
    """The outputs an exported model gives, in order: the multi-task model's two heads, or a classifier's logits."""
    return MULTITASK_OUTPUT_NAMES if config.model_type == MultiTaskReviewConfig.model_type else CLASSIFIER_OUTPUT_NAMES


def load_model_for_export(model_dir: str | Path) -> nn.Module:
    """The folder's model in eval mode, with eager attention (its explicit mask arithmetic exports cleanly)."""
    import modeling  # noqa: F401  (registers the custom configs and models with the Auto classes)

    config = AutoConfig.from_pretrained(model_dir)
    auto_class = AutoModel if config.model_type == MultiTaskReviewConfig.model_type else AutoModelForSequenceClassification
    return auto_class.from_pretrained(model_dir, attn_implementation="eager").eval()


class NamedOutputs(nn.Module):
    """The model called with token ids and mask, returning a tuple of the named outputs (ONNX graphs return tuples)."""

    def __init__(self, model: nn.Module, output_names: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.output_names = output_names

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return tuple(outputs[name] for name in self.output_names)


def example_inputs(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of a small padded batch (the second row shorter), so the mask's effect is traced too."""
    vocab_size = getattr(getattr(model.config, "encoder", model.config), "vocab_size")
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, vocab_size, (EXAMPLE_BATCH, EXAMPLE_LENGTH), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, EXAMPLE_LENGTH // 2 :] = 0
    return input_ids, attention_mask


def export_fp32(model: nn.Module, path: Path) -> str:
    """Write the float32 graph; returns the exporter used ("dynamo", or "torchscript" when dynamo fails)."""
    wrapped = NamedOutputs(model, output_names_for(model.config)).eval()
    inputs = example_inputs(model)
    output_names = list(wrapped.output_names)
    path.parent.mkdir(parents=True, exist_ok=True)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    try:
        with torch.no_grad():
            program = torch.onnx.export(
                wrapped, inputs, input_names=list(INPUT_NAMES), output_names=output_names, dynamo=True,
                dynamic_shapes={"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}},
                optimize=True,
            )
        program.save(str(path), external_data=False)
        return "dynamo"
    except Exception as error:  # an architecture torch.export cannot trace still exports through TorchScript
        logger.warning("The dynamo exporter failed (%s: %s); exporting with the TorchScript exporter",
                       type(error).__name__, str(error).splitlines()[0] if str(error) else "")
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    dynamic_axes.update({name: {0: "batch"} for name in output_names})
    with torch.no_grad():
        torch.onnx.export(
            wrapped, inputs, str(path), input_names=list(INPUT_NAMES), output_names=output_names, dynamo=False,
            dynamic_axes=dynamic_axes, opset_version=17,
        )
    return "torchscript"


def quantize_int8(fp32_path: Path, int8_path: Path, per_channel: bool = INT8_PER_CHANNEL,
                  agreement_texts: list[str] | None = None, tokenizer=None, decision=None,
                  agreement_bar: float = 0.99) -> None:
    """Dynamic int8: weights of MatMul/Gemm quantized once, activations per batch at run time. With
    `agreement_texts`, the most sensitive MatMuls stay float32 until int8 gives float32's served class
    (`decision`, a `modeling.int8_recipe.TopOneDecision`) on `agreement_bar` of them.

    The graph goes through ONNX Runtime's pre-processing first (shape inference and graph optimization), as its
    quantization guide recommends, so that fused MatMuls are found and quantized."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .int8_recipe import RECIPE_FILE, quantize, quantize_to_agree

    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        if agreement_texts:
            recipe = quantize_to_agree(prepared, fp32_path, int8_path, tokenizer, agreement_texts, decision,
                                       per_channel, agreement_bar)
            logger.info("int8 recipe: %d MatMuls kept float32, top-1 agreement %.4f on %d reviews",
                        len(recipe["float32_nodes"]), recipe["top1_agreement"], recipe["reviews"])
        else:
            quantize(prepared, int8_path, per_channel)
            (int8_path.parent / RECIPE_FILE).unlink(missing_ok=True)  # it described another int8 graph


def read_texts(path: str | Path, limit: int) -> list[str]:
    """The `text` column of a csv / json / parquet file (e.g. held-out reviews), first `limit` non-empty rows."""
    from datasets import load_dataset

    suffix = next((suffix for suffix in reversed(Path(path).suffixes) if suffix in (".json", ".jsonl", ".parquet")),
                  ".csv")
    texts = load_dataset({".jsonl": "json"}.get(suffix, suffix[1:]), data_files=str(path), split="train")["text"]
    return [text for text in texts if isinstance(text, str) and text.strip()][:limit]


def export_onnx(model_dir: str | Path, quantize: bool = True, per_channel: bool = INT8_PER_CHANNEL,
                agreement_texts: list[str] | None = None, agreement_bar: float = 0.99) -> dict[str, Path]:
    """Export the saved folder's model into `model_dir/onnx/`; returns the paths written."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a saved model folder (no config.json)")
    paths = onnx_paths(model_dir)
    model = load_model_for_export(model_dir)
    exporter = export_fp32(model, paths["fp32"])
    logger.info("Wrote %s (%s exporter, %.1f MB)", paths["fp32"], exporter, paths["fp32"].stat().st_size / 1e6)
    if not quantize:
        return {"fp32": paths["fp32"]}
    tokenizer = decision = None
    if agreement_texts:
        from transformers import AutoTokenizer

        from .int8_recipe import TopOneDecision

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        config = model.config
        heads = StackingHeads.load(str(model_dir)) if "rating" in (getattr(config, "stacking_heads", None) or ()) else None
        decision = TopOneDecision(output_names_for(config)[0], getattr(config, "rating_logit_offsets", None), heads)
    quantize_int8(paths["fp32"], paths["int8"], per_channel=per_channel, agreement_texts=agreement_texts,
                  tokenizer=tokenizer, decision=decision, agreement_bar=agreement_bar)
    logger.info("Wrote %s (%.1f MB)", paths["int8"], paths["int8"].stat().st_size / 1e6)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="A saved model folder (train_multitask.py or train_topic.py).")
    parser.add_argument("--no-int8", dest="quantize", action="store_false", help="Write the float32 graph only.")
    parser.add_argument("--per-tensor", dest="per_channel", action="store_false",
                        help="One int8 scale per weight matrix instead of one per output channel.")
    parser.add_argument("--agreement-texts", type=Path,
                        help="Held-out reviews (csv/json/parquet with a `text` column, e.g. validation): keep the "
                        "most sensitive MatMuls float32 until int8 gives float32's top-1 on --agreement-bar of them "
                        "(writes onnx/int8_recipe.json).")
    parser.add_argument("--agreement-bar", type=float, default=0.99)
    parser.add_argument("--agreement-reviews", type=int, default=800,
                        help="Reviews of --agreement-texts to use (a quarter confirms the choice; --backend auto "
                        "wants at least 200 of those).")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    texts = read_texts(args.agreement_texts, args.agreement_reviews) if args.agreement_texts else None
    for path in export_onnx(args.model_dir, quantize=args.quantize, per_channel=args.per_channel,
                            agreement_texts=texts, agreement_bar=args.agreement_bar).values():
        print(path)


if __name__ == "__main__":
    main()
