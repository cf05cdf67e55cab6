"""Fixtures for tests that push to and pull from the loopback Hub (`tests/hub_server.py`).

Use them from a test module with `from hub_fixtures import hub_server, loopback_hub, run_outside_project  # noqa: F401`.
`hub_server` yields the URL; the environment then points every new process at it (`HF_ENDPOINT`, a dummy `HF_TOKEN`,
`HF_HUB_OFFLINE=0`, `HF_HUB_DISABLE_XET=1`, a fresh `HF_HOME`). `huggingface_hub` reads those variables once, at
import, so this process's already-imported client is re-pointed too (its `constants` and the shared `HfApi`
instances of huggingface_hub and transformers). Pulls are most faithful in a subprocess: `run_outside_project`.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub_server import LoopbackHub

DUMMY_TOKEN = "hf_loopback_dummy_token"


@pytest.fixture
def loopback_hub(tmp_path, monkeypatch):
    """The running `LoopbackHub` (its repos and request log), with the environment pointing at it."""
    with LoopbackHub() as hub:
        point_hub_client_at(hub.url, tmp_path / "hf_home", monkeypatch)
        yield hub


@pytest.fixture
def hub_server(loopback_hub) -> str:
    """The loopback Hub's URL (`HF_ENDPOINT`)."""
    return loopback_hub.url


def point_hub_client_at(url: str, hf_home: Path, monkeypatch) -> None:
    """Environment for new processes, and the same settings patched into this process's imported Hub client."""
    import huggingface_hub
    from huggingface_hub import constants

    hf_home.mkdir(parents=True, exist_ok=True)
    for name, value in {
        "HF_ENDPOINT": url,
        "HF_TOKEN": DUMMY_TOKEN,
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HOME": str(hf_home),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "NO_PROXY": "127.0.0.1,localhost",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)

    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(huggingface_hub.hf_api.api, "endpoint", url)
    if "datasets.config" in sys.modules:  # datasets keeps its own copies, read at import
        datasets_config = sys.modules["datasets.config"]
        monkeypatch.setattr(datasets_config, "HF_ENDPOINT", url)
        monkeypatch.setattr(datasets_config, "HUB_DATASETS_URL", url + "/datasets/{repo_id}/resolve/{revision}/{path}")
        monkeypatch.setattr(datasets_config, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(datasets_config, "HF_DATASETS_OFFLINE", False)
    if "transformers.utils.hub" in sys.modules:  # transformers keeps one HfApi, created on first use
        monkeypatch.setattr(sys.modules["transformers.utils.hub"], "_hf_api", None)


def run_outside_project(code: str, tmp_path: Path, timeout: float = 240) -> dict:
    """Run `code` in a fresh Python (the same interpreter) with an empty `HF_HOME`, its working directory outside
    the repository and no `PYTHONPATH`, so this project's packages cannot be imported; return the JSON it prints
    on its last line of stdout."""
    workdir = tmp_path / "outside_project"
    workdir.mkdir(parents=True, exist_ok=True)
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    env["HF_HOME"] = str(tmp_path / "fresh_hf_home")
    script = workdir / "pull_from_hub.py"
    script.write_text(code)
    completed = subprocess.run(
        [sys.executable, str(script)], cwd=workdir, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=timeout,
    )
    if completed.returncode != 0:
        raise AssertionError(f"pull script failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    lines = completed.stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        raise AssertionError(
            f"pull script printed no JSON last line:\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}"
        )
    return json.loads(lines[-1])
