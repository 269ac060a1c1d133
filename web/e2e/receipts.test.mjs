// Presence and read receipts between two members: a colleague coming online shows on the
// conversation, and what the colleague reads shows under the last message they saw.
import { test } from "node:test";
import assert from "node:assert/strict";
import { api, artifacts, browser, email, firm, hub, linkInMail, password, signedInPage } from "./helpers.mjs";

test("a colleague's presence and read receipt show live on the owner's conversation", async () => {
  const { access_token: token } = await api("/api/v1/auth/login", { method: "POST", body: { firm, email, password } });
  const colleague = `erin-${Date.now()}@firm.example`;
  await api("/api/v1/members", { token, method: "POST", body: { email: colleague, role: "staff" } });
  const invitation = new URLSearchParams(new URL(await linkInMail(colleague, "accept-invitation")).hash.slice(1)).get("token");
  const colleaguePassword = `erin-${Date.now()}-password`;
  await api("/api/v1/invitations/accept", {
    method: "POST",
    body: { token: invitation, display_name: "Erin Colleague", password: colleaguePassword },
  });
  const members = await api("/api/v1/members?limit=100", { token });
  const erin = members.find((m) => m.email === colleague);
  const subject = `Receipts ${Date.now()}`;
  const conversation = await api("/api/v1/conversations", { token, method: "POST", body: { subject, participants: { members: [erin.user_id] } } });
  for (const body of ["first", "second"]) {
    await api(`/api/v1/conversations/${conversation.id}/messages`, { token, method: "POST", body: { body } });
  }

  const owner = await signedInPage("receipts");
  await owner.page.getByRole("link", { name: new RegExp(subject) }).click();
  const participant = owner.page.getByRole("list", { name: "Participants" }).getByRole("listitem").filter({ hasText: "Erin Colleague" });
  await participant.waitFor();
  assert.equal(await participant.getAttribute("data-online"), "false");
  assert.equal(await owner.page.getByTestId("read-receipt").count(), 0, "nobody else has read anything yet");

  // Erin signs in elsewhere: online. Opening the conversation marks what is shown as read.
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${hub}/sign-in`);
  await page.getByLabel("Firm").fill(firm);
  await page.getByLabel("Email").fill(colleague);
  await page.getByLabel("Password").fill(colleaguePassword);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL("**/inbox");
  await owner.page.locator('[data-online="true"]').filter({ hasText: "Erin Colleague" }).waitFor({ timeout: 20_000 });
  await page.getByRole("link", { name: new RegExp(subject) }).click();
  await page.getByRole("list", { name: "Messages" }).getByText("second").waitFor();

  const receipt = owner.page.getByTestId("read-receipt");
  await receipt.getByText("Seen by Erin Colleague").waitFor({ timeout: 20_000 });
  const under = await receipt.evaluate((p) => p.closest("li")?.dataset.seq);
  assert.equal(under, "2", "under the newest message Erin saw");
  await owner.page.screenshot({ path: `${artifacts}/read-receipt.png` });

  // After a reload the receipt comes from the conversation itself, not a frame.
  await owner.page.reload();
  await owner.page.getByTestId("read-receipt").getByText("Seen by Erin Colleague").waitFor();
  await context.close();
  await owner.context.close();
});
