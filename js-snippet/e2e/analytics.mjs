// The analytics dashboard in real headless Chromium: every chart as drawn (Chart.js labels and datasets)
// and the rows it was drawn from, before and after choosing an owner and a month range; each chart's CSV
// export as the browser downloads it; a full-page screenshot.
// Usage: node e2e/analytics.mjs '<json: {url, user, password, owner, from, to, screenshot}>'
import { chromium } from "playwright-core";

const cfg = JSON.parse(process.argv[2]);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
});
const out = {};
const drawn = () => {
  const d = window.dashboard;
  const charts = {};
  for (const [id, chart] of Object.entries(d.charts)) {
    charts[id] = {labels: chart.data.labels, datasets: chart.data.datasets.map((s) => ({label: s.label, data: s.data})),
                  rows: d.data[id], canvas: chart.canvas.width > 0 && chart.canvas.height > 0};
  }
  const filters = Object.fromEntries(["from", "to", "owner"].map((id) => [id, document.getElementById(id).value]));
  return {version: d.version, filters, charts};
};
try {
  const context = await browser.newContext({httpCredentials: {username: cfg.user, password: cfg.password},
                                            viewport: {width: 1400, height: 900}, acceptDownloads: true});
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const res = await page.goto(cfg.url);
  out.status = res.status();
  await page.waitForFunction(() => window.dashboard && window.dashboard.version >= 1, null, {timeout: 30000});
  out.all = await page.evaluate(drawn);
  out.owners = await page.$$eval("#owner option", (els) => els.map((e) => e.value));
  await page.screenshot({path: cfg.screenshot, fullPage: true});
  // filters: an owner, then a month range on top; each change redraws once the latest refresh is in
  const settled = async (act) => {
    const before = await page.evaluate(() => window.dashboard.version);
    await act();
    await page.waitForFunction((v) => window.dashboard.version > v && !window.dashboard.loading, before, {timeout: 30000});
  };
  await settled(() => page.selectOption("#owner", cfg.owner));
  out.owner = await page.evaluate(drawn);
  await settled(() => page.fill("#from", cfg.from));
  await settled(() => page.fill("#to", cfg.to));
  out.range = await page.evaluate(drawn);
  // CSV export: click each chart's link, read the downloaded file
  out.csv = {};
  for (const id of Object.keys(out.range.charts)) {
    const [download] = await Promise.all([page.waitForEvent("download"), page.click(`#box-${id} a.csv`)]);
    const stream = await download.createReadStream();
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    out.csv[id] = {name: download.suggestedFilename(), text: Buffer.concat(chunks).toString("utf8")};
  }
  out.errors = errors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
