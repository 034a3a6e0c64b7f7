// A buying committee visits a room one person after another, each in their own browser profile (their own
// device): they read pages of two documents for chosen times, one shares the room, the recipient opens it
// without a token, and the seller looks in with their own link. Prints JSON: every payload, and per person
// what the scenario measured (time on each document page, by its own clock).
// Usage: node e2e/committee.mjs <room url>   with PEOPLE='[{"name", "token", "steps": [[doc, page, ms]...],
//        "share": "to@x"}]' in the environment
import { launch, sleep, visitorContext } from "./harness.mjs";

const roomUrl = process.argv[2];
const people = JSON.parse(process.env.PEOPLE);
const browser = await launch();
const out = { payloads: [], invalid: [], failed: 0, unreadable: 0, truth: [], shots: [] };
try {
  for (const person of people) {
    const ctx = await visitorContext(browser, out);
    const page = await ctx.newPage();
    await page.goto(person.token ? `${roomUrl}?dbt=${person.token}` : roomUrl);
    await page.waitForFunction(() => window.dealbeacon && window.dealbeacon.flush);
    let mx = 0;
    for (const [doc, n, ms] of person.steps) {
      await page.evaluate(([doc, n]) => document.querySelector(`[data-db-content="${doc}"] [data-db-page="${n}"]`)
        .scrollIntoView({ block: "start" }), [doc, n]);
      const t0 = Date.now();
      // a reader: the mouse moves now and then while they read
      for (const end = t0 + ms; Date.now() < end;) {
        await page.mouse.move(300 + (mx = (mx + 41) % 400), 300 + (mx % 150));
        await sleep(250);
      }
      out.truth.push({ who: person.name, c: doc, p: n, ms: Date.now() - t0 });
    }
    if (person.share) {
      await page.fill("#share-form input", person.share);
      await page.click("#share-form button");
      await sleep(300);
    }
    await page.evaluate(() => window.dealbeacon.flush());
    await sleep(300);
    await page.close({ runBeforeUnload: true }); // the close beacon carries the last engaged time
    await ctx.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
