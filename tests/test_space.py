"""The Space as users get it: the folder `python -m modeling.space` writes, uploaded with the README's `hf` commands to
the loopback Hub, pulled back and started with no local model paths; it serves the published models (pulled from the
Hub with their onnx/) in a browser, one endpoint per tab; its requirements resolve to a CPU torch and no training
stack. The names in the README's publish commands are the app's defaults."""

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from huggingface_hub import snapshot_download

from hub_fixtures import hub_server, loopback_hub  # noqa: F401 - fixtures
from onnx_fixtures import exported_multitask_dir, exported_topic_dir  # noqa: F401 - fixtures
from test_browser import ANSWER_TIMEOUT_MS, page, save_screenshot  # noqa: F401 - fixtures
from tests.conftest import REPO_ROOT, app_process

import app
from modeling import hub, space

PUBLISHED = {hub.PUBLISHED_MULTITASK_MODEL, hub.PUBLISHED_TOPIC_MODEL, hub.PUBLISHED_TOPIC_DATASET,
             hub.PUBLISHED_SPACE}
TRAINING_ONLY = {"datasets", "accelerate", "onnx", "onnxscript", "gradio", "pytest", "jinja2"}


def requirement_names(lines: list[str]) -> set[str]:
    return {re.split(r"[<>=!~ ]", line)[0].lower() for line in lines if line and not line.startswith("-")}


def test_space_folder_serves_with_cpu_torch_and_names_its_models(tmp_path):
    folder = space.write_space_folder(tmp_path / "space")
    assert (folder / "app.py").read_bytes() == (REPO_ROOT / "app.py").read_bytes()
    assert (folder / "modeling" / "serving.py").is_file() and (folder / "data_prep" / "topic_model.py").is_file()
    lines = (folder / "requirements.txt").read_text().splitlines()
    assert f"--extra-index-url {space.TORCH_CPU_INDEX}" in lines
    assert any(re.fullmatch(r"torch==[\d.]+\+cpu", line) for line in lines), lines
    assert not requirement_names(lines) & TRAINING_ONLY
    front_matter = yaml.safe_load((folder / "README.md").read_text().split("---")[1])
    assert front_matter["sdk"] == "gradio" and front_matter["sdk_version"] == importlib.metadata.version("gradio")
    assert front_matter["app_file"] == "app.py"
    assert front_matter["models"] == [hub.PUBLISHED_MULTITASK_MODEL, hub.PUBLISHED_TOPIC_MODEL]
    assert front_matter["datasets"] == [hub.PUBLISHED_TOPIC_DATASET]
    assert "*.png filter=lfs" in (folder / ".gitattributes").read_text()


def test_space_app_imports_without_the_training_stack(tmp_path):
    """The Space's requirements leave out datasets, accelerate and the ONNX exporter: its app must import without
    them (they are blocked here, as if not installed)."""
    folder = space.write_space_folder(tmp_path / "space")
    blocked = sorted(TRAINING_ONLY - {"gradio", "jinja2", "pytest"})
    # None in sys.modules: `import x` fails and importlib.util.find_spec("x") says it is not there
    code = f"import sys\nsys.modules.update(dict.fromkeys({blocked!r}))\nimport app\nprint(app.DEFAULT_TOPIC_MODEL)\n"
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], cwd=folder, env=environment, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith(hub.PUBLISHED_TOPIC_MODEL)


def local_cpu_torch_wheel() -> Path | None:
    """The CPU torch wheel of this environment's release in a pip find-links folder, to stand in for PyTorch's CPU
    index (which a machine with only a package mirror cannot reach)."""
    release = importlib.metadata.version("torch").split("+")[0]
    folders = [Path(os.environ.get("TORCH_WHEEL_DIR", "/opt/wheels"))]
    return next((wheel for folder in folders if folder.is_dir()
                 for wheel in folder.glob(f"torch-{release}+cpu-*.whl")), None)


