"""The shell scripts a user runs first: the torch build setup_env.sh installs, and a demo that shows its progress."""

import logging
import os
import subprocess

from data_prep.topic_model import TopicModel
from tests.conftest import REPO_ROOT


def torch_install_args(tmp_path, with_gpu: bool, cpu_index: str) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "nvidia-smi"
    fake.unlink(missing_ok=True)
    if with_gpu:
        fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100'\n")
        fake.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key != "TORCH_INDEX_URL"}
    env["PATH"] = f"{bin_dir}:/usr/bin:/bin"  # no nvidia-smi of the machine's own
    env["TORCH_CPU_INDEX_URL"] = cpu_index
    return subprocess.run(["bash", str(REPO_ROOT / "scripts" / "torch_install_args.sh")], env=env, check=True,
                          capture_output=True, text=True)


def test_setup_installs_the_cpu_build_of_torch_without_a_gpu_and_the_cuda_build_with_one(tmp_path):
    reachable_index = tmp_path / "cpu_index"  # a local folder stands in for PyTorch's CPU index
    (reachable_index / "torch").mkdir(parents=True)
    without_gpu = torch_install_args(tmp_path, with_gpu=False, cpu_index=reachable_index.as_uri())
    assert without_gpu.stdout.strip() == f"torch==2.13.0 --extra-index-url {reachable_index.as_uri()}"
    with_gpu = torch_install_args(tmp_path, with_gpu=True, cpu_index=reachable_index.as_uri())
    assert with_gpu.stdout.strip() == "torch==2.13.0"
    unreachable = torch_install_args(tmp_path, with_gpu=False, cpu_index=(tmp_path / "missing").as_uri())
    assert unreachable.stdout.strip() == "torch==2.13.0" and "cannot be reached" in unreachable.stderr
    assert "torch_install_args.sh" in (REPO_ROOT / "scripts" / "setup_env.sh").read_text()
    assert "download.pytorch.org/whl/cpu" in (REPO_ROOT / "scripts" / "torch_install_args.sh").read_text()


def test_demo_shows_progress_bars():
    assert "--disable_tqdm true" not in (REPO_ROOT / "scripts" / "demo.sh").read_text()


def test_nmf_fit_says_when_it_starts_and_how_long_it_took(caplog):
    texts = [f"book story author chapter {i}" for i in range(20)] + [f"game level player console {i}" for i in range(20)]
    with caplog.at_level(logging.INFO, logger="data_prep"):
        TopicModel.fit(texts, num_topics=2, min_df=1, max_df=1.0)
    assert "Fitting NMF: 2 topics" in caplog.text and "NMF fitted in" in caplog.text
