// Opens a seller's deal page in headless Chromium and prints what it renders (the "who read what" table with
// time per page), every other section of the deal and the deal list as JSON; saves a screenshot. Usage: node e2e/deal-page.mjs <seller page url> <screenshot path>
import { chromium } from "playwright-core";

const [url, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1600 } });
  await page.goto(url);
  await page.waitForSelector("#deal table", { timeout: 15000 });
  const rows = await page.$$eval("#deal h3", (heads) => {
    const read = (t) => [...t.querySelectorAll("tr")].slice(1).map((tr) => [...tr.children].map((td) => td));
    const matrix = heads.find((h) => h.textContent === "Who read what").nextElementSibling;
    return read(matrix).map((cells) => ({
      who: cells[0].textContent, content: cells[1].textContent, time: cells[2].textContent,
      stopped: cells[5].textContent,
      pages: [...cells[6].querySelectorAll("[data-page]")].map((d) => ({ page: +d.dataset.page, s: parseFloat(d.lastChild.textContent) })),
    }));
  });
  const heads = await page.$$eval("#deal h3", (hs) => hs.map((h) => h.textContent));
  // every other section as text: its table rows (cells) or its lines
  const sections = await page.$$eval("#deal h3", (hs) => Object.fromEntries(hs.map((h) => {
    const lines = [];
    for (let n = h.nextElementSibling; n && n.tagName !== "H3"; n = n.nextElementSibling) {
      if (n.tagName === "TABLE") [...n.querySelectorAll("tr")].slice(1).forEach((tr) => lines.push([...tr.children].map((td) => td.textContent)));
      else lines.push(n.textContent);
    }
    return [h.textContent, lines];
  })));
  // the deal list, in the order shown
  const list = await page.$$eval("#rooms .room", (els) => els.map((e) => ({ id: e.dataset.room, text: e.textContent })));
  await page.screenshot({ path: shot, fullPage: true });
  console.log(JSON.stringify({ rows, heads, sections, list }));
} finally {
  await browser.close();
}
