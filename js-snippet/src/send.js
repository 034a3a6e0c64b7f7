// Transport: batched fetch (keepalive, text/plain: no CORS preflight) with retries; sendBeacon on unload.
import { buildBatch } from "./payload.js";
import { backoffMs, retriable } from "./retry.js";

export const createSender = ({ endpoint, site, queue, now, rand, fetchFn, beaconFn, setTimer, clearTimer, batch = 20 }) => {
  let attempt = 0;
  let timer;
  let busy = false;
  const body = (events) => JSON.stringify(buildBatch(site, events, now()));
  const schedule = (ms) => {
    clearTimer(timer);
    timer = setTimer(flush, ms);
  };
  async function flush() {
    if (busy || !queue.size()) return;
    busy = true;
    const events = queue.peek(batch);
    let status = 0;
    let retryAfter = 0;
    try {
      // a string body goes as text/plain;charset=UTF-8: a CORS-simple request, no preflight
      const r = await fetchFn(endpoint, { method: "POST", body: body(events), keepalive: true, credentials: "omit" });
      status = r.status;
      retryAfter = +r.headers.get("Retry-After") || 0;
    } catch (e) {} // offline or network error: status 0, retried
    busy = false;
    if (!retriable(status)) {
      // 2xx: handed off; other 4xx: the server dead-lettered them with a reason, a retry cannot help
      queue.remove(events.map((e) => e.event_id));
      attempt = 0;
      if (queue.size()) schedule(0);
    } else schedule(backoffMs(attempt++, retryAfter, rand()));
  }
  // Page going away: hand what is queued to sendBeacon (text/plain, so no preflight that could fail
  // silently). The browser owns delivery from here, so accepted events leave the queue.
  const unload = () => {
    while (queue.size()) {
      const events = queue.peek(batch);
      if (!beaconFn || !beaconFn(endpoint, new Blob([body(events)], { type: "text/plain" }))) return;
      queue.remove(events.map((e) => e.event_id));
    }
  };
  return { flush, unload, schedule };
};
