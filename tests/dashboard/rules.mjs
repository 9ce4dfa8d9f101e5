// Drives the dashboard's data-contract rules as a user would: a schema's rules listed with their
// failure counts, and a dead letter refused by a rule naming the rule with its field highlighted.
// Usage: node rules.mjs BASE_URL STATION SCHEMA VERSION SCREENSHOT_DIR
// Prints one JSON line of what it saw; exits non-zero (with the reason) when something is missing.
import { openFirstDeadLetter, withPage } from "./browser.mjs";

const [base, station, schema, version, shots] = process.argv.slice(2);
await withPage(base, async (page, seen) => {
  await page.click('nav button[data-tab="schemas"]');
  await page.click(`[data-testid=schemas] tr[data-schema="${schema}"]`);
  const rules = page.locator(`[data-testid=rules-v${version}] tr[data-rule]`);
  await rules.first().waitFor({ timeout: 10000 });
  seen.rules = await rules.evaluateAll((rows) =>
    rows.map((row) => [...row.querySelectorAll("td")].map((td) => td.innerText.trim())));
  await page.screenshot({ path: `${shots}/rules.png`, fullPage: true });

  await openFirstDeadLetter(page, station, seen);
  await page.screenshot({ path: `${shots}/rule-dead-letter.png`, fullPage: true });
});
