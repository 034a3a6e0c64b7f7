import { describe, expect, it, vi } from "vitest";
import { createQueue } from "../src/queue.js";
import { createSender } from "../src/send.js";

const mem = () => { const m = {}; return { getItem: (k) => m[k] ?? null, setItem: (k, v) => (m[k] = v) }; };
const resp = (status, retryAfter) => ({ status, headers: { get: (h) => (h === "Retry-After" ? retryAfter ?? null : null) } });

// the sender's window: fetch, sendBeacon and timers
const env = (fetch, sendBeacon, setTimeout = () => {}) => ({ fetch, navigator: { sendBeacon }, setTimeout, clearTimeout() {} });

const setup = (responses) => {
  const queue = createQueue(mem(), "q");
  const timers = [];
  const calls = [];
  const fetchFn = vi.fn(async (url, opts) => {
    calls.push(JSON.parse(opts.body));
    const r = responses.shift();
    if (r === "offline") throw new TypeError("Failed to fetch");
    return r;
  });
  const sender = createSender({ endpoint: "https://in/v1/events", site: "acme" }, queue, () => 5,
    env(fetchFn, null, (f, ms) => timers.push(ms)), () => 1);
  for (const id of "abc") queue.push({ event_id: id });
  return { queue, timers, calls, sender, fetchFn };
};

describe("sender", () => {
  it("sends a plain string body (text/plain, no preflight) with keepalive and empties the queue on 202", async () => {
    const { queue, sender, fetchFn, calls } = setup([resp(202)]);
    await sender.flush();
    const opts = fetchFn.mock.calls[0][1];
    expect(typeof opts.body).toBe("string");
    expect(opts.headers).toBeUndefined(); // any custom header would trigger a CORS preflight
    expect(opts.keepalive).toBe(true);
    expect(calls[0]).toMatchObject({ site: "acme", sent_at: 5 });
    expect(queue.size()).toBe(0);
  });
  it("keeps events and backs off on network errors, 5xx and 429 (honouring Retry-After)", async () => {
    const { queue, sender, timers } = setup(["offline", resp(503), resp(429, "7"), resp(202)]);
    await sender.flush();
    await sender.flush();
    await sender.flush();
    expect(queue.size()).toBe(3);
    expect(timers).toEqual([1000, 2000, 7000]);
    await sender.flush();
    expect(queue.size()).toBe(0);
  });
  it("never retries other 4xx (the server dead-lettered them)", async () => {
    const { queue, sender, timers } = setup([resp(400)]);
    await sender.flush();
    expect(queue.size()).toBe(0);
    expect(timers).toEqual([]);
  });
  it("hands the queue to sendBeacon on unload", () => {
    const queue = createQueue(mem(), "q");
    for (let i = 0; i < 45; i++) queue.push({ event_id: "e" + i });
    const bodies = [];
    const sender = createSender({ endpoint: "https://in/v1/events", site: "acme" }, queue, () => 1,
      env(null, (u, b) => (bodies.push(b), true)), () => 0);
    sender.unload();
    expect(bodies.length).toBe(3);
    // a string body: the browser sends it as text/plain;charset=UTF-8, a CORS-simple request
    expect(typeof bodies[0]).toBe("string");
    expect(bodies.map((b) => JSON.parse(b).events.length)).toEqual([20, 20, 5]);
    expect(queue.size()).toBe(0);
  });
  it("does not beacon what the fetch in flight carries", async () => {
    const queue = createQueue(mem(), "q");
    for (const id of "abc") queue.push({ event_id: id });
    const bodies = [];
    let answer;
    const fetch = () => new Promise((r) => (answer = r));
    const sender = createSender({ endpoint: "u", site: "s", batch: 2 }, queue, () => 1, env(fetch, (u, b) => (bodies.push(b), true)), () => 0, 2);
    const inflight = sender.flush(); // a and b in flight
    sender.unload(); // the page hides meanwhile: only c goes by beacon
    expect(bodies.map((b) => JSON.parse(b).events.map((e) => e.event_id))).toEqual([["c"]]);
    answer(resp(202));
    await inflight;
    expect(queue.size()).toBe(0);
  });
  it("keeps the queue when sendBeacon refuses", () => {
    const queue = createQueue(mem(), "q");
    queue.push({ event_id: "x" });
    const sender = createSender({ endpoint: "u", site: "s" }, queue, () => 1, env(null, () => false), () => 0);
    sender.unload();
    expect(queue.size()).toBe(1);
  });
});
