// Debian's headless Chromium with nothing fetched from elsewhere, for the dashboard drivers: runs
// `drive(page, seen)` on a fresh page, then prints one JSON line of what it saw (and the URLs it
// requested outside `base`), or exits non-zero with the reason. And the steps drivers share.
import { chromium } from "playwright-core";

export async function withPage(base, drive) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  const seen = {};
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const requests = [];
    page.on("request", (request) => requests.push(request.url()));
    await page.goto(base + "/");
    await drive(page, seen);
    seen.offsite_requests = requests.filter((url) => !url.startsWith(base));
    console.log(JSON.stringify(seen));
  } catch (error) {
    console.error(`dashboard check failed: ${error.message}\nseen so far: ${JSON.stringify(seen)}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

// Opens the first dead letter of `station` on the Dead letters tab; notes its reasons and the
// highlighted lines of its payload.
export async function openFirstDeadLetter(page, station, seen) {
  await page.click('nav button[data-tab="dlq"]');
  await page.selectOption("[data-testid=dlq-station]", station);
  const letter = page.locator("[data-testid=dead-letters] tr[data-dead-letter]").first();
  await letter.waitFor({ timeout: 10000 });
  await letter.click();
  const reasons = page.locator("[data-testid=dlq-reasons]");
  await reasons.waitFor({ timeout: 10000 });
  seen.reasons = await reasons.innerText();
  seen.highlighted = await page.locator("[data-testid=dlq-payload] .hl").allInnerTexts();
}
