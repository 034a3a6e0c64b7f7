// Drives the fixture sales room in real headless Chromium (Debian chromium + playwright-core) and prints
// what happened as JSON: every payload sent (with its schema verdict) and the measured visible time.
// Usage: node e2e/scenario.mjs <page-url>
import { validateBatch } from "../test/schema.js";
import { openBrowser, sleep } from "./harness.mjs";

const pageUrl = process.argv[2];
const { browser, ctx, page, out, beacons } = await openBrowser();

const t0 = Date.now();
let hiddenMs = 0;
await page.goto(pageUrl);
await page.waitForFunction(() => window.dealbeacon && window.dealbeacon.flush);
out.steps.url_after_load = page.url();
const move = async (n) => { for (let i = 0; i < n; i++) { await page.mouse.move(100 + i * 7, 200 + i * 3); await sleep(250); } };
await move(8); // 2 s of activity at the top (proposal page 1 and the video in view)

// play the video to the end at 4x (8 s of audio -> ~2 s)
await page.evaluate(() => { const v = document.getElementById("video"); v.playbackRate = 4; return v.play(); });
await page.waitForFunction(() => document.getElementById("video").ended, null, { timeout: 20000 });

// read the proposal: scroll page by page, dwelling on each
for (let i = 0; i < 4; i++) {
  await page.mouse.wheel(0, 900);
  await move(6);
}

// hide the tab for 3 s, then show it again. Headless Chromium keeps pages visible whatever we do (tab
// switching, minimising, focus emulation off: all tried), so the browser's signal is emulated here.
const setVisibility = (state) => page.evaluate((s) => {
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => s });
  Object.defineProperty(document, "hidden", { configurable: true, get: () => s === "hidden" });
  document.dispatchEvent(new Event("visibilitychange"));
}, state);
const h0 = Date.now();
await page.evaluate(() => window.dealbeacon.cta("compare-plans")); // queued; hiding must beacon it out
await setVisibility("hidden");
await sleep(3000);
await setVisibility("visible");
hiddenMs = Date.now() - h0;
await sleep(200);
out.steps.beacons_on_hide = await beacons();
await move(4);

// SPA navigation to the pricing view
await page.click("#spa");
await move(4);

// offline: share and download clicks and a CTA are queued, not lost
await ctx.setOffline(true);
await page.click("#share");
await page.evaluate(() => {
  document.getElementById("download").addEventListener("click", (e) => e.preventDefault(), { once: true });
});
await page.click("#download");
await page.evaluate(() => window.dealbeacon.cta("request-quote", { plan: "enterprise" }));
await page.evaluate(() => window.dealbeacon.flush());
await sleep(2500);
out.steps.queued_while_offline = await page.evaluate(() => JSON.parse(localStorage.getItem("db_q:acme") || "[]").length);
await ctx.setOffline(false); // the 'online' event flushes the queue
await move(8);

// last words: an event queued right before the page goes away must arrive through the pagehide beacon
await page.evaluate(() => window.dealbeacon.share({ to: "legal@northwind.example", channel: "email" }));
const tEnd = Date.now();
out.steps.last_event = await page.evaluate(() => JSON.parse(localStorage.getItem("db_q:acme")).map((e) => e.event_id));
const lastBatch = await page.evaluate(() => ({ v: 1, site: "acme", sent_at: Date.now(), events: JSON.parse(localStorage.getItem("db_q:acme")) }));
if (!validateBatch(lastBatch)) out.invalid.push({ body: lastBatch, errors: validateBatch.errors });
await page.close({ runBeforeUnload: true });
await sleep(1500);
out.visible_ms = tEnd - t0 - hiddenMs;
out.t_end = tEnd;
out.hidden_ms = hiddenMs;
await browser.close();
console.log(JSON.stringify(out));
