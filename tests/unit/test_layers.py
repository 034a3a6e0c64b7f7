"""The layering rules are checked by import-linter (contracts in pyproject.toml): here they pass on the tree,
and they bite on a copy of the tree where a stage imports another stage, or the core imports a stage."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LINT = os.path.join(os.path.dirname(sys.executable), "lint-imports")


def _lint(cwd):
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": cwd})


def test_the_tree_keeps_its_layers():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("ingest/app.py", "import streams.deals  # a stage reaching into another", "Stages never import each other"),
    ("dealbeacon/core/records.py", "import sinks.store  # the core reaching up", "Layers"),
    ("streams/processors.py", "from dealbeacon.app import runtime  # a stage importing a root", "Layers"),
])
def test_the_check_bites_when_a_rule_is_broken(tmp_path, module, line, broken):
    for pkg in ("dealbeacon", "ingest", "streams", "sinks"):
        shutil.copytree(os.path.join(ROOT, pkg), tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), tmp_path)
    assert _lint(str(tmp_path)).returncode == 0  # the copy itself is clean
    with open(tmp_path / module, "a") as fh:
        fh.write("\n" + line + "\n")
    out = _lint(str(tmp_path))
    assert out.returncode != 0, out.stdout
    assert any(broken in line and "BROKEN" in line for line in out.stdout.splitlines()), out.stdout
