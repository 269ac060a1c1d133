// SMS in the browser, with the Twilio stand-in playing Twilio: a client's text arrives in
// the inbox live, the reply shows its segment count and goes out, and its delivery status
// follows Twilio's callbacks.
import { test } from "node:test";
import assert from "node:assert/strict";
import { api, artifacts, email, firm, hub, password, signedInPage, twilio } from "./helpers.mjs";

test("an SMS through the stand-in appears in the inbox, and a reply goes out", async () => {
  const { access_token: token } = await api("/api/v1/auth/login", { method: "POST", body: { firm, email, password } });
  await api("/api/v1/sms/settings", {
    token,
    method: "PUT",
    body: { account_sid: twilio.sid, auth_token: twilio.token, public_base_url: hub },
  });
  await api("/api/v1/sms/numbers", { token, method: "POST", body: { phone_number: twilio.number, label: "Main line" } });

  const { context, page } = await signedInPage("sms");
  const from = `+1415555${String(Date.now()).slice(-4)}`;
  const text = `Is my appointment still on? ${Date.now()}`;
  // The client texts the firm: the stand-in signs it as Twilio does and posts it to the hub.
  const delivered = await fetch(`${twilio.url}/standin/inbound`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ account_sid: twilio.sid, from, to: twilio.number, body: text }),
  });
  assert.ok(delivered.ok, `stand-in: ${delivered.status} ${await delivered.text()}`);

  // The inbox hears of it through the hub's `sms.received` event.
  await page.getByLabel("Channel").selectOption("sms");
  const row = page.getByRole("list", { name: "Conversations" }).getByRole("link", { name: new RegExp(`SMS with \\${from}`) });
  await row.waitFor({ timeout: 30_000 });
  await row.click();
  await page.getByRole("list", { name: "Messages" }).getByText(text).waitFor();

  const composer = page.getByRole("textbox", { name: "Message" });
  await composer.fill("Yes, see you at 3pm. Reply STOP to opt out.");
  assert.match(await page.getByTestId("sms-segments").innerText(), /^43 characters \(GSM-7\) · 1 segment$/);
  await page.screenshot({ path: `${artifacts}/sms.png` });
  await page.getByRole("button", { name: "Send" }).click();

  // The job sends it to the stand-in, whose status callbacks move it on.
  const reply = page.getByRole("list", { name: "Messages" }).locator("li[data-seq]").filter({ hasText: "see you at 3pm" });
  await reply.waitFor();
  await reply.getByText(/SMS · (sent|delivered)/).waitFor({ timeout: 30_000 });
  await page.screenshot({ path: `${artifacts}/sms-replied.png` });
  await context.close();
});
