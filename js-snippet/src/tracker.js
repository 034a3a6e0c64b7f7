// DOM wiring: what to observe and when to send. Rules live in the pure modules.
import { buildEvent, uuid } from "./payload.js";
import { createQueue } from "./queue.js";
import { createEngagement } from "./engage.js";
import { createSender } from "./send.js";
import { createViews } from "./view.js";

const FILE = /\.(pdf|docx?|xlsx?|pptx?|key|numbers|csv|zip)$/i; // matched against a.pathname

export const start = (cfg, w = window) => {
  const d = w.document;
  const n = w.navigator;
  const ls = w.localStorage;
  const loc = w.location;
  // Do-Not-Track or opted out: an API that does nothing, nothing stored
  if (n.doNotTrack == "1" || ls.db_optout) return new Proxy({}, { get: () => () => {} });
  const now = () => Date.now();
  const rnd = (k) => w.crypto.getRandomValues(new Uint8Array(k));
  const queue = createQueue(ls, "db_q:" + cfg.site);
  const sender = createSender(cfg, queue, now, w);
  const eng = createEngagement();
  const cid = (el) => el.closest("[data-db-content]")?.dataset.dbContent;
  // stakeholder token: read once from the landing URL, kept per room, removed from the address bar
  const url = new URL(loc.href);
  const q = url.searchParams;
  const tk = "db_t:" + cfg.room;
  if (q.get("dbt")) {
    ls[tk] = q.get("dbt");
    q.delete("dbt");
    w.history.replaceState(w.history.state, "", url);
  }
  // storage read and written as properties (localStorage.db_vid is its item db_vid)
  const ctx = { room_id: cfg.room, visitor_id: (ls.db_vid ||= uuid(rnd)), session_id: (w.sessionStorage.db_sid ||= uuid(rnd)),
    token: ls[tk], referrer: d.referrer.slice(0, 2048) };
  let enabled = cfg.consent !== "required" || ls.db_consent == 1;
  const track = (type, fields) => {
    if (!enabled) return;
    ctx.url = loc.href.slice(0, 2048);
    queue.push(buildEvent(type, fields, ctx, now(), rnd));
    if (queue.size() >= 10) sender.schedule(0);
  };

  // what is in view: an IntersectionObserver with fine thresholds keeps each item's latest geometry (clipped
  // by the viewport and every scrolling ancestor), and a sample every 500 ms re-evaluates it, however tall
  // the element. The item's scrolling pane is observed too: its visible part is the item's box. The DOM is
  // watched; a mutation only marks the item list stale (rebuilt at the next sample, bounded work).
  const views = createViews();
  const geo = new Map();
  const io = new w.IntersectionObserver((es) => es.forEach((e) => geo.set(e.target, e)),
    { threshold: [...Array(101).keys()].map((i) => i / 100) });
  const vis = (el, e = geo.get(el)) => (e ? e.intersectionRect.width * e.intersectionRect.height : 0);
  let items = [];
  let stale = 1;
  new w.MutationObserver(() => (stale = 1)).observe(d.documentElement, { childList: true, subtree: true });
  const scan = () => {
    stale = 0;
    items = [...d.querySelectorAll("[data-db-content],[data-db-page]")].map((el) => {
      let sc = el;
      while ((sc = sc.parentElement) && sc != d.body && !/au|sc/.test(w.getComputedStyle(sc).overflowY));
      io.observe(el);
      sc && sc != d.body ? io.observe(sc) : (sc = 0);
      const ce = el.dataset.dbContent ? el : el.parentElement.closest("[data-db-content]");
      if (el.play && !el.dbo) {
        el.dbo = 1;
        let last = 0, sum = 0, done = 0;
        el.addEventListener("timeupdate", () => {
          const dt = el.currentTime - last;
          last = el.currentTime;
          if (dt > 0 && dt < 2) sum += dt;
          const m = 25 * Math.floor((100 * el.currentTime) / el.duration / 25 + 0.02); // 25, 50, 75, 100
          if (m > done) {
            done = m;
            track("content_progress", { content_id: el.dataset.dbContent, progress_pct: m,
              media_position_s: el.currentTime, props: { watched_s: Math.round(sum) } });
          }
        });
      }
      return ce && { el, sc, c: ce.dataset.dbContent, p: ce != el && +el.dataset.dbPage,
        n: +ce.dataset.dbPages || ce.querySelectorAll("[data-db-page]").length };
    }).filter(Boolean);
  };

  // engaged time: credited every sample to the content and page in view, sent every cfg.heartbeat ms
  let scroll = 0, main;
  const beat = () => eng.drain().forEach(([k, ms]) => {
    const [c, p] = k.split(" ");
    track("engagement", { content_id: c, page: p && +p, engaged_ms: Math.min(ms, 300000), scroll_pct: scroll });
  });
  const playing = () => [...d.querySelectorAll("video")].some((v) => !v.paused && !v.ended);
  w.setInterval(() => {
    const on = d.visibilityState == "visible";
    stale && scan();
    const [evs, k] = views(now(), on ? items.map((it) => ({ ...it, own: geo.get(it.el)?.intersectionRatio,
      scr: vis(it.el) / (it.sc ? vis(it.sc) : w.innerWidth * w.innerHeight) })) : []);
    evs.forEach((e) => track(...e));
    eng.tick(now(), on, k, playing());
  }, 500);
  w.setInterval(() => (beat(), sender.flush()), cfg.heartbeat);
  // activity (pointerdown covers touch, scroll the wheel), and the scroll depth of what actually scrolls:
  // the document or the largest pane (an element's scroll reaches window only in the capture phase)
  ["mousemove", "keydown", "scroll", "pointerdown"].forEach((t) => w.addEventListener(t, (ev) => {
    eng.activity(now());
    const e = ev.target.scrollingElement || ev.target;
    if (t == "scroll" && e.scrollHeight >= (main || e).scrollHeight) {
      main != e && ((main = e), (scroll = 0));
      scroll = Math.max(scroll, Math.min(100, (100 * e.scrollTop) / (e.scrollHeight - e.clientHeight)) || 0);
    }
  }, { passive: true, capture: true }));
  const away = () => {
    beat();
    eng.pause();
    sender.unload();
  };
  d.addEventListener("visibilitychange", () => (d.visibilityState == "hidden" ? away() : eng.activity(now())));
  w.addEventListener("pagehide", away);
  w.addEventListener("online", () => sender.flush());
  // clicks: downloads, outbound links, share buttons
  d.addEventListener("click", (ev) => {
    const t = ev.target.closest ? ev.target : d.body;
    const share = t.closest("[data-db-share]");
    const a = t.closest("a[href]");
    const type = share ? "share" : !a ? 0 : a.hasAttribute("download") || FILE.test(a.pathname) ? "download" : a.host != loc.host && "link_click";
    type && track(type, { share_channel: share && (share.dataset.dbShare || "link"), href: !share && a.href, content_id: cid(t) });
  }, true);

  // SPA navigation: a new path or query is a room view, a #fragment is not; what a router renders after
  // pushState is picked up by the MutationObserver
  const here = () => loc.href.split("#")[0];
  let href = here();
  const nav = () => here() != href && ((href = here()), beat(), (scroll = 0), track("room_view"));
  const h = w.history;
  ["pushState", "replaceState"].forEach((m) => {
    const orig = h[m];
    h[m] = (...a) => (orig.apply(h, a), nav());
  });
  w.addEventListener("popstate", nav);

  const begin = () => {
    track("room_view");
    sender.flush();
  };
  if (enabled) begin();
  const off = (yes) => {
    ls[yes ? "db_optout" : "db_consent"] = +!!yes;
    enabled = false;
    queue.clear();
  };
  return {
    share: (o = {}) => track("share", { share_channel: o.channel || "other", share_to: o.to, content_id: o.content }),
    cta: (name, props) => track("cta", { cta: name, props }),
    identify: (traits) => track("identify", { props: traits }),
    flush: () => (beat(), sender.flush()),
    consent: (yes) => (!yes ? off() : enabled || ((ls.db_consent = 1), (enabled = true), begin())),
    optOut: () => off(1),
  };
};
