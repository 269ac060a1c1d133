// The app in Debian's chromium against a real hub (started by scripts/web.sh with its real
// PostgreSQL, Redis and Dovecot). Seeded through the CLI and the API; the rest through the UI.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { api, artifacts, browser, email, firm, hub, imapPassword, imapPort, password, signedInPage, socketSwitch } from "./helpers.mjs";

const messages = (page) => page.getByRole("list", { name: "Messages" }).locator("li[data-seq]");

test("a wrong password is refused with the server's message and no session", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${hub}/sign-in`);
  await page.getByLabel("Firm").fill(firm);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(`${password}-wrong`);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").waitFor();
  assert.match(await page.getByRole("alert").innerText(), /\S/);
  assert.equal(new URL(page.url()).pathname, "/sign-in");
  await page.screenshot({ path: `${artifacts}/sign-in-refused.png` });
  await context.close();
});

test("two browsers on one conversation: sent in one, seen in the other; a cut socket misses nothing", async () => {
  const login = await api("/api/v1/auth/login", { method: "POST", body: { firm, email, password } });
  const token = login.access_token;
  const subject = `E2E ${Date.now()}`;
  const conversation = await api("/api/v1/conversations", { token, method: "POST", body: { subject } });

  const first = await signedInPage("first");
  const sockets = socketSwitch();
  const second = await signedInPage("second", sockets);
  for (const { page } of [first, second]) {
    await page.getByRole("link", { name: new RegExp(subject) }).click();
    await page.getByRole("heading", { name: subject }).waitFor();
  }

  await first.page.getByRole("textbox", { name: "Message" }).fill("hello from the first browser");
  await first.page.getByRole("button", { name: "Send" }).click();
  await messages(second.page).filter({ hasText: "hello from the first browser" }).waitFor();
  await second.page.screenshot({ path: `${artifacts}/conversation.png` });

  // The second browser's socket is cut and kept cut; three messages are posted meanwhile.
  sockets.cut();
  await second.page.getByTestId("live-status").getByText("Reconnecting…").waitFor({ timeout: 30_000 });
  for (const n of [1, 2, 3]) {
    await api(`/api/v1/conversations/${conversation.id}/messages`, {
      token,
      method: "POST",
      body: { body: `while you were away ${n}`, client_msg_id: `away-${subject}-${n}` },
    });
  }
  sockets.restore();
  await second.page.getByTestId("live-status").getByText("Live").waitFor({ timeout: 30_000 });
  for (const n of [1, 2, 3]) {
    await messages(second.page).filter({ hasText: `while you were away ${n}` }).waitFor();
  }
  // Each once, in seq order, no gap.
  const seqs = await messages(second.page).evaluateAll((items) => items.map((li) => Number(li.dataset.seq)));
  assert.deepEqual(seqs, [1, 2, 3, 4]);
  const bodies = await messages(second.page).allInnerTexts();
  assert.equal(bodies.filter((b) => b.includes("while you were away 2")).length, 1);
  await second.page.screenshot({ path: `${artifacts}/conversation-after-reconnect.png` });

  await first.context.close();
  await second.context.close();
});

test("signing out ends the session: the page returns to sign-in and the tokens are gone", async () => {
  const { context, page } = await signedInPage("sign-out");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL("**/sign-in");
  const stored = await page.evaluate(() => sessionStorage.getItem("consultantpro.session"));
  assert.equal(stored, null);
  await page.goto(`${hub}/inbox`);
  await page.waitForURL("**/sign-in");
  await context.close();
});

test("an email appended to the firm's mailbox in Dovecot appears in the inbox, remote images held back", async () => {
  const { access_token: token } = await api("/api/v1/auth/login", { method: "POST", body: { firm, email, password } });
  const imapUser = `e2e${Date.now()}@mail.test`;
  await api("/api/v1/mailboxes", {
    token,
    method: "POST",
    body: {
      name: "Support",
      address: `support-${Date.now()}@${firm}.test`,
      imap: { host: "127.0.0.1", port: Number(imapPort), tls: "none", username: imapUser, password: imapPassword },
    },
  });
  const { context, page } = await signedInPage("email");

  const subject = `Question about the audit ${Date.now()}`;
  const raw = [
    "From: Ann Client <ann@client.example>",
    `To: ${imapUser}`,
    `Subject: ${subject}`,
    `Message-ID: <${Date.now()}.e2e@client.example>`,
    "Date: Thu, 03 Dec 2026 10:00:00 +0000",
    "MIME-Version: 1.0",
    "Content-Type: text/html; charset=utf-8",
    "",
    '<p>Could we <b>meet</b> on Friday?</p><img src="https://tracker.example/pixel.gif" alt=""><script>alert(1)</script>',
    "",
  ].join("\r\n");
  const file = `${artifacts}/append.eml`;
  writeFileSync(file, raw);
  // Delivered as any mail server would: an IMAP APPEND to the mailbox's INBOX.
  execFileSync("curl", ["-sS", "-T", file, `imap://127.0.0.1:${imapPort}/INBOX`, "--user", `${imapUser}:${imapPassword}`]);

  // The list follows the hub's `email.received` event; no reload.
  const row = page.getByRole("link", { name: new RegExp(subject) });
  await row.waitFor({ timeout: 30_000 });
  await row.click();
  const article = page.getByRole("article", { name: `Email: ${subject}` });
  await article.waitFor();
  assert.match(await article.innerText(), /Ann Client/);
  const frame = page.frameLocator('iframe[title="Email content"]');
  await frame.getByText("Could we").waitFor();
  assert.equal(await frame.locator("script").count(), 0);
  await page.getByText("Remote images are hidden (1).").waitFor();
  await page.screenshot({ path: `${artifacts}/email.png` });
  await context.close();
});
