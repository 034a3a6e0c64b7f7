"""Stream processing: pure processors (processors.py) run by the embedded pipeline and by Faust agents.

The pure core may run compiled (scripts/build_core.py builds it into .build/core/ with mypyc): its modules
are then found there first, but only while the build's manifest matches every source it was built from
(streams/ and dealbeacon/core/) and ``DEALBEACON_CORE`` is not ``interpreted``. ``COMPILED`` says which."""
from __future__ import annotations

import hashlib
import json
import os
import sys


def compiled_core(root: str, env: dict | os._Environ = os.environ) -> str | None:
    """The directory of a build of the core made from exactly the sources under ``root``, or None."""
    if env.get("DEALBEACON_CORE", "") == "interpreted":
        return None
    build = os.path.join(root, ".build", "core")
    try:
        with open(os.path.join(build, "manifest.json"), "rb") as fh:
            manifest = json.load(fh)
        if manifest.get("python") != sys.implementation.cache_tag:
            return None
        for rel, digest in manifest["sources"].items():
            with open(os.path.join(root, rel), "rb") as fh:
                if hashlib.sha256(fh.read()).hexdigest() != digest:
                    return None
        watched = {os.path.relpath(os.path.join(d, f), root) for d in (os.path.join(root, "streams"),
                                                                       os.path.join(root, "dealbeacon", "core"))
                   for f in os.listdir(d) if f.endswith(".py")}
        if watched != set(manifest["sources"]):  # a module added or removed since the build
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return build


_BUILD = compiled_core(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPILED = _BUILD is not None
if _BUILD is not None:
    sys.path.append(_BUILD)  # mypyc's shared runtime module, imported by name
    __path__.insert(0, os.path.join(_BUILD, "streams"))  # the package's own search path
