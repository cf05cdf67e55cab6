"""Every command the README shows runs as written: each script or module it calls exists and knows each flag it is
given (checked against the command's own `--help`), every file it names is there, and its Python snippets compile."""

import ast
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

DOCUMENTS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE_COMMAND = re.compile(r"`((?:\.venv/bin/)?python3? (?:-m [\w.]+|[\w/]+\.py)[^`]*)`")
PYTHON = re.compile(r"^(?:\S*/)?python3?$")


def fenced_blocks(language: str) -> list[tuple[str, str]]:
    return [(path.name, match.group(2)) for path in DOCUMENTS if path.is_file()
            for match in FENCE.finditer(path.read_text(encoding="utf-8")) if match.group(1) == language]


def shell_commands() -> list[tuple[str, str]]:
    """Every command line of the documents' bash blocks (continuations joined) and their inline `python ...` spans."""
    commands = []
    for document, block in fenced_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append((document, line))
    for path in DOCUMENTS:
        for match in INLINE_COMMAND.finditer(path.read_text(encoding="utf-8").replace("\n", " ")):
            commands.append((path.name, match.group(1)))
    return commands


def invocation(command: str) -> tuple[list[str], list[str]] | None:
    """(how to run the project's script or module, the arguments given to it), or None for other commands."""
    words = shlex.split(command.split(" | ")[0].split(" && ")[-1], comments=False)
    for index, word in enumerate(words):
        if word.endswith(".py") and (REPO_ROOT / word).is_file():
            return [word], words[index + 1:]
        if PYTHON.match(word) and words[index + 1:index + 2] == ["-m"] and len(words) > index + 2:
            module = words[index + 2]
            if module.split(".")[0] in ("modeling", "data_prep", "benchmarks"):
                return ["-m", module], words[index + 3:]
    return None


PROJECT_COMMANDS = [(document, command) for document, command in shell_commands() if invocation(command)]


@pytest.fixture(scope="module")
def help_texts() -> dict[tuple[str, ...], str]:
    """Each documented target's `--help`, the processes run side by side (each spends seconds importing torch)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    targets = {tuple(invocation(command)[0]) for _, command in PROJECT_COMMANDS}
    running = {target: subprocess.Popen([sys.executable, *target, "--help"], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env={**env, "HF_HUB_OFFLINE": "1"})
               for target in sorted(targets)}
    texts = {}
    for target, process in running.items():
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, f"`python {' '.join(target)} --help` failed:\n{stderr[-2000:]}"
        texts[target] = stdout
    return texts


def test_the_readme_shows_project_commands():
    assert len(PROJECT_COMMANDS) >= 10


@pytest.mark.parametrize("document,command", PROJECT_COMMANDS, ids=[command[:60] for _, command in PROJECT_COMMANDS])
def test_each_documented_command_knows_its_flags(document, command, help_texts):
    target, arguments = invocation(command)
    text = help_texts[tuple(target)]
    flags = {argument.split("=")[0] for argument in arguments if argument.startswith("--")}
    unknown = sorted(flag for flag in flags if not re.search(re.escape(flag) + r"(?![\w-])", text))
    assert not unknown, f"{document}: `{command}` passes {unknown}, which `{' '.join(target)} --help` does not list"


def test_every_script_and_file_a_command_names_exists():
    missing = []
    for document, command in shell_commands():
        for word in shlex.split(command, comments=False):
            if re.fullmatch(r"(?:scripts|benchmarks|modeling|data_prep)/[\w/.-]+\.(?:sh|py|json)", word):
                if not (REPO_ROOT / word).is_file():
                    missing.append(f"{document}: {word}")
    assert not missing


def test_python_snippets_compile():
    for document, block in fenced_blocks("python"):
        ast.parse(block, filename=document)
