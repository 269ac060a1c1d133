// Finance in the browser: a draft invoice made on the form, sent (it gets its number),
// paid in full; the balance and status follow.
import { test } from "node:test";
import assert from "node:assert/strict";
import { api, artifacts, email, firm, password, signedInPage } from "./helpers.mjs";

test("create, send and pay an invoice", async () => {
  const { access_token: token } = await api("/api/v1/auth/login", { method: "POST", body: { firm, email, password } });
  const clientName = `Acme ${Date.now()}`;
  await api("/api/v1/clients", { token, method: "POST", body: { name: clientName } });

  const { context, page } = await signedInPage("finance");
  await page.getByRole("link", { name: "Finance" }).click();
  await page.getByRole("link", { name: "New invoice" }).click();
  // Nothing filled in: the form says what is missing and sends nothing.
  await page.getByRole("button", { name: "Create draft" }).click();
  await page.getByText("choose a client").waitFor();
  await page.getByLabel("Client").selectOption({ label: clientName });
  await page.getByLabel("Line 1 description").fill("Strategy workshop");
  await page.getByLabel("Quantity").fill("2");
  await page.getByLabel("Unit price").fill("1,250.00");
  await page.getByLabel("Tax %").fill("10");
  await page.screenshot({ path: `${artifacts}/invoice-form.png` });
  await page.getByRole("button", { name: "Create draft" }).click();

  await page.getByRole("heading", { name: "Draft invoice" }).waitFor();
  assert.equal(await page.getByTestId("invoice-balance").innerText(), "$2,750.00");
  await page.getByRole("button", { name: "Send" }).click();
  await page.getByRole("heading", { name: /^Invoice \S+/ }).waitFor();
  assert.equal(await page.getByTestId("invoice-status").textContent(), "sent");

  const payment = page.getByRole("form", { name: "Record a payment" });
  assert.equal(await payment.getByLabel("Payment amount").inputValue(), "2750.00");
  await payment.getByLabel("Reference").fill("wire 42");
  await payment.getByRole("button", { name: "Record payment" }).click();
  await page.getByTestId("invoice-status").getByText("paid").waitFor();
  assert.equal(await page.getByTestId("invoice-balance").innerText(), "$0.00");
  await page.getByText("wire 42").waitFor();
  await page.screenshot({ path: `${artifacts}/invoice-paid.png` });

  // The month's summary counts the payment as collected.
  await page.getByRole("link", { name: "Summary" }).click();
  const usd = page.getByRole("table", { name: "Summary by currency" }).getByRole("row").filter({ hasText: "USD" });
  await usd.waitFor();
  const [, invoiced, collected] = (await usd.getByRole("cell").allTextContents()).map((c) => c.trim());
  assert.ok(Number(collected.replace(/[^\d.]/g, "")) >= 2750, `collected ${collected}`);
  assert.ok(Number(invoiced.replace(/[^\d.]/g, "")) >= 2750, `invoiced ${invoiced}`);

  // The hub agrees.
  const invoices = await api("/api/v1/invoices?status=paid&limit=100", { token });
  const paid = invoices.find((i) => i.total_minor === 275000 && i.paid_minor === 275000);
  assert.ok(paid?.number, "the paid invoice has its number");

  await page.getByRole("link", { name: "Aging" }).click();
  await page.getByRole("heading", { name: "Aging" }).waitFor();
  await page.screenshot({ path: `${artifacts}/aging.png` });
  await context.close();
});
