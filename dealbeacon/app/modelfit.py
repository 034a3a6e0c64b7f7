"""Refitting the win model as deals close (both modes): a composition-root task, since it meets a store
reader (sinks/modelfit.py) and the hand-off.

Every ``model_refit_s`` it reads each site's closed deals' score snapshots, fits (streams/winmodel.fit: the
prior until the site has 50 won and 50 lost deals) and submits a fitted model as a site-wide ``model``
record through the same hand-off as events, so every room of the site (in every partition) takes it in order
with its own records. Several processes running it (ingest replicas) fit the same data to the same version;
a room given the same model again changes nothing.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sinks.modelfit import read_training
from streams.winmodel import MAX_DEALS, PRIOR_VERSION, WinModel, fit

log = logging.getLogger("dealbeacon.modelfit")


async def refit_site(site: str, reader: Callable[[str], list], submit: Callable[[list, list], Awaitable],
                     won_stages: tuple[str, ...], closed_stages: tuple[str, ...], now_ms: int,
                     last: dict[str, str]) -> WinModel:
    """One site's refit. A fitted model is handed over every round, new or not: a room opened since, on a
    partition where no other room of the site lives yet, started on the prior and takes it now (a room given
    the model it has changes nothing). ``last``: site -> version last handed over (for the log)."""
    rows = await asyncio.to_thread(read_training, reader, site, won_stages, closed_stages, MAX_DEALS)
    model = await asyncio.to_thread(fit, rows)
    if model.version != PRIOR_VERSION:
        await submit([model.record(site, now_ms)], [])
        if last.get(site) != model.version:
            log.info("site %s: win model %s (%d won, %d lost)", site, model.version, model.won, model.lost)
        last[site] = model.version
    return model


async def refit_loop(sites: Callable[[], list[str]], reader, submit, won_stages, closed_stages,
                     every_s: float, now_ms: Callable[[], int]) -> None:
    last: dict[str, str] = {}
    while True:
        for site in sites():
            try:
                await refit_site(site, reader, submit, won_stages, closed_stages, now_ms(), last)
            except Exception as e:  # the next round retries; scores keep the model they have
                log.warning("site %s: refit failed: %s", site, e)
        await asyncio.sleep(every_s)
