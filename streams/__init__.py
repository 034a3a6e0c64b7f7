"""Stream processing: pure processors (processors.py) run by the embedded pipeline and by Faust agents.

The pure core may run compiled (scripts/build_core.py builds it into .build/core/ with mypyc): its modules
are then found there first, but only while the build's manifest matches every source it was built from
(streams/ and dealbeacon/core/) and ``DEALBEACON_CORE`` is not ``interpreted``. ``COMPILED`` says which."""
from __future__ import annotations

import hashlib
import json
import os
import sys

WATCHED = ("streams", os.path.join("dealbeacon", "core"))  # what a build of the core was type-checked against


def source_digests(root: str) -> dict[str, str]:
    """sha256 of every watched source under ``root``, by path relative to it."""
    out = {}
    for d in WATCHED:
        for name in sorted(os.listdir(os.path.join(root, d))):
            if name.endswith(".py"):
                with open(os.path.join(root, d, name), "rb") as fh:
                    out[os.path.join(d, name)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def compiled_core(root: str, env: dict | os._Environ = os.environ) -> str | None:
    """The directory of a build of the core made from exactly the sources under ``root``, or None."""
    if env.get("DEALBEACON_CORE", "") == "interpreted":
        return None
    build = os.path.join(root, ".build", "core")
    try:
        with open(os.path.join(build, "manifest.json"), "rb") as fh:
            manifest = json.load(fh)
        # an edited, added or removed source: interpreted until built again
        if manifest.get("python") != sys.implementation.cache_tag or manifest.get("sources") != source_digests(root):
            return None
    except (OSError, ValueError):
        return None
    return build


_BUILD = compiled_core(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPILED = _BUILD is not None
if _BUILD is not None:
    sys.path.append(_BUILD)  # mypyc's shared runtime module, imported by name
    __path__.insert(0, os.path.join(_BUILD, "streams"))  # the package's own search path
