"""Fixtures for tests of the ONNX backends: copies of the tiny test models with their `onnx/` export.

Use them from a test module with `from onnx_fixtures import exported_multitask_dir, exported_topic_dir  # noqa: F401`.
The exports go into copies, so the shared tiny folders of conftest.py stay torch-only."""

import shutil
from pathlib import Path

import pytest

from modeling import export_onnx


def exported_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    export_onnx.export_onnx(target)
    return target


@pytest.fixture(scope="session")
def exported_multitask_dir(tmp_path_factory, multitask_model_dir) -> Path:
    """The tiny multi-task folder with onnx/model.onnx and onnx/model_int8.onnx."""
    return exported_copy(multitask_model_dir, tmp_path_factory.mktemp("onnx_multitask") / "model")


@pytest.fixture(scope="session")
def exported_topic_dir(tmp_path_factory, topic_model_dir) -> Path:
    """The tiny DistilBertForSequenceClassification topic folder with its onnx/ export."""
    return exported_copy(topic_model_dir, tmp_path_factory.mktemp("onnx_topic") / "model")
