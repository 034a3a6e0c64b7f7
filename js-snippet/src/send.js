// Transport: batched fetch (keepalive, text/plain: no CORS preflight) with retries; sendBeacon on unload.
import { buildBatch } from "./payload.js";
import { backoffMs, retriable } from "./retry.js";

// w: the window (fetch, navigator.sendBeacon, setTimeout, clearTimeout), a stand-in in tests
export const createSender = ({ endpoint, site }, queue, now, w, rand = Math.random, batch = 20) => {
  let attempt = 0;
  let timer;
  let sending = []; // what the fetch in flight carries
  const body = (events) => JSON.stringify(buildBatch(site, events, now()));
  const schedule = (ms) => {
    w.clearTimeout(timer);
    timer = w.setTimeout(flush, ms);
  };
  async function flush() {
    if (sending[0] || !queue.size()) return;
    const events = (sending = queue.peek(batch));
    let status = 0;
    let retryAfter = 0;
    try {
      // a string body goes as text/plain;charset=UTF-8: a CORS-simple request, no preflight
      const r = await w.fetch(endpoint, { method: "POST", body: body(events), keepalive: true, credentials: "omit" });
      status = r.status;
      retryAfter = +r.headers.get("Retry-After") || 0;
    } catch (e) {} // offline or network error: status 0, retried
    sending = [];
    if (!retriable(status)) {
      // 2xx: handed off; other 4xx: the server dead-lettered them with a reason, a retry cannot help
      queue.remove(events);
      attempt = 0;
      if (queue.size()) schedule(0);
    } else schedule(backoffMs(attempt++, retryAfter, rand()));
  }
  // Page going away: hand what is queued to sendBeacon (a string goes as text/plain;charset=UTF-8, so no
  // preflight that could fail silently), except what the keepalive fetch in flight already carries. The
  // browser owns delivery from here, so accepted events leave the queue.
  const unload = () => {
    const rest = queue.peek(1e9).filter((e) => !sending.includes(e));
    while (rest[0] && w.navigator.sendBeacon?.(endpoint, body(rest.slice(0, batch)))) queue.remove(rest.splice(0, batch));
  };
  return { flush, unload, schedule };
};
