// Shared by the browser tests: the hub the script started, its seeded firm, a headless
// Debian chromium, the API for seeding, and a signed-in page.
import { before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

export const hub = process.env.CP_E2E_HUB ?? assert.fail("CP_E2E_HUB: the hub's base URL");
export const firm = process.env.CP_E2E_FIRM ?? assert.fail("CP_E2E_FIRM: the seeded firm's slug");
export const email = process.env.CP_E2E_EMAIL ?? assert.fail("CP_E2E_EMAIL");
export const password = process.env.CP_E2E_PASSWORD ?? assert.fail("CP_E2E_PASSWORD");
export const artifacts = process.env.CP_E2E_ARTIFACTS ?? "e2e-artifacts";
export const imapPort = process.env.CP_E2E_IMAP_PORT ?? assert.fail("CP_E2E_IMAP_PORT: the project's Dovecot");
export const imapPassword = process.env.CP_E2E_IMAP_PASSWORD ?? assert.fail("CP_E2E_IMAP_PASSWORD");
mkdirSync(artifacts, { recursive: true });

export let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CP_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    // Root in a container, and a closed network: no sandbox, no background traffic.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});
after(async () => {
  await browser?.close();
});

export async function api(path, { token, method = "GET", body } = {}) {
  const response = await fetch(`${hub}${path}`, {
    method,
    headers: {
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(body ? { "Content-Type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text).data;
}

/** Lets a test cut a page's socket and keep it cut (reconnects refused) until restored. */
export function socketSwitch() {
  const state = { cut: false, open: [] };
  return {
    async install(page) {
      await page.routeWebSocket(/\/api\/v1\/ws/, (ws) => {
        if (state.cut) {
          ws.close({ code: 4000, reason: "cut by the test" });
          return;
        }
        const server = ws.connectToServer();
        state.open.push({ ws, server });
      });
    },
    cut() {
      state.cut = true;
      for (const { ws, server } of state.open.splice(0)) {
        server.close({ code: 4000, reason: "cut by the test" });
        ws.close({ code: 4000, reason: "cut by the test" });
      }
    },
    restore() {
      state.cut = false;
    },
  };
}

export async function signedInPage(name, sockets) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  await sockets?.install(page);
  await page.goto(`${hub}/inbox`);
  await page.waitForURL("**/sign-in");
  await page.getByLabel("Firm").fill(firm);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL("**/inbox");
  await page.getByTestId("live-status").getByText("Live").waitFor();
  await page.screenshot({ path: `${artifacts}/${name}-inbox.png` });
  return { context, page };
}


/** The Twilio stand-in the script started, and the account it gave this run. */
export const twilio = {
  url: process.env.CP_E2E_TWILIO ?? assert.fail("CP_E2E_TWILIO: the Twilio stand-in"),
  sid: process.env.CP_E2E_TWILIO_SID ?? assert.fail("CP_E2E_TWILIO_SID"),
  token: process.env.CP_E2E_TWILIO_TOKEN ?? assert.fail("CP_E2E_TWILIO_TOKEN"),
  number: process.env.CP_E2E_TWILIO_NUMBER ?? assert.fail("CP_E2E_TWILIO_NUMBER"),
};

/** The SMTP sink's maildir: every message the hub sent, one file each. */
export const mailDir = process.env.CP_E2E_MAIL_DIR ?? assert.fail("CP_E2E_MAIL_DIR: the SMTP sink's maildir");

/**
 * The link in the newest email to `to` whose text contains `marker`, waiting up to 20 s
 * for it (emails leave through the job queue). Quoted-printable is undone first.
 */
export async function linkInMail(to, marker) {
  const { readdirSync, readFileSync, statSync } = await import("node:fs");
  for (let i = 0; i < 200; i++) {
    const files = readdirSync(mailDir)
      .map((name) => `${mailDir}/${name}`)
      .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
    for (const file of files.slice(0, 50)) {
      const raw = readFileSync(file, "latin1");
      if (!raw.includes(`To: ${to}`)) continue;
      const text = raw.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
      const link = text.match(new RegExp(`https?://\\S*${marker}\\S*`))?.[0];
      if (link) return link;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`no email to ${to} with a ${marker} link`);
}

/**
 * Signs the seeded owner in over the API, opens their hours around the clock (UTC) and
 * makes a booking link `{ title, duration_minutes }` with them as its member; its slug.
 */
export async function bookingLink(prefix, link) {
  const { access_token: token } = await api("/api/v1/auth/login", { method: "POST", body: { firm, email, password } });
  const me = await api("/api/v1/me", { token });
  const days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
  await api("/api/v1/calendar/availability", {
    token,
    method: "PUT",
    body: { time_zone: "UTC", windows: days.map((weekday) => ({ weekday, start: "00:00", end: "00:00" })), overrides: [] },
  });
  const slug = `${prefix}-${Date.now()}`;
  await api("/api/v1/booking-links", { token, method: "POST", body: { ...link, slug, member_ids: [me.user.id] } });
  return { token, slug };
}
