from hypothesis import given
from hypothesis import strategies as st

from dealbeacon.core import tokens

SECRET = "s3cret"


def test_valid_token_verifies():
    t = tokens.mint(SECRET, "room-1", "cfo", 2_000)
    check = tokens.verify(SECRET, t, "room-1", now_s=1_999)
    assert check.verified and check.stakeholder_id == "cfo"


def test_expired_token_never_verifies():
    t = tokens.mint(SECRET, "room-1", "cfo", 2_000)
    assert tokens.verify(SECRET, t, "room-1", now_s=2_000).status == "expired"
    assert tokens.verify(SECRET, t, "room-1", now_s=2_000).stakeholder_id == ""


def test_token_of_another_room_is_refused():
    t = tokens.mint(SECRET, "room-1", "cfo", 2_000)
    assert tokens.verify(SECRET, t, "room-2", now_s=1_000).status == "room_mismatch"


def test_wrong_secret_and_tampering_are_invalid():
    t = tokens.mint(SECRET, "room-1", "cfo", 2_000)
    assert tokens.verify("other", t, "room-1", now_s=1_000).status == "invalid"
    v, payload, sig = t.split(".")
    forged_payload = tokens._b64(b'["room-1","ceo",2000]')
    assert tokens.verify(SECRET, f"{v}.{forged_payload}.{sig}", "room-1", now_s=1_000).status == "invalid"
    assert tokens.verify(SECRET, t + "x", "room-1", now_s=1_000).status == "invalid"


@given(st.text(max_size=200))
def test_arbitrary_strings_never_verify(garbage):
    assert not tokens.verify(SECRET, garbage, "room-1", now_s=0).verified


def test_cli_helper_mints_with_the_site_secret(tmp_path):
    from dealbeacon.app.cli import main, mint_for_site
    from dealbeacon.core.settings import Settings
    from dealbeacon.core.sites import SiteRegistry

    sites = str(tmp_path / "sites.json")
    assert main(["site", "add", "acme", "--secret", "k1", "--sites-file", sites]) == 0
    s = Settings(sites_file=sites)
    t = mint_for_site(s, "acme", "room-9", "legal", ttl_days=1, now_s=1_000)
    assert tokens.verify(SiteRegistry.load(sites).get("acme").secret, t, "room-9", now_s=1_001).stakeholder_id == "legal"


def test_a_sellers_own_page_token_opens_any_room_as_the_sellers_team():
    from ingest.sellers import seller_token

    tok = seller_token(SECRET, "alice", 1_000)
    assert tokens.verify_visit(SECRET, tok, "room-1", now_s=1_001) == tokens.TokenCheck("seller", "seller:alice")
    assert tokens.verify_visit(SECRET, tok, "room-2", now_s=1_001).stakeholder_id == "seller:alice"
    assert tokens.verify_visit("other", tok, "room-1", now_s=1_001).status == "invalid"  # another site's secret
    assert tokens.verify_visit(SECRET, tok, "room-1", now_s=10 ** 10).status == "expired"
    # a stakeholder token is still bound to its room; one relabelled as a seller token does not verify
    t = tokens.mint(SECRET, "room-1", "cfo", 2_000)
    assert tokens.verify_visit(SECRET, t, "room-1", now_s=1_000) == tokens.TokenCheck("valid", "cfo")
    assert tokens.verify_visit(SECRET, t, "room-2", now_s=1_000).status == "room_mismatch"
    assert tokens.verify_visit(SECRET, "s1." + t.split(".", 1)[1], "room-1", now_s=1_000).status == "invalid"
    # a seller-prefixed token minted for a room (not for seller:<id>) is refused
    assert tokens.verify_visit(SECRET, tokens.mint(SECRET, "room-1", "x", 2_000, prefix=tokens.SELLER_PREFIX),
                               "room-1", now_s=1_000).status == "invalid"
