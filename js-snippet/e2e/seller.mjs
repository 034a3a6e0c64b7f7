// The seller page in real headless Chromium: rooms and scores render, a new alert arrives live (SSE) after
// a trigger request, snooze hides it (also after a reload), and another seller's page shows only theirs.
// Usage: node e2e/seller.mjs '<json: {page, trigger: {url, headers, body}, otherPage}>'
import { chromium } from "playwright-core";

const cfg = JSON.parse(process.argv[2]);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
});
const out = {};
try {
  const page = await browser.newPage();
  await page.goto(cfg.page);
  await page.waitForSelector(".room", { timeout: 10000 });
  await page.waitForFunction(() => document.getElementById("status").textContent === "live", null, { timeout: 10000 });
  out.rooms = await page.$$eval(".room", (els) => els.map((e) => ({ id: e.dataset.room, text: e.textContent })));
  out.alertsBefore = await page.$$eval("[data-alert]", (els) => els.map((e) => e.dataset.alert));
  const t0 = Date.now();
  const r = await fetch(cfg.trigger.url, { method: "POST", headers: cfg.trigger.headers, body: JSON.stringify(cfg.trigger.body) });
  out.triggerStatus = r.status;
  await page.waitForFunction((n) => document.querySelectorAll("[data-alert]").length > n, out.alertsBefore.length,
    { timeout: 10000 });
  out.liveMs = Date.now() - t0;
  out.alertsLive = await page.$$eval("[data-alert]", (els) => els.map((e) => ({ id: e.dataset.alert, text: e.textContent })));
  const fresh = out.alertsLive.find((a) => !out.alertsBefore.includes(a.id));
  out.snoozed = fresh.id;
  await page.click(`[data-alert="${fresh.id}"] button:nth-of-type(2)`);
  await page.waitForSelector(`[data-alert="${fresh.id}"]`, { state: "detached", timeout: 5000 });
  await page.reload();
  await page.waitForSelector(".room", { timeout: 10000 });
  await page.waitForTimeout(500);
  out.alertsAfterReload = await page.$$eval("[data-alert]", (els) => els.map((e) => e.dataset.alert));
  const other = await browser.newPage();
  await other.goto(cfg.otherPage);
  await other.waitForSelector(".room", { timeout: 10000 });
  out.otherRooms = await other.$$eval(".room", (els) => els.map((e) => e.dataset.room));
  out.otherAlerts = await other.$$eval("[data-alert]", (els) => els.map((e) => e.dataset.alert));
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
