"""The compiled core (scripts/build_core.py, mypyc) gives the rows the interpreted one gives, is what runs
here when built (CI builds it: there it must be in use), and is never used for sources it was not built from."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import streams

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _core(env_core: str | None) -> tuple[str, str]:
    """bench/core_bench.py on a small simulated book, in a fresh interpreter: (core mode line, rows digest)."""
    env = {k: v for k, v in os.environ.items() if k != "DEALBEACON_CORE"}
    if env_core:
        env["DEALBEACON_CORE"] = env_core
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "core_bench.py"), "--deals", "40", "--days", "60",
                          "--repeat", "1"], env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    return re.search(r"core module: (\w+)", out).group(1), re.search(r"digest (\w+)", out).group(1)


def test_the_compiled_core_gives_the_rows_of_the_interpreted_one():
    if not streams.COMPILED:
        assert not os.environ.get("CI"), "CI builds the compiled core (scripts/setup.sh): it is not in use"
        pytest.skip("the compiled core is not built here (scripts/build_core.py)")
    compiled, interpreted = _core(None), _core("interpreted")
    assert (compiled[0], interpreted[0]) == ("compiled", "interpreted")
    assert compiled[1] == interpreted[1]


def test_the_compiled_value_types_are_made_by_compiled_code():
    """The state machine's value types get their ``__init__`` compiled (scripts/build_core.py, ``_native_inits``):
    a dataclass's own would be generated, interpreted, when the module loads."""
    if not streams.COMPILED:
        assert not os.environ.get("CI"), "CI builds the compiled core (scripts/setup.sh): it is not in use"
        pytest.skip("the compiled core is not built here (scripts/build_core.py)")
    from streams.alerts import TimeView
    from streams.deals import RoomState
    from streams.model import Alert, BandState, Room, RoomFacts
    from streams.scoring import DealScore, StakeholderScore

    for cls in (Room, RoomFacts, Alert, BandState, RoomState, StakeholderScore, DealScore, TimeView):
        assert not hasattr(cls.__init__, "__code__"), f"{cls.__name__}.__init__ runs interpreted"
    facts = RoomFacts(5, proposal_max_pct=12.5)
    assert (facts.last_activity_ms, facts.proposal_max_pct, facts.visitors) == (5, 12.5, ())
    assert RoomFacts(5, proposal_max_pct=12.5) == facts and hash(RoomFacts(5, proposal_max_pct=12.5)) == hash(facts)
    assert Room("r").stage == "prospecting" and BandState().stakeholders == ()


def _tree(tmp_path):
    """A copy of the watched sources and a manifest of them (no compiled modules needed to judge it)."""
    for d in ("streams", os.path.join("dealbeacon", "core")):
        shutil.copytree(os.path.join(ROOT, d), tmp_path / d, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / ".build" / "core").mkdir(parents=True)
    manifest = {"python": sys.implementation.cache_tag, "sources": streams.source_digests(str(tmp_path))}
    (tmp_path / ".build" / "core" / "manifest.json").write_text(json.dumps(manifest))
    return str(tmp_path), manifest


def test_a_build_is_used_only_for_the_sources_it_was_made_from(tmp_path):
    root, manifest = _tree(tmp_path)
    build = os.path.join(root, ".build", "core")
    assert streams.compiled_core(root, {}) == build
    assert streams.compiled_core(root, {"DEALBEACON_CORE": "interpreted"}) is None
    deals = tmp_path / "streams" / "deals.py"
    deals.write_text(deals.read_text() + "\n# edited\n")  # an edited core runs interpreted until built again
    assert streams.compiled_core(root, {}) is None
    deals.write_text(deals.read_text().removesuffix("\n# edited\n"))
    assert streams.compiled_core(root, {}) == build
    (tmp_path / "dealbeacon" / "core" / "records.py").write_text("")  # what the core was type-checked against
    assert streams.compiled_core(root, {}) is None
    shutil.copy(os.path.join(ROOT, "dealbeacon", "core", "records.py"), tmp_path / "dealbeacon" / "core" / "records.py")
    (tmp_path / "streams" / "new_rule.py").write_text("")  # a module the build never saw
    assert streams.compiled_core(root, {}) is None
    os.remove(tmp_path / "streams" / "new_rule.py")
    assert streams.compiled_core(root, {}) == build
    (tmp_path / ".build" / "core" / "manifest.json").write_text(json.dumps({**manifest, "python": "cpython-399"}))
    assert streams.compiled_core(root, {}) is None
    (tmp_path / ".build" / "core" / "manifest.json").write_text("{not json")
    assert streams.compiled_core(root, {}) is None
