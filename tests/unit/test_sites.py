"""The site registry's demo site: made once with its own rate limit (its history's replay fits in it), an older
demo site without one is given it, and a limit someone set is kept."""
import orjson

from dealbeacon.core.sites import DEMO_RATE_LIMIT_EVENTS_PER_S, DEMO_SITE_KEY, SiteRegistry


def test_the_demo_site_is_made_once_with_its_own_rate_limit(tmp_path):
    path = str(tmp_path / "sites.json")
    made = SiteRegistry.load(path).ensure_demo(path)
    again = SiteRegistry.load(path).ensure_demo(path)
    assert made == again and made.key == DEMO_SITE_KEY and made.rate_limit_events_per_s == DEMO_RATE_LIMIT_EVENTS_PER_S


def test_an_older_demo_site_gets_the_limit_and_a_limit_set_by_hand_is_kept(tmp_path):
    path = tmp_path / "sites.json"
    path.write_bytes(orjson.dumps([{"key": "demo", "secret": "old-secret", "origins": ["*"]},
                                   {"key": "acme", "secret": "s", "origins": ["https://acme.example"]}]))
    site = SiteRegistry.load(str(path)).ensure_demo(str(path))
    assert (site.secret, site.rate_limit_events_per_s) == ("old-secret", DEMO_RATE_LIMIT_EVENTS_PER_S)
    saved = SiteRegistry.load(str(path))
    assert saved.get("demo") == site and saved.get("acme").origins == ("https://acme.example",)
    path.write_bytes(orjson.dumps([{"key": "demo", "secret": "s2", "rate_limit_events_per_s": 50.0}]))
    assert SiteRegistry.load(str(path)).ensure_demo(str(path)).rate_limit_events_per_s == 50.0
