// Tickets in the browser: the SLA badge counts down from the hub's stored moments, warns,
// and reads breached at the due moment, which the hub's timers record at the same moment.
import { test } from "node:test";
import assert from "node:assert/strict";
import { api, artifacts, email, firm, password, signedInPage } from "./helpers.mjs";

test("a ticket's SLA badge counts down, warns, and turns to breached at its due moment", async () => {
  const { access_token: token } = await api("/api/v1/auth/login", { method: "POST", body: { firm, email, password } });
  // The shortest target there is: one minute to the first response, first in line, and for
  // this test's tag only (other tests' policies stay in the same firm).
  const tag = `sla-e2e-${Date.now()}`;
  await api("/api/v1/sla-policies", {
    token,
    method: "POST",
    body: { name: `Urgent ${Date.now()}`, position: 0, conditions: { tags: [tag] }, targets: { urgent: { first_response_minutes: 1 } } },
  });
  // The ticket comes from a customer's conversation, which its page shows.
  const subject = `Server down ${Date.now()}`;
  const conversation = await api("/api/v1/conversations", { token, method: "POST", body: { subject } });
  await api(`/api/v1/conversations/${conversation.id}/messages`, { token, method: "POST", body: { body: "Nothing loads since 9am." } });
  const ticket = await api("/api/v1/tickets", {
    token,
    method: "POST",
    body: { conversation_id: conversation.id, priority: "urgent", tags: [tag] },
  });
  assert.equal(ticket.subject, subject, "the conversation's subject");
  const [listed] = (await api("/api/v1/tickets?priority=urgent&limit=100", { token })).filter((t) => t.id === ticket.id);
  assert.ok(listed?.sla_next_due_at, "the list carries the due moment");
  const due = Date.parse(listed.sla_next_due_at);
  const warn = Date.parse(listed.sla_next_warn_at);
  assert.equal(due - Date.parse(ticket.created_at), 60_000);

  const { context, page } = await signedInPage("tickets");
  await page.getByRole("link", { name: "Tickets" }).click();
  const row = page.getByRole("row").filter({ hasText: subject });
  const badge = row.getByTestId("sla-badge");
  await badge.waitFor();
  assert.equal(await badge.getAttribute("data-tone"), "ok");
  // Counted up to the whole second, so the first second after creation reads 1:00.
  assert.match(await badge.textContent(), /^Due in (1:00|0:[0-5]\d)$/);
  await page.screenshot({ path: `${artifacts}/tickets.png` });

  await row.locator('[data-tone="warning"]').waitFor({ timeout: 70_000 });
  assert.ok(Date.now() >= warn - 1_000, "no warning before its moment");
  await row.locator('[data-tone="breached"]').waitFor({ timeout: 70_000 });
  const flipped = Date.now();
  assert.ok(flipped >= due - 1_000 && flipped <= due + 3_000, `breached ${flipped - due} ms from the due moment`);
  await page.screenshot({ path: `${artifacts}/tickets-breached.png` });

  // The hub's timers recorded the same breach, within a second of its moment.
  let recorded = null;
  for (let i = 0; i < 50 && !recorded; i++) {
    recorded = (await api(`/api/v1/tickets/${ticket.id}`, { token })).sla_breached_at;
    if (!recorded) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(recorded, "the timers recorded the breach");
  assert.ok(Math.abs(Date.parse(recorded) - due) < 1_000, `recorded ${recorded}, due ${listed.sla_next_due_at}`);

  await page.getByRole("button", { name: "board" }).click();
  await page.getByRole("region", { name: "new" }).getByText(subject).waitFor();
  await page.screenshot({ path: `${artifacts}/tickets-board.png` });
  await page.getByRole("link", { name: subject }).first().click();
  await page.getByRole("heading", { name: "SLA clocks" }).waitFor();
  await page.getByText("First response").waitFor();
  await page.getByRole("region", { name: "The ticket's conversation" }).getByText("Nothing loads since 9am.").waitFor();
  await page.screenshot({ path: `${artifacts}/ticket.png` });
  await context.close();
});
