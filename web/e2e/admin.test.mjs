// The settings a firm's admin uses: a mailbox checked against the real Dovecot, a webhook
// whose deliveries show and go again, and the support calendar and SLA policy forms.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { artifacts, imapPassword, imapPort, signedInPage } from "./helpers.mjs";

test("a mailbox is refused without its password, then added, and its connection test reaches Dovecot", async () => {
  const { context, page } = await signedInPage("mailboxes");
  await page.getByRole("link", { name: "Settings" }).click();
  await page.getByRole("link", { name: "Mailboxes" }).click();
  const form = page.getByRole("form", { name: "Add a mailbox" });
  const name = `Desk ${Date.now()}`;
  // The first try leaves the password out: the form says so at the field, nothing is added.
  await form.getByLabel("Name", { exact: true }).fill(name);
  await form.getByLabel("Address").fill(`desk-${Date.now()}@mail.test`);
  await form.getByLabel("IMAP host").fill("127.0.0.1");
  await form.getByLabel("IMAP port").fill(imapPort);
  await form.getByLabel("Security").selectOption("none");
  await form.getByLabel("IMAP username").fill(`admin${Date.now()}@mail.test`);
  await form.getByRole("button", { name: "Add mailbox" }).click();
  await form.getByRole("alert").first().waitFor();
  assert.equal(await page.getByRole("listitem", { name }).count(), 0);
  await form.getByLabel("IMAP password").fill(imapPassword);
  await form.getByRole("button", { name: "Add mailbox" }).click();
  const mailbox = page.getByRole("listitem", { name });
  await mailbox.getByRole("button", { name: "Test connection" }).click();
  const result = mailbox.getByTestId("mailbox-test");
  await result.getByText("Connected.").waitFor({ timeout: 20_000 });
  assert.match(await result.textContent(), /INBOX: \d+ messages/);
  await page.screenshot({ path: `${artifacts}/settings-mailboxes.png` });
  await context.close();
});

test("a webhook endpoint's deliveries are listed with their answers, and one goes again on request", async () => {
  const received = [];
  const receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      received.push({ event: req.headers["x-cp-event"], delivery: req.headers["x-cp-delivery-id"], signed: Boolean(req.headers["x-cp-signature"]), body });
      res.writeHead(204).end();
    });
  });
  await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${receiver.address().port}/hooks`;
  try {
    const { context, page } = await signedInPage("webhooks");
    await page.goto(page.url().replace("/inbox", "/settings/webhooks"));
    const form = page.getByRole("form", { name: "Add an endpoint" });
    await form.getByRole("button", { name: "Add endpoint" }).click();
    await form.getByRole("alert").first().waitFor();
    await form.getByLabel("URL").fill(url);
    await form.getByLabel("payment.refunded").check();
    await form.getByRole("button", { name: "Add endpoint" }).click();
    assert.match(await page.getByTestId("webhook-secret").textContent(), /\S{16,}/, "the secret is shown once");

    const endpoint = page.getByRole("listitem", { name: url });
    await endpoint.getByRole("button", { name: "Send a ping" }).click();
    await endpoint.getByRole("button", { name: "Deliveries" }).click();
    const deliveries = endpoint.getByRole("table", { name: "Deliveries" });
    await deliveries.getByTestId("delivery-state").getByText("succeeded").waitFor({ timeout: 20_000 });
    // Only pings count here: whatever else the firm does meanwhile is not this test's.
    const pings = () => received.filter((r) => r.event === "ping");
    assert.equal(pings().length, 1);
    assert.equal(pings()[0].signed, true);
    await page.screenshot({ path: `${artifacts}/settings-webhooks.png` });

    await deliveries.getByRole("button", { name: "Redeliver" }).first().click();
    for (let i = 0; i < 200 && pings().length < 2; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(pings().length, 2, "the redelivery reached the receiver");
    const [first, again] = pings();
    assert.deepEqual([again.delivery, again.body], [first.delivery, first.body], "the same delivery, again");
    await context.close();
  } finally {
    receiver.close();
  }
});

test("a business calendar and an SLA policy counting in it are set up from their forms", async () => {
  const { context, page } = await signedInPage("support-settings");
  await page.goto(page.url().replace("/inbox", "/settings/business-calendars"));
  const calendarName = `Paris office ${Date.now()}`;
  const calendarForm = page.getByRole("form", { name: "Add a calendar" });
  await calendarForm.getByLabel("Name", { exact: true }).fill(calendarName);
  await calendarForm.getByLabel("Time zone").fill("Europe/Nowhere");
  await calendarForm.getByRole("button", { name: "Add calendar" }).click();
  await calendarForm.getByRole("alert").first().waitFor();
  await calendarForm.getByLabel("Time zone").fill("Europe/Paris");
  await calendarForm.getByLabel("Closed dates").fill("2026-12-25 Christmas Day");
  await calendarForm.getByRole("button", { name: "Add calendar" }).click();
  const listed = page.getByRole("list", { name: "Business calendars" }).getByText(calendarName);
  await listed.waitFor();
  assert.match(await page.getByRole("list", { name: "Business calendars" }).textContent(), /mon 09:00–17:00.*Closed: 2026-12-25 Christmas Day/s);

  await page.getByRole("link", { name: "SLA policies" }).click();
  const policyName = `Office hours ${Date.now()}`;
  const policyForm = page.getByRole("form", { name: "Add a policy" });
  await policyForm.getByLabel("Policy name").fill(policyName);
  await policyForm.getByLabel("Count time in").selectOption({ label: `${calendarName} (Europe/Paris)` });
  await policyForm.getByLabel("High: first response").fill("90");
  await policyForm.getByLabel("High: resolution").fill("soon");
  await policyForm.getByRole("button", { name: "Add policy" }).click();
  await policyForm.getByText("a whole number of minutes above 0").waitFor();
  await policyForm.getByLabel("High: resolution").fill("2880");
  await policyForm.getByRole("button", { name: "Add policy" }).click();
  const row = page.getByRole("table", { name: "SLA policies" }).getByRole("row").filter({ hasText: policyName });
  await row.waitFor();
  assert.match(await row.textContent(), new RegExp(`${calendarName}.*1 h 30 min / 2 d`));
  await page.screenshot({ path: `${artifacts}/settings-sla-policies.png` });
  // It matches every ticket: switched off again, so other tests' tickets keep their own.
  await row.getByRole("button", { name: "Active" }).click();
  await row.getByRole("button", { name: "Inactive" }).waitFor();
  await context.close();
});
