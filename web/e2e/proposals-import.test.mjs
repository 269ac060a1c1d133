// CRM in the browser, continued: a CSV file imported with its progress and report, and a
// proposal sent, revised into a second version, with the first still readable as sent.
import { test } from "node:test";
import assert from "node:assert/strict";
import { api, artifacts, email, firm, password, signedInPage } from "./helpers.mjs";

test("a CSV import shows its progress and names the row it refused", async () => {
  const { context, page } = await signedInPage("import");
  await page.goto(page.url().replace("/inbox", "/crm/import"));
  const stamp = Date.now();
  const rows = Array.from({ length: 120 }, (_, i) => `Imported${i},Person${stamp},,imp${stamp}-${i}@example.com,,`);
  rows.splice(6, 0, `Broken,Row${stamp},,not-an-email,,`);
  const csv = ["first_name,last_name,title,emails,phones,client_id", ...rows].join("\n");
  await page.getByLabel("CSV file").setInputFiles({ name: "contacts.csv", mimeType: "text/csv", buffer: Buffer.from(csv) });

  // All or nothing by default: the bad row (line 8, counting the header) stops the import.
  await page.getByRole("button", { name: "Import" }).click();
  const summary = page.getByTestId("import-summary");
  await summary.getByText("Nothing was imported").waitFor({ timeout: 20_000 });
  assert.match(await page.getByRole("list", { name: "Refused rows" }).textContent(), /Line 8: emails/);

  await page.getByLabel("Import the good rows").check();
  await page.getByRole("button", { name: "Import" }).click();
  await summary.getByText("Imported 120 of 121 rows; 1 skipped.").waitFor({ timeout: 20_000 });
  assert.equal(await page.getByRole("progressbar", { name: "Import progress" }).getAttribute("aria-valuenow"), "100");
  assert.equal(await page.getByTestId("import-progress").textContent(), "121 of 121 rows");
  await page.screenshot({ path: `${artifacts}/crm-import.png` });

  await page.getByRole("link", { name: "Contacts" }).click();
  await page.getByLabel("Search contacts").fill(`imp${stamp}-0@example.com`);
  await page.getByText(`imp${stamp}-0@example.com`).waitFor();
  await context.close();
});

test("a proposal is sent, revised into version 2, and version 1 still reads as it was", async () => {
  const { access_token: token } = await api("/api/v1/auth/login", { method: "POST", body: { firm, email, password } });
  const client = await api("/api/v1/clients", { token, method: "POST", body: { name: `Proposal client ${Date.now()}` } });
  const prospect = await api("/api/v1/prospects", {
    token,
    method: "POST",
    body: { client_id: client.id, name: `Audit engagement ${Date.now()}`, currency: "EUR", value_minor: 500000 },
  });
  const { context, page } = await signedInPage("proposals");
  await page.getByRole("link", { name: "CRM" }).click();
  await page.getByRole("link", { name: "Pipeline" }).click();
  await page.getByRole("link", { name: prospect.name }).click();
  await page.getByRole("heading", { name: prospect.name }).waitFor();

  const create = page.getByRole("form", { name: "New proposal" });
  await create.getByLabel("Title").fill("Year-end audit");
  await create.getByLabel("Line 1 description").fill("Fieldwork");
  await create.getByLabel("Line 1 quantity").fill("3");
  await create.getByLabel("Line 1 price (EUR)").fill("1,000.005");
  await create.getByRole("button", { name: "Create proposal" }).click();
  await create.getByText("an amount with at most 2 decimals").waitFor();
  await create.getByLabel("Line 1 price (EUR)").fill("1,000.00");
  await create.getByRole("button", { name: "Create proposal" }).click();

  const card = page.getByRole("listitem", { name: "Year-end audit" });
  await card.getByTestId("proposal-total").getByText("€3,000.00").waitFor();
  await card.getByRole("button", { name: "send" }).click();
  await card.getByTestId("proposal-status").getByText("sent").waitFor();

  await card.getByRole("button", { name: "Revise" }).click();
  const revise = card.getByRole("form", { name: "Revise the proposal" });
  await revise.getByLabel("Line 1 quantity").fill("4");
  await revise.getByRole("button", { name: "Save as a new version" }).click();
  await card.getByTestId("proposal-total").getByText("€4,000.00").waitFor();
  assert.equal(await card.getByLabel("Version", { exact: true }).inputValue(), "2");
  await page.screenshot({ path: `${artifacts}/crm-proposal.png` });

  await card.getByLabel("Version", { exact: true }).selectOption("1");
  await card.getByTestId("proposal-total").getByText("€3,000.00").waitFor();
  await card.getByRole("table", { name: "Lines of version 1" }).waitFor();
  await context.close();
});
