"""A buying committee in real headless Chromium, one browser profile per person, on a room holding two
documents rendered the way PDF viewers render them (a sheet per page): the CFO reads three pages of the
proposal and stops, the IT lead reads the security pack and shares the room, the recipient opens it without a
token, and the seller looks in with their own link. The seller's page, rendered in Chromium, must show what
each person did, page by page (+-3 s), where each stopped, the share and the recipient's first visit, list a
deal with a high-severity alert above this healthy one, and show nothing of the seller's own visit."""
import collections
import os
import subprocess
import time

import httpx
import orjson

from dealbeacon.core import tokens
from ingest.sellers import seller_token
from tests.support.browser import SNIPPET, room_stack, run_scenario, sql_reader, wait_stored
from tests.support.waiting import wait_until

ROOM = "deal-initech"
DAY = 86_400_000


def test_a_committee_reads_shares_and_the_seller_sees_it_page_by_page(built_snippet, tmp_path):
    secret = "committee-secret"
    with room_stack(tmp_path, ROOM, "committee-room.html", secret) as (site_url, srv):
        auth = {"Authorization": f"Bearer {secret}"}
        assert httpx.put(f"{srv.url}/v1/sites/acme/rooms/{ROOM}", headers=auth, json={
            "stage": "proposal", "owner": "sam", "name": "Initech", "content": [
                {"id": "q3-proposal", "title": "Proposal", "kind": "proposal", "pages": 4},
                {"id": "sec-pack", "title": "Security overview", "kind": "security", "pages": 3}],
            "stakeholders": [{"id": "cfo", "role": "economic_buyer", "email": "cfo@initech.example"},
                             {"id": "it-lead", "role": "technical", "email": "it@initech.example"}]}).status_code == 202
        # another deal of the same seller, busy for two weeks then silent for a month in negotiation: a
        # high-severity quiet alert
        now = int(time.time() * 1000)
        assert httpx.put(f"{srv.url}/v1/sites/acme/rooms/deal-stalled", headers=auth, json={
            "stage": "negotiation", "owner": "sam", "name": "Stalled", "updated_at": now - 45 * DAY,
            "stakeholders": [{"id": "ceo", "role": "economic_buyer"}]}).status_code == 202
        token = tokens.mint(secret, "deal-stalled", "ceo", now // 1000 + 3600)
        old = [{"event_id": f"9f0a3c1e-0000-4000-8000-{d:012d}", "type": "room_view", "room_id": "deal-stalled",
                "visitor_id": "v-ceo", "session_id": f"s-old-{d}", "ts": now - d * DAY, "token": token} for d in range(30, 45)]
        assert httpx.post(f"{srv.url}/v1/events", headers=auth,
                          json={"site": "acme", "sent_at": now, "events": old}).status_code == 202

        exp = now // 1000 + 3600
        people = [
            {"name": "cfo", "token": tokens.mint(secret, ROOM, "cfo", exp),
             "steps": [["q3-proposal", 1, 4000], ["q3-proposal", 2, 3000], ["q3-proposal", 3, 6000]]},
            {"name": "it-lead", "token": tokens.mint(secret, ROOM, "it-lead", exp),
             "steps": [["sec-pack", 1, 3000], ["sec-pack", 2, 5000], ["q3-proposal", 3, 3000]],
             "share": "legal@initech.example"},
            {"name": "anonymous", "token": None, "steps": [["sec-pack", 1, 4000]]},
            {"name": "seller", "token": seller_token(secret, "sam", now / 1000),
             "steps": [["q3-proposal", 1, 5000], ["q3-proposal", 4, 3000]]},
        ]
        out = run_scenario("committee.mjs", f"{site_url}/r/{ROOM}/", 300,
                           env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PEOPLE": orjson.dumps(people).decode()})
        sql = sql_reader(srv)
        wait_stored(sql, out)
        assert out["invalid"] == [] and sql("SELECT count() FROM dead_letters") == [[0]]
        # the seller's own visit is stored (and never counted)
        assert sql("SELECT count() > 0 FROM events WHERE stakeholder_id = 'seller:sam' AND token_status = 'seller'") == [[1]]
        wait_until(lambda: sql("SELECT count() FROM alerts FINAL WHERE room_id = 'deal-stalled' AND severity = 'high'")[0][0],
                   timeout=120, what="the stalled deal's high alert (the wall-clock ticker)")

        measured = collections.Counter()
        for t in out["truth"]:
            measured[(t["who"], t["c"], t["p"])] += t["ms"]
        seller = srv.url + httpx.put(f"{srv.url}/v1/sites/acme/sellers/sam", headers=auth, json={"name": "Sam"}).json()["page"]
        shown = subprocess.run(["node", "e2e/deal-page.mjs", f"{seller}&room={ROOM}", str(tmp_path / "committee-deal.png")],
                               cwd=SNIPPET, capture_output=True, text=True, timeout=120)
        assert shown.returncode == 0, shown.stderr[-3000:]
        view = orjson.loads(shown.stdout.strip().splitlines()[-1])
        doc_id = {"Proposal": "q3-proposal", "Security overview": "sec-pack"}  # the page shows the catalogue's titles
        rendered = {(r["who"], doc_id[r["content"]]): r for r in view["rows"]}
        print("measured:", dict(measured), "\nrendered:", view["rows"])

        # who read what, page by page, against the scenario's own clock
        assert set(rendered) == {("cfo", "q3-proposal"), ("it-lead", "sec-pack"), ("it-lead", "q3-proposal"),
                                 ("anonymous", "sec-pack")}, sorted(rendered)
        for (who, doc), row in rendered.items():
            name = "anonymous" if who == "anonymous" else who
            want = {p: ms for (w, c, p), ms in measured.items() if w == name and c == doc}
            assert [p["page"] for p in row["pages"]] == sorted(want), (who, doc, row["pages"], want)
            for p in row["pages"]:
                assert abs(p["s"] * 1000 - want[p["page"]]) <= 3000, (who, doc, p, want)
        assert rendered[("cfo", "q3-proposal")]["stopped"] == "page 3"  # never reached the terms
        assert rendered[("it-lead", "sec-pack")]["stopped"] == "page 2"

        sections = view["sections"]
        assert [s[:3] for s in sections["Shares"]] == [["it-lead", "legal@initech.example", "email"]]
        arrivals = " ".join(line for line in sections["New people (not on the committee)"] if isinstance(line, str))
        assert "likely legal@initech.example, shared by it-lead" in arrivals, arrivals
        assert all("seller" not in " ".join(map(str, v)) for v in sections["Visits"]), sections["Visits"]
        assert [c[0] for c in sections["Committee"]] == ["cfo", "it-lead"]
        # the list: the stalled deal with its high alert above this healthy one
        assert [d["id"] for d in view["list"]][:2] == ["deal-stalled", ROOM], view["list"]
        assert "(high)" in view["list"][0]["text"]
