"""The multi-task benchmark's kept runs: each finished train_multitask.py run is kept as one JSON file with its key,
and a later run of the benchmark with the same key reuses it instead of training again.

The key holds what a run's result depends on: encoder, settings, seed, split seed, training rows, precision, any
extra flags, and a hash of the training code, so a change to train_multitask.py or to the files of modeling/ and
data_prep/ it imports retrains, and a change elsewhere (the topic labeller, say) does not.
"""

import ast
import hashlib
import json
import re
from pathlib import Path

from benchmarks.common import REPO_ROOT, SPLIT_SEED

TRAINING_SCRIPT = "train_multitask.py"
LOCAL_PACKAGES = ("modeling", "data_prep")


def module_file(module: str) -> Path | None:
    """The repo file of a dotted module name of modeling/ or data_prep/ (a package's __init__.py), else None."""
    if module.split(".")[0] not in LOCAL_PACKAGES:
        return None
    path = REPO_ROOT.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def training_code_files() -> list[Path]:
    """train_multitask.py and every file of modeling/ and data_prep/ it imports, directly or through others (every
    import statement counts, also those inside functions): what a run's result depends on besides its flags. A change
    elsewhere (the topic labeller, say) leaves the kept multi-task runs valid."""
    found, queue = set(), [REPO_ROOT / TRAINING_SCRIPT]
    while queue:
        path = queue.pop()
        if path in found:
            continue
        found.add(path)
        package = ".".join(path.relative_to(REPO_ROOT).parts[:-1])  # "" for the script, "modeling" for its files
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the file's package, one level up per extra dot
                    parents = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*parents, *([base] if base else [])])
                modules = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            for module in modules:
                parts = module.split(".")
                for depth in range(1, len(parts) + 1):  # a module's packages run their __init__ too
                    if (file := module_file(".".join(parts[:depth]))) is not None:
                        queue.append(file)
    return sorted(found)


def training_code_hash() -> str:
    """A hash of `training_code_files()`, names and contents: a change to the training code cannot reuse runs made
    before it."""
    digest = hashlib.sha256()
    for path in training_code_files():
        digest.update(path.relative_to(REPO_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run_key(entry: dict, encoder: str, precision: str, training_code: str, extra_flags: list[str]) -> dict:
    """The key of one planned run (its settings, seed and training rows) under one benchmark command."""
    return {"encoder": encoder, "settings": entry["settings"], "seed": entry["seed"], "split_seed": SPLIT_SEED,
            "max_train_samples": entry["max_train_samples"], "precision": precision, "training_code": training_code,
            **({"extra_flags": extra_flags} if extra_flags else {})}


def kept_files(runs_dir: Path, key: dict):
    """(path, kept run) of each file kept under runs_dir with exactly this key."""
    for path in sorted(runs_dir.glob("*.json")):
        if (kept := json.loads(path.read_text()))["key"] == key:
            yield path, kept


def find_kept(runs_dir: Path, key: dict) -> dict | None:
    return next((kept["result"] for _, kept in kept_files(runs_dir, key)), None)


def kept_file_name(row: str, key: dict) -> str:
    """`<row>_seed<seed>_<hash of the key>.json`: one name per run."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
    return f"{re.sub(r'[^a-z0-9]+', '-', row.lower()).strip('-')}_seed{key['seed']}_{digest}.json"


def keep(runs_dir: Path, row: str, key: dict, result: dict) -> None:
    """Writes the run's result, replacing any kept result with the same key (one run, one file)."""
    for path, _ in list(kept_files(runs_dir, key)):
        path.unlink()
    path = runs_dir / kept_file_name(row, key)
    runs_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "result": result}, indent=2) + "\n")
