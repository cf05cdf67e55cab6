"""The house rules a newcomer relies on: imports flow one way (no circle; modeling/ reaches into data_prep/ only for
the topic model it serves), no source file outside tests/ is over 500 lines, and nothing edits sys.path to find the
project; benchmarks/ is at most a quarter of the source; `pip install .` ships what the packages read at run time."""

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO_ROOT

MAX_LINES = 500
BENCHMARKS_SHARE = 0.25  # of the Python lines outside tests: the measurements are not the largest floor of the house
# What serving may import of data_prep: the saved topic model and the two modules it is built from.
SERVED_FROM_DATA_PREP = {"data_prep", "data_prep.topic_model", "data_prep.text", "data_prep.topic_mapping"}


def source_files() -> list[Path]:
    skipped = {"tests", ".venv", "build", ".git"}
    return sorted(path for path in REPO_ROOT.rglob("*.py")
                  if not skipped & set(path.relative_to(REPO_ROOT).parts) and ".egg-info" not in str(path))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The project modules a file imports anywhere in it (inside functions too), relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parents = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parents, *([base] if base else [])])
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in known:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                found.add(candidate)
    return found


def import_graph() -> dict[str, set[str]]:
    files = source_files()
    known = {module_name(path) for path in files}
    return {module_name(path): imported_modules(path, known) for path in files}


def test_the_import_graph_has_no_circle():
    graph = import_graph()
    state, path = {}, []

    def visit(module):
        state[module] = "open"
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                circle = path[path.index(target):] + [target]
                raise AssertionError("import circle: " + " -> ".join(circle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_modeling_imports_of_data_prep_are_the_served_topic_model_only():
    graph = import_graph()
    reached = {(module, target) for module, targets in graph.items() if module.startswith("modeling")
               for target in targets if target.split(".")[0] == "data_prep"}
    assert {target for _, target in reached} <= SERVED_FROM_DATA_PREP, sorted(reached)
    topic_model_imports = {target for target in graph["data_prep.topic_model"] if target.startswith("data_prep")}
    assert topic_model_imports <= SERVED_FROM_DATA_PREP


def test_no_source_file_outside_tests_is_over_500_lines():
    long_files = {str(path.relative_to(REPO_ROOT)): lines for path in source_files()
                  if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long_files, long_files


def test_benchmarks_are_at_most_a_quarter_of_the_source():
    lines = {path.relative_to(REPO_ROOT).parts[0]: 0 for path in source_files()}
    for path in source_files():
        lines[path.relative_to(REPO_ROOT).parts[0]] += len(path.read_text(encoding="utf-8").splitlines())
    share = lines["benchmarks"] / sum(lines.values())
    assert share <= BENCHMARKS_SHARE, f"benchmarks/ holds {share:.1%} of the Python lines outside tests: {lines}"


def test_nothing_edits_sys_path_to_find_the_project():
    offenders = [str(path.relative_to(REPO_ROOT)) for path in [*source_files(), *REPO_ROOT.glob("tests/*.py")]
                 if "sys.path." + "insert" in path.read_text(encoding="utf-8")]
    assert not offenders


def test_the_wheel_carries_the_files_the_packages_read_at_run_time(tmp_path):
    """A non-editable install must have the validated defaults (without them every multi-task setting is None), the
    card templates and the category keywords. Built offline from a copy, so the checkout gets no build/ folder."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "requirements.txt", "LICENSE"):
        shutil.copy(REPO_ROOT / name, source / name)
    for package in ("modeling", "data_prep"):
        shutil.copytree(REPO_ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True, timeout=300)
    wheel, = (tmp_path / "dist").glob("review_transfer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    runtime_files = {"modeling/multitask_defaults.json", "modeling/cards/multitask.md", "modeling/cards/topic.md",
                     "modeling/cards/research-use-data-license.md",
                     "data_prep/category_keywords.json", "data_prep/cards/topic_dataset.md"}
    assert runtime_files <= names, sorted(runtime_files - names)
    assert not {name for name in names if name.split("/")[0] in ("tests", "benchmarks")}
