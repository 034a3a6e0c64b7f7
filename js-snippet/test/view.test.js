// Visibility and page crediting rules (src/view.js) on synthetic geometry: rectangles in pixels, clipped
// the way the browser's IntersectionObserver clips them (by the viewport, or by the pane an item scrolls in).
import { describe, expect, it } from "vitest";
import { createViews } from "../src/view.js";

// An item at [top, bottom] (pixels, full width) seen through a box [top, bottom]: what the tracker passes in.
const W = 800;
const geo = ([t, b], [bt, bb]) => {
  const vis = Math.max(0, Math.min(b, bb) - Math.max(t, bt)) * W;
  return { own: vis / ((b - t) * W), scr: vis / ((bb - bt) * W) };
};
const VIEWPORT = [0, 800];
const at = (c, rect, extra = {}, box = VIEWPORT) => ({ c, ...geo(rect, box), ...extra });
const types = (evs) => evs.map(([t, f]) => [t, f.content_id, f.page, f.progress_pct && Math.round(f.progress_pct * 10) / 10]);

describe("content views", () => {
  it("a document far taller than the viewport is viewed after the dwell, once, as it scrolls", () => {
    const v = createViews();
    // a 6000 px proposal under a 200 px banner; the reader scrolls 300 px every 500 ms
    let out = [];
    for (let ms = 0, y = 0; ms <= 3000; ms += 500, y += 300) out = out.concat(v(ms, [at("proposal", [200 - y, 6200 - y])])[0]);
    expect(types(out)).toEqual([["content_view", "proposal", undefined, undefined]]);
  });

  it("needs the dwell: not before 1 s in view, and an interrupted look starts over", () => {
    const v = createViews();
    expect(v(0, [at("pricing", [100, 500])])[0]).toEqual([]);
    expect(v(500, [at("pricing", [100, 500])])[0]).toEqual([]);
    expect(v(900, [at("pricing", [900, 1300])])[0]).toEqual([]); // scrolled away
    expect(v(1000, [at("pricing", [100, 500])])[0]).toEqual([]); // back: the clock restarts
    expect(v(1500, [at("pricing", [100, 500])])[0]).toEqual([]);
    expect(types(v(2000, [at("pricing", [100, 500])])[0])).toEqual([["content_view", "pricing", undefined, undefined]]);
    expect(v(3000, [at("pricing", [100, 500])])[0]).toEqual([]); // once
  });

  it("a small card fully in view counts; a sliver of a large item does not", () => {
    const v = createViews();
    const frame = [at("logo-card", [10, 90]), at("security", [700, 1700])];
    v(0, frame);
    expect(types(v(1000, frame)[0])).toEqual([["content_view", "logo-card", undefined, undefined]]);
  });

  it("inside a scrolling pane the item is judged against the pane's visible part, not the whole viewport", () => {
    const v = createViews();
    const pane = [500, 800]; // a 300 px pane at the bottom of the viewport
    const frame = [at("doc", [400, 3000], {}, pane)]; // fills the pane: 300/2600 of itself, all of its box
    v(0, frame);
    expect(types(v(1000, frame)[0])).toEqual([["content_view", "doc", undefined, undefined]]);
  });
});

describe("pages and crediting", () => {
  const doc = (pages, y, n = 6) => pages.map((p) => at("proposal", [(p - 1) * 2000 - y, p * 2000 - y], { p, n }));
  it("pages taller than twice the viewport are reached; progress counts distinct pages over the declared count", () => {
    const v = createViews();
    const out = [];
    // only pages 1-4 exist at first (a viewer rendering on demand); the markup declares 6
    for (const [ms, y, pages] of [[0, 0, [1, 2, 3, 4]], [500, 2500, [1, 2, 3, 4]], [1000, 100, [1, 2, 3, 4]],
      [1500, 6500, [1, 2, 3, 4, 5, 6]], [2000, 10200, [1, 2, 3, 4, 5, 6]]]) out.push(...v(ms, doc(pages, y))[0]);
    expect(types(out)).toEqual([
      ["content_progress", "proposal", 1, 16.7], ["content_progress", "proposal", 2, 33.3],
      ["content_progress", "proposal", 4, 50], ["content_progress", "proposal", 6, 66.7]]);
  });

  it("without a declared count, progress uses the pages present (never above 100)", () => {
    const v = createViews();
    expect(types(v(0, doc([1], 0, 1))[0])).toEqual([["content_progress", "proposal", 1, 100]]);
    expect(types(v(500, doc([1, 2], 2000, 1))[0])).toEqual([["content_progress", "proposal", 2, 100]]);
  });

  it("engaged time goes to the content covering most of the screen, and to its page covering most", () => {
    const v = createViews();
    // page 2 of the proposal covers 600 px, page 1 its last 200 px; a pricing card 150 px
    const frame = [at("pricing", [0, 150]), at("proposal", [-1800, 4200]), ...doc([1, 2, 3], 1800).map((x) => ({ ...x, c: "proposal" }))];
    expect(v(0, frame)[1]).toBe("proposal 2");
    // the card alone on screen: it gets the time, with no page
    expect(v(500, [at("pricing", [100, 400]), at("proposal", [900, 6900])])[1]).toBe("pricing");
    // nothing marked up in view: the room itself
    expect(v(1000, [at("pricing", [900, 1200])])[1]).toBe("");
  });
});
