import os

import pytest

# In CI the integration tier must run: a missing real part is an error, never a skip.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = str(item.fspath)
        if "/functional/" in path or "/e2e/" in path or "/integration/" in path:
            item.add_marker(pytest.mark.integration)
