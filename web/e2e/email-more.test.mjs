// Email in the browser, continued: an attachment listed and downloaded with the session's
// token, quoted history folded away, and an auto-reply kept out of the inbox but shown in
// the triage queue.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { api, artifacts, email, firm, imapPassword, imapPort, password, signedInPage } from "./helpers.mjs";

function append(imapUser, name, lines) {
  const file = `${artifacts}/${name}.eml`;
  writeFileSync(file, lines.join("\r\n"));
  execFileSync("curl", ["-sS", "-T", file, `imap://127.0.0.1:${imapPort}/INBOX`, "--user", `${imapUser}:${imapPassword}`]);
}

test("attachments download, quoted history folds, and an auto-reply lands in the triage queue", async () => {
  const { access_token: token } = await api("/api/v1/auth/login", { method: "POST", body: { firm, email, password } });
  const imapUser = `attach${Date.now()}@mail.test`;
  await api("/api/v1/mailboxes", {
    token,
    method: "POST",
    body: {
      name: "Engagements",
      address: `engagements-${Date.now()}@${firm}.test`,
      imap: { host: "127.0.0.1", port: Number(imapPort), tls: "none", username: imapUser, password: imapPassword },
    },
  });
  const { context, page } = await signedInPage("attachments");
  const stamp = Date.now();
  const subject = `Signed letter ${stamp}`;
  const pdf = `%PDF-1.4 engagement letter ${stamp}`;
  append(imapUser, "attachment", [
    "From: Ann Client <ann@client.example>",
    `To: ${imapUser}`,
    `Subject: ${subject}`,
    `Message-ID: <${stamp}.attach@client.example>`,
    "Date: Thu, 03 Dec 2026 10:00:00 +0000",
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="b1"',
    "",
    "--b1",
    "Content-Type: text/plain; charset=utf-8",
    "",
    "Here it is, signed.",
    "",
    "On Wed, 2 Dec 2026 at 09:00, Support <desk@firm.example> wrote:",
    "> Please sign the letter.",
    "--b1",
    'Content-Type: application/pdf; name="engagement.pdf"',
    'Content-Disposition: attachment; filename="engagement.pdf"',
    "Content-Transfer-Encoding: base64",
    "",
    Buffer.from(pdf).toString("base64"),
    "--b1--",
    "",
  ]);
  append(imapUser, "auto-reply", [
    "From: Bob Client <bob@client.example>",
    `To: ${imapUser}`,
    `Subject: Out of office ${stamp}`,
    `Message-ID: <${stamp}.ooo@client.example>`,
    "Auto-Submitted: auto-replied",
    "Date: Thu, 03 Dec 2026 10:01:00 +0000",
    "Content-Type: text/plain; charset=utf-8",
    "",
    "I am away until Monday.",
    "",
  ]);

  const row = page.getByRole("link", { name: new RegExp(subject) });
  await row.waitFor({ timeout: 30_000 });
  await row.click();
  const article = page.getByRole("article", { name: `Email: ${subject}` });
  await article.getByText("Here it is, signed.").waitFor();
  const quoted = article.getByText("Quoted history");
  await quoted.waitFor();
  assert.equal(await article.locator("details").getAttribute("open"), null, "the history starts folded");
  const attachment = article.getByRole("list", { name: "Attachments" }).getByRole("button", { name: /engagement\.pdf/ });
  await attachment.waitFor();
  const [download] = await Promise.all([page.waitForEvent("download"), attachment.click()]);
  assert.equal(download.suggestedFilename(), "engagement.pdf");
  assert.equal(readFileSync(await download.path(), "utf8"), pdf);
  await page.screenshot({ path: `${artifacts}/email-attachment.png` });
  assert.equal(await page.getByRole("link", { name: new RegExp(`Out of office ${stamp}`) }).count(), 0, "kept out of the inbox");

  await page.getByRole("link", { name: /Triage queue/ }).click();
  const kept = page.getByRole("list", { name: "Triaged emails" }).getByRole("listitem").filter({ hasText: `Out of office ${stamp}` });
  await kept.waitFor({ timeout: 20_000 });
  assert.equal(await kept.getByTestId("triage-kind").textContent(), "Auto-replies");
  await kept.getByRole("button").click();
  await kept.getByText("I am away until Monday.").waitFor();
  await page.screenshot({ path: `${artifacts}/triage.png` });
  await context.close();
});
