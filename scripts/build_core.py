"""Compile the pure core (the room state machine and what it calls) with mypyc, into .build/core/.

    .venv/bin/python scripts/build_core.py

The sources are compiled in a scratch copy, so no compiled module ever sits beside a source it could shadow.
``streams/__init__.py`` puts .build/core first on the package's path only while the manifest's digests match
the sources (an edited core runs interpreted until it is built again) and ``DEALBEACON_CORE`` is not
``interpreted``. Same rows either way (tests/functional/test_compiled_core.py); 2.3-2.6x the interpreted
core (bench/core_bench.py, 2026-12-05). In the copy, the value types are plain dataclasses (``_unfreeze``).
Exits non-zero if the build fails: the core then runs interpreted.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from streams import source_digests  # noqa: E402

MODULES = ["scoring", "calendar", "model", "alerts", "deals", "processors", "activity", "winmodel", "ids"]


FROZEN = "@dataclass(frozen=True)"
UNFROZEN = "@dataclass(unsafe_hash=True)"
UNFROZEN_NO_INIT = "@dataclass(unsafe_hash=True, init=False)"


def _unfreeze(path: str) -> None:
    """The compiled copy's value types are plain dataclasses (equal and hashable as before). A frozen dataclass
    initialises each field through ``object.__setattr__``; compiled, that made a 6-field one 822 ns against
    208 ns (2026-12-05), and the state machine makes several per record. Immutability stays checked where it
    is written: mypy sees the sources' ``frozen=True`` (an assignment to a field fails the check), and the
    interpreted core, which the sources' tests also run, raises on one."""
    with open(path) as fh:
        text = fh.read()
    if FROZEN in text:
        with open(path, "w") as fh:
            fh.write(text.replace(FROZEN, UNFROZEN))


def _native_inits(path: str) -> list[str]:
    """In the compiled copy, each value type whose fields are all plain (a default or none; a ``field`` with a
    default and at most ``compare`` and ``repr``; no
    ``field(init=False)``, no ``__post_init__``) gets its ``__init__`` written out, and ``init=False`` on its
    decorator: mypyc compiles it. The dataclass decorator otherwise generates ``__init__`` when the module loads,
    as interpreted code, which the compiled state machine then calls for every value it makes (``evolve`` too):
    5-6 % of the embedded writer's samples (py-spy, 2026-12-06). Same signature, same assignments in field
    order; returns the classes changed."""
    import ast

    with open(path) as fh:
        text = fh.read()
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int, str, str]] = []  # (decorator line, class end line, decorator text, __init__ text)
    changed = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or node.bases or len(node.decorator_list) != 1:
            continue
        deco = node.decorator_list[0]
        if ast.get_source_segment(text, deco) != UNFROZEN[1:]:
            continue
        if any(isinstance(b, ast.FunctionDef) and b.name in ("__init__", "__post_init__") for b in node.body):
            continue
        params, body, plain = [], [], True
        for b in node.body:
            if not isinstance(b, ast.AnnAssign):
                continue
            if not isinstance(b.target, ast.Name) or "ClassVar" in ast.get_source_segment(text, b.annotation):
                plain = False
                break
            name, ann = b.target.id, ast.get_source_segment(text, b.annotation)
            default = None
            if b.value is not None:
                default = ast.get_source_segment(text, b.value)
                if isinstance(b.value, ast.Call) and getattr(b.value.func, "id", "") == "field":
                    kws = {k.arg: k.value for k in b.value.keywords}  # compare/repr: the decorator's, not __init__'s
                    if "default" not in kws or not set(kws) <= {"default", "compare", "repr"}:
                        plain = False
                        break
                    default = ast.get_source_segment(text, kws["default"])
            params.append(f"{name}: {ann}" + (f" = {default}" if default is not None else ""))
            body.append(f"        self.{name} = {name}\n")
        if not plain or not params:
            continue
        init = f"\n    def __init__(self, {', '.join(params)}) -> None:\n" + "".join(body)
        edits.append((deco.lineno, node.end_lineno or node.lineno, UNFROZEN_NO_INIT, init))
        changed.append(node.name)
    for deco_line, end, deco_text, init in sorted(edits, reverse=True):
        lines.insert(end, init)
        lines[deco_line - 1] = lines[deco_line - 1].replace(UNFROZEN, deco_text)
    with open(path, "w") as fh:
        fh.write("".join(lines))
    return changed


def main() -> int:
    """``--keep-c DIR``: also keep the generated C there (to see which operations stayed generic)."""
    keep = sys.argv[sys.argv.index("--keep-c") + 1] if "--keep-c" in sys.argv else ""
    out = os.path.join(ROOT, ".build", "core")
    with tempfile.TemporaryDirectory(prefix="dealbeacon-core-") as tmp:
        for d in ("streams", "dealbeacon"):  # sources only: mypyc's setuptools refuses pyproject's license string
            shutil.copytree(os.path.join(ROOT, d), os.path.join(tmp, d),
                            ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.html"))
        digests = source_digests(tmp)
        for m in MODULES:
            _unfreeze(os.path.join(tmp, "streams", f"{m}.py"))
            _native_inits(os.path.join(tmp, "streams", f"{m}.py"))
        cmd = [sys.executable, "-m", "mypyc", *[f"streams/{m}.py" for m in MODULES]]
        r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        built = glob.glob(os.path.join(tmp, "*.so")) + glob.glob(os.path.join(tmp, "streams", "*.so"))
        if r.returncode != 0 or len(built) != len(MODULES) + 1:
            sys.stderr.write(r.stdout[-4000:] + r.stderr[-4000:])
            print("compiled core: build failed, the core runs interpreted", file=sys.stderr)
            return 1
        if keep:
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(os.path.join(tmp, "build"), keep, ignore=shutil.ignore_patterns("*.o", "temp.*"))
            for m in MODULES:  # the compiled copies of the sources (unfrozen, with native __init__s)
                shutil.copy2(os.path.join(tmp, "streams", f"{m}.py"), keep)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(os.path.join(out, "streams"))
        for path in built:
            shutil.copy2(path, os.path.join(out, os.path.relpath(path, tmp)))
    with open(os.path.join(out, "manifest.json"), "w") as fh:
        json.dump({"python": sys.implementation.cache_tag, "modules": MODULES, "sources": digests}, fh, indent=1)
    print(f"compiled core: {len(MODULES)} modules of streams/ in {os.path.relpath(out, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
