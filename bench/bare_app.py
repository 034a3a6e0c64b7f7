"""Baseline for bench/ingest_bench.py: a bare Starlette endpoint that only reads and parses the body."""
import orjson
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route


async def events(request):
    body = orjson.loads(await request.body())
    return Response(orjson.dumps({"accepted": len(body["events"]), "rejected": []}), status_code=202,
                    media_type="application/json")


app = Starlette(routes=[Route("/v1/events", events, methods=["POST"])])
