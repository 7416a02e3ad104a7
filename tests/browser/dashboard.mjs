// Drives Debian's chromium (headless, via playwright-core) through the status page and prints what a person
// would see, as JSON, for tests/browser/test_dashboard.py to check. Usage:
//   node dashboard.mjs '{"url": ..., "key": ..., "wrongKey": ..., "screenshot": ..., "profile": ..., "chromium": ...}'
import { chromium } from "playwright-core";

const options = JSON.parse(process.argv[2]);
const TIMEOUT = 20000;

const context = await chromium.launchPersistentContext(options.profile, {
  executablePath: options.chromium,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  viewport: { width: 1280, height: 900 },
});
context.setDefaultTimeout(TIMEOUT);

const result = { console: { main: [], wrongKey: [] }, pageErrors: [], failedRequests: [] };
let phase = "main";
const page = context.pages()[0] || (await context.newPage());
page.on("console", (msg) => result.console[phase].push({ type: msg.type(), text: msg.text() }));
page.on("pageerror", (error) => result.pageErrors.push(String(error)));
page.on("requestfailed", (request) => result.failedRequests.push(request.url()));

const rows = (id) => page.$$eval(`#${id} tbody tr`, (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
const text = (selector) => page.textContent(selector);

try {
  await page.goto(`${options.url}/`);
  await page.waitForFunction(() => document.querySelector("#state").dataset.state === "running");
  result.before = {
    state: await text("#state"),
    detailsHidden: await page.isHidden("#details"),
    visibleText: await page.innerText("body"),
  };

  await page.fill("#key", options.key);
  await page.click("button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#models").textContent.length > 0);
  result.after = {
    loginHidden: await page.isHidden("#login"),
    accounts: await rows("accounts"),
    routes: await rows("routes"),
    counters: await text("#counters"),
    recent: await rows("recent"),
    credits: await rows("credits"),
    errors: await rows("errors"),
    models: await text("#models"),
    cherry: await page.$$eval("#cherry dd", (dds) => dds.map((dd) => dd.textContent)),
    ccr: await text("#ccr"),
    sdk: await text("#sdk"),
    keyInput: await page.inputValue("#key"),
    sessionKey: await page.evaluate(() => sessionStorage.getItem("ki2api.key")),
    localStorageSize: await page.evaluate(() => localStorage.length),
  };
  await page.screenshot({ path: options.screenshot, fullPage: true });

  await page.check("#reveal");
  result.revealed = { sdk: await text("#sdk"), ccr: await text("#ccr") };

  await page.reload();
  await page.waitForFunction(() => document.querySelector("#models").textContent.length > 0);
  result.afterReload = { detailsVisible: await page.isVisible("#details") };

  phase = "wrongKey";
  await page.click("#forget");
  await page.fill("#key", options.wrongKey);
  await page.click("button[type=submit]");
  await page.waitForSelector("#login-error:not([hidden])");
  result.wrongKey = {
    message: await text("#login-error"),
    detailsHidden: await page.isHidden("#details"),
    sessionKey: await page.evaluate(() => sessionStorage.getItem("ki2api.key")),
  };
} catch (error) {
  result.error = String(error && error.stack ? error.stack : error);
} finally {
  await context.close();
}
process.stdout.write(JSON.stringify(result));
