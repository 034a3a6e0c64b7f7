// The tracker wired to a happy-dom window: privacy controls, consent gate, token handling, hide flush.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Window } from "happy-dom";
import { start } from "../src/tracker.js";

const cfg = { site: "acme", room: "deal-1", endpoint: "https://in.example/v1/events", heartbeat: 15000 };
let sent, window, localStorage, history, location, navigator, document;
const queued = () => JSON.parse(localStorage.getItem("db_q:acme") || "[]");

beforeEach(() => {
  vi.useFakeTimers();
  // a fresh browser window per test, so trackers from other tests cannot interfere
  window = new Window({ url: "https://rooms.example/r/deal-1" });
  ({ localStorage, history, location, navigator, document } = window);
  Object.assign(window, { setTimeout, clearTimeout, setInterval, clearInterval }); // vi's fake timers
  Object.defineProperty(window, "crypto", { configurable: true, value: globalThis.crypto });
  sent = [];
  window.fetch = vi.fn(async (url, opts) => (sent.push(JSON.parse(opts.body)), { status: 202, headers: { get: () => null } }));
  navigator.sendBeacon = vi.fn(() => true);
  window.IntersectionObserver = class { observe() {} };
  Object.defineProperty(navigator, "doNotTrack", { configurable: true, value: null });
});
afterEach(() => {
  window.happyDOM.abort();
  vi.useRealTimers();
});

describe("tracker", () => {
  it("sends a room view carrying the link token, and removes the token from the address bar", async () => {
    history.replaceState(null, "", "/r/deal-1?dbt=v1.tok.sig&x=1");
    start(cfg, window);
    await vi.advanceTimersByTimeAsync(10);
    expect(sent[0].events[0]).toMatchObject({ type: "room_view", room_id: "deal-1", token: "v1.tok.sig" });
    expect(location.search).toBe("?x=1");
    expect(localStorage.getItem("db_t:deal-1")).toBe("v1.tok.sig");
  });

  it("honours Do-Not-Track: nothing is queued or sent", async () => {
    Object.defineProperty(navigator, "doNotTrack", { configurable: true, value: "1" });
    const api = start(cfg, window);
    api.cta("x");
    await vi.advanceTimersByTimeAsync(20000);
    expect(sent).toEqual([]);
    expect(queued()).toEqual([]);
  });

  it("with consent required, nothing is tracked or sent before consent", async () => {
    const api = start({ ...cfg, consent: "required" }, window);
    api.cta("before");
    await vi.advanceTimersByTimeAsync(20000);
    expect(sent).toEqual([]);
    expect(queued()).toEqual([]);
    api.consent(true);
    await vi.advanceTimersByTimeAsync(10);
    expect(sent.flatMap((b) => b.events.map((e) => e.type))).toEqual(["room_view"]);
  });

  it("opt-out stops tracking, clears the queue and sticks across loads", async () => {
    const api = start(cfg, window);
    api.optOut();
    api.cta("after");
    expect(queued()).toEqual([]);
    start(cfg, window).cta("next-load");
    await vi.advanceTimersByTimeAsync(20000);
    expect(sent.flatMap((b) => b.events.map((e) => e.type))).toEqual(["room_view"]);
  });

  it("hiding the page hands queued events to sendBeacon as a text body", async () => {
    const api = start(cfg, window);
    await vi.advanceTimersByTimeAsync(10);
    window.fetch = vi.fn(() => new Promise(() => {})); // nothing else leaves by fetch
    api.cta("request-quote");
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
    document.dispatchEvent(new window.Event("visibilitychange"));
    expect(navigator.sendBeacon).toHaveBeenCalledTimes(1);
    const [url, body] = navigator.sendBeacon.mock.calls[0];
    expect(url).toBe(cfg.endpoint);
    expect(typeof body).toBe("string"); // sent as text/plain;charset=UTF-8
    expect(JSON.parse(body).events.map((e) => e.cta)).toEqual(["request-quote"]);
    expect(queued()).toEqual([]);
    Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "visible" });
  });

  it("SPA navigation sends a new room view with the new URL", async () => {
    start(cfg, window);
    history.pushState({}, "", "/r/deal-1/pricing");
    await vi.advanceTimersByTimeAsync(15000);
    const views = sent.flatMap((b) => b.events).filter((e) => e.type === "room_view");
    expect(views.map((e) => new URL(e.url).pathname)).toEqual(["/r/deal-1", "/r/deal-1/pricing"]);
  });

  it("a #fragment (table of contents, in-page links) is not a room view; a new path is", async () => {
    start(cfg, window);
    history.pushState({}, "", "/r/deal-1#pricing");
    window.dispatchEvent(new window.Event("popstate"));
    history.replaceState({}, "", "/r/deal-1#faq");
    history.pushState({}, "", "/r/deal-1/security#top");
    await vi.advanceTimersByTimeAsync(15000);
    const views = sent.flatMap((b) => b.events).filter((e) => e.type === "room_view");
    expect(views.map((e) => new URL(e.url).pathname)).toEqual(["/r/deal-1", "/r/deal-1/security"]);
  });
});