def resolved_install(requirements: Path, report: Path) -> dict[str, str]:
    """What `pip install -r requirements` would install, as {name: version}, without installing it."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report",
         str(report), "-r", str(requirements)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {item["metadata"]["name"].lower(): item["metadata"]["version"]
            for item in json.loads(report.read_text())["install"]}


def test_space_requirements_resolve_to_a_cpu_torch_and_no_cuda(tmp_path):
    wheel = local_cpu_torch_wheel()
    if wheel is None:
        pytest.skip("no local CPU torch wheel to stand in for PyTorch's CPU index (set TORCH_WHEEL_DIR)")
    index = tmp_path / "simple" / "torch"
    index.mkdir(parents=True)
    (index / "index.html").write_text(f'<a href="{wheel.as_uri()}">{wheel.name}</a>\n')
    folder = space.write_space_folder(tmp_path / "space")
    requirements = (folder / "requirements.txt").read_text().replace(space.TORCH_CPU_INDEX,
                                                                     (tmp_path / "simple").as_uri())
    (tmp_path / "requirements.txt").write_text(requirements)
    resolved = resolved_install(tmp_path / "requirements.txt", tmp_path / "report.json")
    assert resolved["torch"].endswith("+cpu")
    assert not {name for name in resolved if name.startswith("nvidia")}
    assert not set(resolved) & (TRAINING_ONLY - {"jinja2"})  # gradio's own jinja2 may come along


def test_space_without_torch_resolves_to_no_torch(tmp_path):
    """`python -m modeling.space FOLDER --without_torch`: nothing in its requirements pulls torch back in."""
    folder = space.main([str(tmp_path / "space"), "--without_torch"])
    resolved = resolved_install(folder / "requirements.txt", tmp_path / "report.json")
    assert "onnxruntime" in resolved and "transformers" in resolved
    assert not {name for name in resolved if name == "torch" or name.startswith("nvidia")}


def test_readme_publish_commands_use_the_names_the_app_serves():
    readme = (REPO_ROOT / "README.md").read_text()
    publish = readme[readme.index("## Publish"):readme.index("<!-- results:start -->")]
    named = set(re.findall(r"--hub_(?:model|dataset)_id (\S+)", publish))
    named |= set(re.findall(r"hf (?:repos create|upload) (\S+)", publish))
    named |= set(re.findall(r"--dataset_name (\S+)", publish))
    assert named == PUBLISHED
    assert (app.DEFAULT_MULTITASK_MODEL, app.DEFAULT_TOPIC_MODEL) == (hub.PUBLISHED_MULTITASK_MODEL,
                                                                     hub.PUBLISHED_TOPIC_MODEL)


@pytest.fixture
def space_from_the_hub(loopback_hub, tmp_path, exported_multitask_dir, exported_topic_dir):  # noqa: F811
    """The published models pushed (with onnx/), the Space written and uploaded with the README's commands, pulled
    back into an empty folder and started there with no model flags; yields its URL."""
    hub.push_model_folder(exported_multitask_dir, hub.PUBLISHED_MULTITASK_MODEL)
    hub.push_model_folder(exported_topic_dir, hub.PUBLISHED_TOPIC_MODEL)
    space.main([str(tmp_path / "space")])
    hf = Path(sys.executable).with_name("hf")
    for command in (["repos", "create", hub.PUBLISHED_SPACE, "--repo-type", "space", "--space-sdk", "gradio",
                     "--exist-ok"],
                    ["upload", hub.PUBLISHED_SPACE, str(tmp_path / "space"), ".", "--repo-type", "space"]):
        result = subprocess.run([str(hf), *command], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
    pulled = Path(snapshot_download(hub.PUBLISHED_SPACE, repo_type="space", local_dir=tmp_path / "pulled_space"))

    environment = {name: value for name, value in os.environ.items()
                   if name not in ("PYTHONPATH", "TOPIC_MODEL", "MULTITASK_MODEL", "GRADIO_SERVER_NAME")}
    environment.update({"GRADIO_ANALYTICS_ENABLED": "False", "HF_HOME": str(tmp_path / "space_hf_home")})
    log = tmp_path / "space.log"
    with app_process([], pulled, environment, log) as url:  # no model flags: the published ids
        yield url, log


def test_space_pulled_from_the_hub_answers_in_every_tab(space_from_the_hub, page, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    url, log = space_from_the_hub
    page.goto(url)
    page.get_by_role("tab", name="Topic").click()
    page.locator("#topic-review textarea").fill(app.TOPIC_EXAMPLES[0])
    page.locator("#topic-button").click()
    expect(page.locator("#topic-result")).to_contain_text("Topic:", timeout=ANSWER_TIMEOUT_MS)

    page.get_by_role("tab", name="Rating & age").click()
    page.locator("#rating-review textarea").fill(app.RATING_AGE_EXAMPLES[0])
    page.locator("#rating-button").click()
    expect(page.locator("#rating-result")).to_contain_text("years old", timeout=ANSWER_TIMEOUT_MS)

    page.get_by_role("tab", name="Batch").click()
    page.locator("#csv-file input[type='file']").set_input_files(str(app.write_example_csv(tmp_path)))
    expect(page.locator("#text-column input")).to_have_value("review", timeout=ANSWER_TIMEOUT_MS)
    page.locator("#batch-button").click()
    expect(page.locator("#batch-result")).to_contain_text(
        f"Predicted {len(app.BATCH_EXAMPLE_ROWS)} reviews", timeout=ANSWER_TIMEOUT_MS)
    save_screenshot(page, tmp_path, "space.png")

    served = log.read_text()
    for repo_id in (hub.PUBLISHED_MULTITASK_MODEL, hub.PUBLISHED_TOPIC_MODEL):
        assert repo_id in served  # loaded by id from the Hub, on the ONNX Runtime backend
    assert "onnx" in served.lower()
