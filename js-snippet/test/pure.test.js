import { describe, expect, it } from "vitest";
import { buildBatch, buildEvent, uuid } from "../src/payload.js";
import { createQueue } from "../src/queue.js";
import { backoffMs, retriable } from "../src/retry.js";
import { createEngagement } from "../src/engage.js";
import { validateBatch } from "./schema.js";

let seed = 1;
const rnd = (k) => Uint8Array.from({ length: k }, () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) & 255);
const ctx = { room_id: "deal-42", visitor_id: "v1", session_id: "s1", token: "v1.abc.def", url: "https://rooms.example/r/42", referrer: "" };
const NOW = 1_790_000_000_000;

describe("payload builders", () => {
  it("make RFC 4122 v4 ids", () => {
    const id = uuid(rnd);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(uuid(rnd)).not.toBe(id);
    // every random digit takes all 16 values, the variant digit only 8-b
    const ids = Array.from({ length: 400 }, () => uuid((k) => crypto.getRandomValues(new Uint8Array(k))));
    expect(new Set(ids.map((u) => u[0])).size).toBe(16);
    expect(new Set(ids.map((u) => u[19]))).toEqual(new Set(["8", "9", "a", "b"]));
  });

  const samples = [
    ["room_view", {}], ["content_view", { content_id: "pricing" }],
    ["engagement", { content_id: "proposal", engaged_ms: 15000, scroll_pct: 40 }],
    ["content_progress", { content_id: "proposal", page: 3, progress_pct: 25 }],
    ["content_progress", { content_id: "demo-video", progress_pct: 50, media_position_s: 61.2, props: { watched_s: 58 } }],
    ["download", { href: "https://cdn.example/a.pdf", content_id: "security" }],
    ["link_click", { href: "https://other.example/" }], ["share", { share_channel: "email", share_to: "cfo@buyer.example" }],
    ["cta", { cta: "book-meeting", props: { plan: "pro" } }], ["identify", { props: { email: "a@b.c" } }],
    ["engagement", { content_id: null, engaged_ms: 1000, scroll_pct: 0 }],
  ];
  it.each(samples)("%s payload validates against the contract's JSON Schema", (type, fields) => {
    const batch = buildBatch("acme", [buildEvent(type, fields, ctx, NOW, rnd)], NOW + 5);
    expect(validateBatch(batch), JSON.stringify(validateBatch.errors)).toBe(true);
  });
  it("drops null fields and omits a missing token", () => {
    const e = buildEvent("room_view", { content_id: null }, { ...ctx, token: null }, NOW, rnd);
    expect("content_id" in e).toBe(false);
    expect("token" in e).toBe(false);
    expect("referrer" in e).toBe(false); // empty
    expect(e).toMatchObject({ room_id: "deal-42", visitor_id: "v1", session_id: "s1", ts: NOW });
  });
  it("the schema rejects what the server rejects", () => {
    const e = buildEvent("engagement", { engaged_ms: "lots" }, ctx, NOW, rnd);
    expect(validateBatch(buildBatch("acme", [e], NOW))).toBe(false);
  });
});

describe("queue", () => {
  const mem = () => { const m = {}; return { getItem: (k) => m[k] ?? null, setItem: (k, v) => (m[k] = v) }; };
  it("persists across instances (reloads)", () => {
    const s = mem();
    createQueue(s, "q").push({ event_id: "a" });
    expect(createQueue(s, "q").peek(5)).toEqual([{ event_id: "a" }]);
  });
  it("is capped, dropping the oldest", () => {
    const q = createQueue(mem(), "q", 3);
    for (const id of "abcde") q.push({ event_id: id });
    expect(q.peek(9).map((e) => e.event_id)).toEqual(["c", "d", "e"]);
  });
  it("removes what peek handed out", () => {
    const q = createQueue(mem(), "q");
    for (const id of "abc") q.push({ event_id: id });
    const [a, , c] = q.peek(3);
    q.remove([a, c]);
    expect(q.peek(9)).toEqual([{ event_id: "b" }]);
  });
  it("survives corrupt storage", () => {
    const s = mem();
    s.setItem("q", "{not json");
    expect(createQueue(s, "q").size()).toBe(0);
  });
});

describe("retry policy", () => {
  it("retries network errors, 429 and 5xx only", () => {
    for (const s of [0, 429, 500, 503]) expect(retriable(s)).toBe(true);
    for (const s of [202, 400, 401, 403, 413, 415, 422]) expect(retriable(s)).toBe(false);
  });
  it("backs off exponentially with jitter, capped, Retry-After as a floor", () => {
    expect(backoffMs(0, 0, 0)).toBe(500);
    expect(backoffMs(0, 0, 1)).toBe(1000);
    expect(backoffMs(3, 0, 1)).toBe(8000);
    expect(backoffMs(20, 0, 1)).toBe(60000);
    expect(backoffMs(0, 30, 0)).toBe(30000);
  });
});

describe("engaged time", () => {
  it("counts only visible and recently active time, per content", () => {
    const e = createEngagement(30000);
    e.activity(0);
    e.tick(0, true, "proposal");
    expect(e.tick(1000, true, "proposal")).toBe(1000);
    expect(e.tick(2000, false, "proposal")).toBe(0); // hidden
    expect(e.tick(3000, true, "pricing")).toBe(1000);
    expect(e.tick(40000, true, "pricing")).toBe(0); // idle for > 30 s
    expect(e.tick(41000, true, "pricing", true)).toBe(1000); // a playing video counts
    expect(e.drain()).toEqual([["proposal", 1000], ["pricing", 2000]]);
    expect(e.drain()).toEqual([]);
  });
  it("caps one step (a frozen timer is not engagement) and restarts after a pause", () => {
    const e = createEngagement(1e9, 5000);
    e.activity(0);
    e.tick(0, true, "x");
    expect(e.tick(60000, true, "x")).toBe(5000);
    e.pause();
    expect(e.tick(70000, true, "x")).toBe(0);
    expect(e.tick(71000, true, "x")).toBe(1000);
  });
});
