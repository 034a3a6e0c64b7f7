// DOM wiring: what to observe and when to send. Rules live in the pure modules.
import { buildEvent } from "./payload.js";
import { createQueue } from "./queue.js";
import { createEngagement } from "./engage.js";
import { createSender } from "./send.js";

const FILE = /\.(pdf|docx?|xlsx?|pptx?|key|numbers|csv|zip)$/i; // matched against a.pathname

export const start = (cfg, w = window) => {
  const d = w.document;
  const n = w.navigator;
  const ls = w.localStorage;
  const loc = w.location;
  const api = { share() {}, cta() {}, identify() {}, flush() {}, consent() {}, optOut() {} };
  if (n.doNotTrack === "1" || w.doNotTrack === "1" || ls.getItem("db_optout")) return api;
  const now = () => Date.now();
  const rnd = (k) => w.crypto.getRandomValues(new Uint8Array(k));
  const id = (store, key) => store.getItem(key) || (store.setItem(key, rnd(8).join("").slice(0, 24)), store.getItem(key));
  const queue = createQueue(ls, "db_q:" + cfg.site);
  const sender = createSender({ endpoint: cfg.endpoint, site: cfg.site, queue, now, rand: Math.random,
    fetchFn: (u, o) => w.fetch(u, o), beaconFn: n.sendBeacon && ((u, b) => n.sendBeacon(u, b)),
    setTimer: (f, ms) => w.setTimeout(f, ms), clearTimer: (t) => w.clearTimeout(t) });
  const eng = createEngagement();
  // stakeholder token: read once from the landing URL, kept per room, removed from the address bar
  const url = new URL(loc.href);
  const tok = url.searchParams.get("dbt");
  if (tok) {
    ls.setItem("db_t:" + cfg.room, tok);
    url.searchParams.delete("dbt");
    w.history.replaceState(w.history.state, "", url);
  }
  const ctx = { room: cfg.room, visitor: id(ls, "db_vid"), session: id(w.sessionStorage, "db_sid"),
    token: ls.getItem("db_t:" + cfg.room), referrer: d.referrer };
  let enabled = cfg.consent !== "required" || ls.getItem("db_consent") === "1";
  const track = (type, fields) => {
    if (!enabled) return;
    ctx.url = loc.href;
    queue.push(buildEvent(type, fields, ctx, now(), rnd));
    if (queue.size() >= 10) sender.schedule(0);
  };

  // content in view: >= 50 % of it visible, or covering >= 50 % of the viewport (a long document), for
  // >= 1 s is a view; the item with the highest such score gets the engaged time
  const ratios = new Map();
  const seen = new Set();
  const pages = {};
  const cid = (el) => el.closest("[data-db-content]")?.dataset.dbContent;
  const inView = () => {
    let best, r = 0;
    ratios.forEach((v, el) => v > r && (r = v, best = el));
    return best && best.dataset.dbContent;
  };
  const io = new w.IntersectionObserver((entries) => entries.forEach((en) => {
    const el = en.target;
    const page = el.dataset.dbPage;
    if (page) {
      const c = cid(el);
      const total = el.closest("[data-db-content]").querySelectorAll("[data-db-page]").length;
      if (en.intersectionRatio >= 0.5 && +page > (pages[c] || 0)) {
        pages[c] = +page;
        track("content_progress", { content_id: c, page: +page, progress_pct: Math.round((1000 * page) / total) / 10 });
      }
      return;
    }
    const r = en.intersectionRect;
    const score = Math.max(en.intersectionRatio, (r.width * r.height) / (w.innerWidth * w.innerHeight));
    ratios.set(el, score);
    if (score >= 0.5 && !seen.has(el)) {
      w.setTimeout(() => ratios.get(el) >= 0.5 && !seen.has(el) && (seen.add(el), track("content_view", { content_id: el.dataset.dbContent })), 1000);
    }
  }), { threshold: [0, 0.1, 0.2, 0.3, 0.4, 0.5, 1] });
  const watched = new WeakMap();
  const scan = () => d.querySelectorAll("[data-db-content],[data-db-page]").forEach((el) => {
    if (el.dbo) return;
    el.dbo = 1;
    io.observe(el);
    if (el.tagName == "VIDEO") {
      let last = 0, sum = 0, done = 0;
      el.addEventListener("timeupdate", () => {
        const dt = el.currentTime - last;
        last = el.currentTime;
        if (dt > 0 && dt < 2) sum += dt;
        watched.set(el, sum);
        const pct = (100 * el.currentTime) / el.duration;
        const m = [25, 50, 75, 100].filter((x) => pct >= x - 0.5).pop();
        if (m > done) {
          done = m;
          track("content_progress", { content_id: el.dataset.dbContent, progress_pct: m,
            media_position_s: Math.round(el.currentTime * 10) / 10, props: { watched_s: Math.round(sum) } });
        }
      });
    }
  });

  // engaged time: a tick every second, a heartbeat every cfg.heartbeat ms
  let scroll = 0;
  const beat = () => eng.drain().forEach(([c, ms]) => track("engagement", { content_id: c || null, engaged_ms: Math.min(ms, 300000),
    scroll_pct: Math.round(scroll) }));
  const playing = () => [...d.querySelectorAll("video")].some((v) => !v.paused && !v.ended);
  w.setInterval(() => eng.tick(now(), d.visibilityState == "visible", inView(), playing()), 1000);
  w.setInterval(() => (beat(), sender.flush()), cfg.heartbeat);
  // pointerdown covers touch, scroll covers the wheel
  ["mousemove", "keydown", "scroll", "pointerdown"].forEach((t) =>
    w.addEventListener(t, () => eng.activity(now()), { passive: true, capture: true }));
  w.addEventListener("scroll", () => {
    const h = d.documentElement.scrollHeight - w.innerHeight;
    scroll = Math.max(scroll, h > 0 ? Math.min(100, (100 * w.scrollY) / h) : 100);
  }, { passive: true });
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
    const t = ev.target.closest && ev.target;
    const share = t && t.closest("[data-db-share]");
    if (share) return track("share", { share_channel: share.dataset.dbShare || "link", content_id: cid(share) });
    const a = t && t.closest("a[href]");
    if (!a) return;
    if (a.hasAttribute("download") || FILE.test(a.pathname)) track("download", { href: a.href, content_id: cid(a) });
    else if (a.host != loc.host) track("link_click", { href: a.href, content_id: cid(a) });
  }, true);

  // SPA navigation
  let href = loc.href;
  const nav = () => {
    if (loc.href == href) return;
    href = loc.href;
    beat();
    scroll = 0;
    track("room_view", {});
    scan();
  };
  ["pushState", "replaceState"].forEach((m) => {
    const orig = w.history[m];
    w.history[m] = function () {
      const r = orig.apply(this, arguments);
      nav();
      return r;
    };
  });
  w.addEventListener("popstate", nav);

  const begin = () => {
    track("room_view", {});
    scan();
    sender.flush();
  };
  if (enabled) begin();
  api.share = (o = {}) => track("share", { share_channel: o.channel || "other", share_to: o.to, content_id: o.content });
  api.cta = (name, props) => track("cta", { cta: name, props });
  api.identify = (traits) => track("identify", { props: traits });
  api.flush = () => (beat(), sender.flush());
  api.consent = (yes) => {
    ls.setItem("db_consent", yes ? "1" : "0");
    if (yes && !enabled) (enabled = true), begin();
    if (!yes) (enabled = false), queue.clear();
  };
  api.optOut = () => {
    ls.setItem("db_optout", "1");
    enabled = false;
    queue.clear();
  };
  return api;
};
