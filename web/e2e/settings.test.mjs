// Settings in the browser: an owner invites a colleague from the members screen; the
// colleague joins from the emailed link, turns two-step sign-in on, and from then on signs
// in with a code from their authenticator.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { artifacts, browser, firm, hub, linkInMail, signedInPage } from "./helpers.mjs";

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s), as authenticator apps compute it. */
function totp(base32, at = Date.now()) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const ch of base32.replace(/=+$/, "").toUpperCase()) bits += alphabet.indexOf(ch).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30_000)));
  const mac = createHmac("sha1", key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

test("invite a colleague, who joins and signs in with two-step sign-in from then on", async () => {
  const owner = await signedInPage("settings");
  await owner.page.getByRole("link", { name: "Settings" }).click();
  const colleague = `dana-${Date.now()}@firm.example`;
  const invite = owner.page.getByRole("form", { name: "Invite someone" });
  await invite.getByLabel("Email").fill(colleague);
  await invite.getByLabel("Role").selectOption("staff");
  await invite.getByRole("button", { name: "Send invitation" }).click();
  await owner.page.getByRole("list", { name: "Open invitations" }).getByText(colleague).waitFor();
  await owner.page.screenshot({ path: `${artifacts}/members.png` });

  const link = await linkInMail(colleague, "accept-invitation");
  const context = await browser.newContext();
  const page = await context.newPage();
  const secretPassword = `dana-${Date.now()}-password`;
  await page.goto(`${hub}${new URL(link).pathname}${new URL(link).hash}`);
  await page.getByLabel("Your name").fill("Dana Colleague");
  await page.getByLabel("Password").fill(secretPassword);
  await page.getByRole("button", { name: "Join" }).click();
  await page.waitForURL("**/inbox");

  await page.getByRole("link", { name: "Settings" }).click();
  await page.getByRole("link", { name: "My account" }).click();
  await page.getByLabel("Current password").fill(secretPassword);
  await page.getByRole("button", { name: "Set up two-step sign-in" }).click();
  const secret = await page.getByTestId("mfa-secret").innerText();
  await page.getByLabel("Code").fill(totp(secret));
  await page.getByRole("button", { name: "Turn on" }).click();
  await page.getByText("Recovery codes").waitFor();
  await page.getByTestId("mfa-state").getByText(/^On/).waitFor();
  await page.screenshot({ path: `${artifacts}/mfa.png` });

  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL("**/sign-in");
  await page.getByLabel("Firm").fill(firm);
  await page.getByLabel("Email").fill(colleague);
  await page.getByLabel("Password").fill(secretPassword);
  await page.getByRole("button", { name: "Sign in" }).click();
  // The password was right; the code is asked for, and a wrong one is refused.
  await page.getByLabel("Authentication code").fill("000000" === totp(secret) ? "111111" : "000000");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: /code/i }).waitFor();
  assert.equal(new URL(page.url()).pathname, "/sign-in");
  // A code works once: the one that turned MFA on is refused if its 30 s step is still
  // running, so the sign-in uses the next step's code, as a person would a moment later.
  await new Promise((r) => setTimeout(r, 30_000 - (Date.now() % 30_000) + 500));
  await page.getByLabel("Authentication code").fill(totp(secret));
  await page.getByRole("button", { name: "Sign in" }).click();
  // Back where the session ended.
  await page.waitForURL("**/settings/account");
  await page.getByTestId("mfa-state").getByText(/^On/).waitFor();
  await context.close();
  await owner.context.close();
});
