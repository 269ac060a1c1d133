// A client's portal login, from the invitation email to its inbox: it joins through the
// emailed link and sees its own conversations only, and none of the firm's other screens.
import { test } from "node:test";
import assert from "node:assert/strict";
import { api, artifacts, browser, email, firm, hub, linkInMail, password } from "./helpers.mjs";

test("a portal user joins from the emailed invitation and sees only its own conversations", async () => {
  const { access_token: token } = await api("/api/v1/auth/login", { method: "POST", body: { firm, email, password } });
  const stamp = Date.now();
  const clientEmail = `cleo-${stamp}@client.example`;
  const mine = await api("/api/v1/contacts", {
    token,
    method: "POST",
    body: { first_name: "Cleo", last_name: "Client", emails: [clientEmail], portal_access: true },
  });
  const other = await api("/api/v1/contacts", {
    token,
    method: "POST",
    body: { first_name: "Otto", last_name: "Other", emails: [`otto-${stamp}@client.example`], portal_access: true },
  });
  const ours = `Cleo's engagement ${stamp}`;
  const theirs = `Otto's engagement ${stamp}`;
  for (const [subject, contact] of [[ours, mine.id], [theirs, other.id]]) {
    await api("/api/v1/conversations", {
      token,
      method: "POST",
      body: { subject, channel: "portal", participants: { contacts: [contact] } },
    });
  }
  await api("/api/v1/members", { token, method: "POST", body: { email: clientEmail, role: "client", contact_id: mine.id } });

  const link = await linkInMail(clientEmail, "accept-invitation");
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${hub}${new URL(link).pathname}${new URL(link).hash}`);
  await page.getByRole("heading", { name: /^Join / }).waitFor();
  // The token is off the address bar once read.
  assert.equal(new URL(page.url()).hash, "");
  await page.getByLabel("Your name").fill("Cleo Client");
  await page.getByLabel("Password").fill(`portal-${stamp}-password`);
  await page.screenshot({ path: `${artifacts}/accept-invitation.png` });
  await page.getByRole("button", { name: "Join" }).click();
  await page.waitForURL("**/inbox");

  const list = page.getByRole("list", { name: "Conversations" });
  await list.getByRole("link", { name: new RegExp(ours) }).waitFor();
  assert.equal(await list.getByRole("link", { name: new RegExp(theirs) }).count(), 0);
  assert.equal(await list.getByRole("link").count(), 1);
  const nav = page.getByRole("navigation", { name: "Main" });
  assert.deepEqual(await nav.getByRole("link").allInnerTexts(), ["Inbox"]);
  await page.screenshot({ path: `${artifacts}/portal.png` });

  // Even asked directly, the firm's other screens' data is refused to the portal login.
  const stored = await page.evaluate(() => JSON.parse(sessionStorage.getItem("consultantpro.session") ?? "{}"));
  const tickets = await fetch(`${hub}/api/v1/tickets`, { headers: { Authorization: `Bearer ${stored.accessToken}` } });
  assert.equal(tickets.status, 403);
  await context.close();
});
