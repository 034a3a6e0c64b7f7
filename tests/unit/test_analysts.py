"""Analyst credentials: salted scrypt hashes, the verified-password cache, and the file's permissions."""
import os
import pathlib
import stat

import pytest

from dealbeacon.core.analysts import AnalystRegistry, hash_password, password_ok


def test_hashes_are_salted_and_verify_only_the_right_password():
    a, b = hash_password("pw"), hash_password("pw")
    assert a != b and a.startswith("scrypt$")
    assert password_ok(a, "pw") and not password_ok(a, "pW") and not password_ok("sha256$x", "pw")


def test_registry_round_trip_cache_and_removal(tmp_path):
    path = str(tmp_path / "analysts.json")
    reg = AnalystRegistry()
    _, pw = reg.add("ana", ["acme"])
    reg.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert pw not in pathlib.Path(path).read_text()
    again = AnalystRegistry.load(path)
    assert again.authenticate("ana", pw).sites == ("acme",)
    assert again.authenticate("ana", pw) is not None  # second time from the cache
    assert again.authenticate("ana", pw + "x") is None and again.authenticate("bob", pw) is None
    again.add("ana", ["acme"], "new-password")  # a reset forgets the old one, cached or not
    assert again.authenticate("ana", pw) is None and again.authenticate("ana", "new-password")
    assert again.remove("ana") and again.authenticate("ana", "new-password") is None


@pytest.mark.parametrize("name, sites", [("a b", ["acme"]), ("", ["acme"]), ("x" * 65, ["acme"]), ("ok", []),
                                         ("ana\n", ["acme"])])
def test_bad_names_and_empty_site_lists_are_refused(name, sites):
    with pytest.raises(ValueError):
        AnalystRegistry().add(name, sites)
