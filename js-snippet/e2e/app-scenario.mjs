// Drives the app-shell room (e2e/app-room.html) in real headless Chromium as a buyer would: content that
// mounts after load, a video player that appears later, a table of contents with # links, a long proposal
// with tall pages read in an inner scrolling pane, a lazily loaded last section and a routed tab. Prints
// JSON: every payload, and what the scenario itself measured (time on each content item and page, the
// pane's scroll depth at chosen moments), to be compared with what dealbeacon stored.
// Usage: node e2e/app-scenario.mjs <page-url>
import { openBrowser, sleep } from "./harness.mjs";

const pageUrl = process.argv[2];
const { browser, page, out } = await openBrowser();
const truth = []; // {c, p, ms}: what filled the pane, for how long (the scenario's own clock)
let cur = null;
let since = 0;
const hold = (c, p) => {
  const t = Date.now();
  if (cur) truth.push({ ...cur, ms: t - since });
  cur = c ? { c, p: p || null } : null;
  since = t;
};
// a reader's hand on the mouse: activity every 250 ms over the pane
let mx = 0;
const dwell = async (ms) => {
  for (const end = Date.now() + ms; Date.now() < end;) {
    await page.mouse.move(400 + (mx = (mx + 37) % 300), 300 + (mx % 200));
    await sleep(250);
  }
};
const pane = (fn, arg) => page.evaluate(fn, arg);
const scrollTo = (y) => pane((y) => { const p = document.getElementById("pane"); p.scrollTop = y; return p.scrollTop; }, y);
const top = (sel) => pane((sel) => document.querySelector(sel).offsetTop, sel);
const depth = () => pane(() => { const p = document.getElementById("pane"); return (100 * p.scrollTop) / (p.scrollHeight - p.clientHeight); });
let maxDepth = 0;
const mark = async () => (maxDepth = Math.max(maxDepth, await depth()));
// a proposal page taller than the pane: its top for 2.5 s, then 450 px further down for 1.5 s
const readPage = async (n) => {
  await scrollTo(await top(`#proposal-p${n}`));
  await mark();
  hold("proposal", n);
  await dwell(2500);
  await scrollTo((await top(`#proposal-p${n}`)) + 450);
  await mark();
  await dwell(1500);
};

await page.goto(pageUrl);
await page.waitForFunction(() => window.dealbeacon && window.dealbeacon.flush);
// the player and the case study mount after load
await page.waitForSelector("[data-db-content=case-study]", { state: "attached" });
await page.waitForSelector("video[data-db-content]", { state: "attached" });

// the case study, mounted after load
await scrollTo(await top("[data-db-content=case-study]"));
await mark();
hold("case-study");
await dwell(3000);

// the product tour: the player at the top of the pane, played to the end at 4x (8 s of media)
await scrollTo((await top("#video-slot")) + 60);
await mark();
hold("tour-video");
await page.evaluate(() => { const v = document.querySelector("video"); v.playbackRate = 4; return v.play(); });
await page.waitForFunction(() => document.querySelector("video").ended, null, { timeout: 20000 });
await dwell(1500);

// the proposal, page by page: each page is taller than the pane; read its top, then further down
for (const n of [1, 2]) await readPage(n);
// page 3 through the table of contents: a #fragment, not a new room view
await page.click("#toc-p3");
await page.waitForFunction(() => location.hash === "#proposal-p3");
out.steps.after_toc = await pane(() => ({ top: document.getElementById("proposal-p3").getBoundingClientRect().top,
  hash: location.hash }));
await mark();
hold("proposal", 3);
await dwell(3000);
// the reader's depth so far, and what dealbeacon sends for it right now
out.depth_mid = await depth();
out.t_mid = Date.now();
await page.evaluate(() => window.dealbeacon.flush());
await dwell(1000);
// pages 4, 5 and 6 (the viewer renders 5 and 6 only once page 4 comes near)
for (const n of [4, 5, 6]) {
  await page.waitForSelector(`#proposal-p${n}`, { state: "attached" });
  await readPage(n);
}
// the security section loads when the end of the pane is reached; scroll to the very end to read it
await scrollTo((await top(`#proposal-p6`)) + 1200 - 740);
await page.waitForSelector("#security", { state: "attached" });
await scrollTo(1e6);
await mark();
hold("security");
await dwell(3000);
out.depth_before_route = maxDepth;
out.t_route = Date.now();

// the Pricing tab: pushState, then the router renders the section when its data arrives
hold(null);
await page.click("#tab-pricing");
await page.waitForSelector("[data-db-content=pricing]", { state: "attached" });
hold("pricing");
await dwell(3000);
// an in-page link after the route: the hash changes, the room view does not
await page.click("a[href='#overview']");
await dwell(500);
hold(null);
out.url_end = page.url();
out.truth = truth;
await page.screenshot({ path: process.env.SCREENSHOT || "/tmp/app-room.png" });
await page.close({ runBeforeUnload: true });
await sleep(1500);
await browser.close();
console.log(JSON.stringify(out));
