"""The Space folder: `app.py` and the two packages it imports, a `requirements.txt` with only what serving needs (the
CPU build of torch, from PyTorch's CPU index: a free Space has no GPU, and PyPI's default wheel is a multi-GB CUDA
build), a README whose front matter names the SDK, the models and the dataset, and `.gitattributes`.

    python -m modeling.space out/space
    hf repos create review-transfer/review-demo --repo-type space --space-sdk gradio --exist-ok
    hf upload review-transfer/review-demo out/space . --repo-type space

The Space serves `PUBLISHED_MODELS` (the ids the README's publish commands push to); the Space variables
TOPIC_MODEL / MULTITASK_MODEL point it elsewhere.
"""

import argparse
import logging
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

import yaml

from .hub import PUBLISHED_MULTITASK_MODEL, PUBLISHED_SPACE, PUBLISHED_TOPIC_DATASET, PUBLISHED_TOPIC_MODEL

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("modeling", "data_prep")
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# What `import app` needs beside torch and gradio (the Space's SDK provides gradio, at `sdk_version`); the training
# stack (datasets, accelerate) and the ONNX exporter (onnx, onnxscript) stay out.
SERVING_PACKAGES = ("transformers", "huggingface_hub", "safetensors", "onnxruntime", "scikit-learn", "numpy",
                    "pandas", "matplotlib")
# The Hub's default patterns for files stored with Git LFS / Xet (binary files are refused as plain git blobs).
GITATTRIBUTES = """*.7z filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.gz filter=lfs diff=lfs merge=lfs -text
*.jpg filter=lfs diff=lfs merge=lfs -text
*.jpeg filter=lfs diff=lfs merge=lfs -text
*.npy filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
*.parquet filter=lfs diff=lfs merge=lfs -text
*.png filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
"""


def requirement_lines(with_torch: bool = True) -> list[str]:
    """torch pinned to this environment's release, CPU build (unless `with_torch` is off: the models then serve on
    their ONNX export only); the serving packages at least at the installed versions' major release (within
    requirements.txt's ranges)."""
    lines = []
    if with_torch:
        torch_release = version("torch").split("+")[0]
        lines = [f"--extra-index-url {TORCH_CPU_INDEX}", f"torch=={torch_release}+cpu"]
    for package in SERVING_PACKAGES:
        installed = version(package)
        lines.append(f"{package}>={installed},<{int(installed.split('.')[0]) + 1}")
    return lines


def front_matter() -> dict:
    return {
        "title": "Review transfer", "emoji": "🛍️", "colorFrom": "indigo", "colorTo": "green", "sdk": "gradio",
        "sdk_version": version("gradio"), "python_version": f"{sys.version_info.major}.{sys.version_info.minor}",
        "app_file": "app.py", "pinned": False, "license": "apache-2.0",
        "short_description": "Topic of an Amazon review; star rating and reviewer age of a clothing review",
        "models": [PUBLISHED_MULTITASK_MODEL, PUBLISHED_TOPIC_MODEL], "datasets": [PUBLISHED_TOPIC_DATASET],
        "preload_from_hub": [PUBLISHED_MULTITASK_MODEL, PUBLISHED_TOPIC_MODEL],
    }


def readme() -> str:
    metadata = yaml.safe_dump(front_matter(), sort_keys=False, allow_unicode=True)
    return f"""---
{metadata}---

# Review transfer

Two models of the review-transfer project, served on the backend `--backend auto` picks for this Space's CPU (ONNX
Runtime when their repos carry `onnx/` and torch is not installed):

- [`{PUBLISHED_MULTITASK_MODEL}`](https://huggingface.co/{PUBLISHED_MULTITASK_MODEL}): the star rating and the
  reviewer's age of a clothing review (one encoder, two heads);
- [`{PUBLISHED_TOPIC_MODEL}`](https://huggingface.co/{PUBLISHED_TOPIC_MODEL}): what an Amazon review is about, trained
  on [`{PUBLISHED_TOPIC_DATASET}`](https://huggingface.co/datasets/{PUBLISHED_TOPIC_DATASET}).

Set the Space variables `TOPIC_MODEL` and `MULTITASK_MODEL` (a repo id, optionally `repo@revision`) to serve other
models, and `REVIEW_BACKEND` (`auto`, the default, or `torch`, `onnx`, `onnx-int8`) to choose what runs them; the
page's footer says what `auto` picked on this Space's CPU and why.
"""


def write_space_folder(folder: str | Path, with_torch: bool = True) -> Path:
    """Write (or refresh) the Space folder; returns it. Without torch the Space installs in a fraction of the size and
    serves only models that carry `onnx/` (`--export_onnx` at training)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(PROJECT_ROOT / "app.py", folder / "app.py")
    for package in PACKAGES:
        shutil.rmtree(folder / package, ignore_errors=True)
        shutil.copytree(PROJECT_ROOT / package, folder / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (folder / "requirements.txt").write_text("\n".join(requirement_lines(with_torch)) + "\n", encoding="utf-8")
    (folder / "README.md").write_text(readme(), encoding="utf-8")
    (folder / ".gitattributes").write_text(GITATTRIBUTES, encoding="utf-8")
    logger.info("Wrote the Space folder %s: upload it with `hf upload %s %s . --repo-type space`", folder,
                PUBLISHED_SPACE, folder)
    return folder


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="Where to write the Space (created; the packages in it are replaced).")
    parser.add_argument("--without_torch", action="store_true",
                        help="Leave torch out of requirements.txt: serving on the models' onnx/ export only (the "
                        "published models must carry it), with a smaller install, less memory and a faster start.")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    return write_space_folder(args.folder, with_torch=not args.without_torch)


if __name__ == "__main__":
    main()
