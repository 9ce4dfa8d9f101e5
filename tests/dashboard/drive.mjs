// Drives the dashboard as a user would, in Debian's headless Chromium: the station table shows the
// counts, a schema shows its versions and a diff, the registry its commit, a dead letter opens with its reason and the failing path highlighted, Replay forwards it.
// Usage: node drive.mjs BASE_URL STATION SCHEMA SCREENSHOT_DIR
// Prints one JSON line of what it saw; exits non-zero (with the reason) when something is missing.
import { openFirstDeadLetter, withPage } from "./browser.mjs";

const [base, station, schema, shots] = process.argv.slice(2);
await withPage(base, async (page, seen) => {
  const row = page.locator(`[data-testid=stations] tr[data-station="${station}"]`);
  await row.waitFor({ timeout: 10000 });
  const cells = await row.locator("td").allInnerTexts();
  seen.station_row = cells;
  await page.screenshot({ path: `${shots}/stations.png`, fullPage: true });

  await page.click('nav button[data-tab="schemas"]');
  await page.click(`[data-testid=schemas] tr[data-schema="${schema}"]`);
  const diff = page.locator("[data-testid=schema-diff]");
  await diff.waitFor({ timeout: 10000 });
  seen.schema_summary = await page.locator("[data-testid=schema-summary]").innerText();
  seen.schema_versions = await page.locator("#schema-detail tr[data-version]").allInnerTexts();
  seen.schema_diff_added = await diff.locator(".add").allInnerTexts();
  seen.schema_diff_removed = await diff.locator(".del").allInnerTexts();
  await page.screenshot({ path: `${shots}/schema.png`, fullPage: true });

  await page.click('nav button[data-tab="registry"]');
  const registry = page.locator("[data-testid=registry-detail]");
  await registry.filter({ hasText: "serving commit" }).waitFor({ timeout: 10000 });
  seen.registry = await registry.innerText();
  seen.schedules = await page.locator("[data-testid=schedules] tr[data-schedule]").allInnerTexts();

  await openFirstDeadLetter(page, station, seen);
  await page.screenshot({ path: `${shots}/dead-letter.png`, fullPage: true });

  await page.click("[data-testid=replay]");
  const outcome = page.locator("[data-testid=replay-outcome]");
  await outcome.filter({ hasText: /Forwarded|refused|\d{3}/ }).waitFor({ timeout: 10000 });
  seen.replay = await outcome.innerText();
  await page.screenshot({ path: `${shots}/replayed.png`, fullPage: true });

});
