// Shared by the Chromium scenarios: launch Debian chromium through playwright-core, present a visitor's user
// agent, and record every payload the beacon sends (with its JSON-Schema verdict) and every sendBeacon call.
import { chromium } from "playwright-core";
import { validateBatch } from "../test/schema.js";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
      "--no-first-run", "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
  });
}

// A visitor's own browser profile (own storage: another device), recording into ``out``.
export async function visitorContext(browser, out, viewport = { width: 1000, height: 800 }) {
  // headless Chromium says "HeadlessChrome" in its user agent, which ingest (rightly) drops as a bot: present
  // the same browser's UA as a visitor's browser would send it
  const probe = await browser.newPage();
  const ua = await probe.evaluate(() => navigator.userAgent);
  await probe.close();
  const ctx = await browser.newContext({ viewport, userAgent: ua.replace("HeadlessChrome", "Chrome") });
  ctx.on("request", (req) => {
    if (!req.url().endsWith("/v1/events") || req.method() !== "POST") return;
    const data = req.postData();
    if (!data) return void out.unreadable++; // Playwright does not always expose keepalive bodies
    const body = JSON.parse(data);
    out.payloads.push({ type: req.resourceType(), body });
    if (!validateBatch(body)) out.invalid.push({ body, errors: validateBatch.errors });
  });
  ctx.on("requestfailed", (req) => req.url().endsWith("/v1/events") && out.failed++);
  // Playwright does not report sendBeacon requests: record the calls (the real sendBeacon still runs)
  await ctx.addInitScript(() => {
    const real = navigator.sendBeacon.bind(navigator);
    window.__beacons = [];
    navigator.sendBeacon = (url, data) => {
      const ok = real(url, data);
      const body = JSON.parse(typeof data == "string" ? data : "{}");
      window.__beacons.push({ ok, body, ids: (body.events || []).map((e) => e.event_id) });
      return ok;
    };
  });
  return ctx;
}

export async function openBrowser(viewport = { width: 1000, height: 800 }) {
  const browser = await launch();
  const out = { payloads: [], invalid: [], failed: 0, unreadable: 0, steps: {} };
  const ctx = await visitorContext(browser, out, viewport);
  const page = await ctx.newPage();
  const beacons = async () => {
    const list = await page.evaluate(() => window.__beacons);
    for (const b of list) if (!validateBatch(b.body)) out.invalid.push({ body: b.body, errors: validateBatch.errors });
    return list;
  };
  return { browser, ctx, page, out, beacons };
}
