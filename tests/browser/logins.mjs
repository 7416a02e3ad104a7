// Drives headless chromium through the status page's account actions: a device-flow login (the code and
// address shown, the new account appearing) and disable/enable. Prints what a person would see, as JSON, for
// tests/browser/test_dashboard_logins.py. Usage: node logins.mjs '{"url", "key", "profile", "chromium", "screenshot"}'
import { chromium } from "playwright-core";

const options = JSON.parse(process.argv[2]);
const context = await chromium.launchPersistentContext(options.profile, {
  executablePath: options.chromium,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  viewport: { width: 1280, height: 900 },
});
context.setDefaultTimeout(20000);

const result = { console: [], pageErrors: [] };
const page = context.pages()[0] || (await context.newPage());
page.on("console", (msg) => result.console.push({ type: msg.type(), text: msg.text() }));
page.on("pageerror", (error) => result.pageErrors.push(String(error)));
const rows = () => page.$$eval("#accounts tbody tr", (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
const stateOf = (name) => page.evaluate((name) => {
  const row = [...document.querySelectorAll("#accounts tbody tr")].find((tr) => tr.cells[0].textContent === name);
  return row ? row.cells[1].textContent : null;
}, name);

try {
  await page.goto(`${options.url}/`);
  await page.fill("#key", options.key);
  await page.click("#key-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#models").textContent.length > 0);
  result.before = await rows();

  await page.click("#add-form button[type=submit]");
  await page.waitForSelector("#add-flow:not([hidden])");
  result.shown = { code: await page.textContent("#add-code"), link: await page.getAttribute("#add-link", "href"),
                   linkText: await page.textContent("#add-link") };
  await page.waitForFunction(() => document.querySelector("#add-status").textContent.includes("added"));
  result.status = await page.textContent("#add-status");
  await page.waitForFunction(() => [...document.querySelectorAll("#accounts tbody tr")]
    .some((tr) => tr.cells[0].textContent === "builder-id"));
  result.after = await rows();
  await page.screenshot({ path: options.screenshot, fullPage: true });

  await page.click("button[data-account=a]");
  await page.waitForFunction(() => document.querySelector("button[data-account=a]")?.textContent === "Enable");
  result.disabled = { state: await stateOf("a"), message: await page.textContent("#account-message") };
  await page.click("button[data-account=a]");
  await page.waitForFunction(() => document.querySelector("button[data-account=a]")?.textContent === "Disable");
  result.enabled = { state: await stateOf("a") };
  result.bodyText = await page.innerText("body");
} catch (error) {
  result.error = String(error && error.stack ? error.stack : error);
} finally {
  await context.close();
}
process.stdout.write(JSON.stringify(result));
