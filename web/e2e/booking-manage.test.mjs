// The invitee's own page for a booking, opened from the emailed link: no account, the
// booking in the invitee's zone, moved to another open time, then cancelled.
import { test } from "node:test";
import assert from "node:assert/strict";
import { api, artifacts, bookingLink, browser, hub } from "./helpers.mjs";

test("an invitee moves a booking from its manage page, then cancels it", async () => {
  const { slug } = await bookingLink("manage", { title: "Strategy session", duration_minutes: 45 });
  const from = new Date(Date.now() + 2 * 86_400_000).toISOString();
  const to = new Date(Date.now() + 5 * 86_400_000).toISOString();
  const { slots } = await api(`/api/v1/public/booking-links/${slug}/slots?from=${from}&to=${to}&tz=Europe/Lisbon`);
  const booked = await api(`/api/v1/public/booking-links/${slug}/bookings`, {
    method: "POST",
    body: { start: slots[20].start, tz: "Europe/Lisbon", name: "Rita Invitee", email: "rita@client.example", answers: {} },
  });

  const context = await browser.newContext({ timezoneId: "Europe/Lisbon" });
  const page = await context.newPage();
  await page.goto(`${hub}/booking/manage#token=${booked.manage_token}`);
  await page.getByRole("heading", { name: "Strategy session" }).waitFor();
  assert.equal(new URL(page.url()).hash, "", "the token is taken off the address bar");
  assert.match(await page.getByTestId("booking-when").textContent(), /\(Europe\/Lisbon\)$/);
  assert.match(await page.getByTestId("booking-status").textContent(), /^Confirmed · 45 minutes$/);
  const before = await page.getByTestId("booking-when").textContent();

  await page.getByRole("button", { name: "Choose another time" }).click();
  await page.getByRole("region", { name: "Open times" }).getByRole("button").nth(3).click();
  await page.waitForFunction((was) => document.querySelector('[data-testid="booking-when"]')?.textContent !== was, before);
  const moved = await api("/api/v1/public/bookings/lookup", { method: "POST", body: { token: booked.manage_token } });
  assert.notEqual(moved.start, booked.start, "the hub holds the new time");
  assert.equal(moved.status, "confirmed");
  await page.screenshot({ path: `${artifacts}/booking-manage.png` });

  await page.getByRole("button", { name: "Cancel the booking" }).click();
  await page.getByTestId("booking-status").getByText("Cancelled").waitFor();
  const cancelled = await api("/api/v1/public/bookings/lookup", { method: "POST", body: { token: booked.manage_token } });
  assert.equal(cancelled.status, "cancelled");
  await page.getByRole("button", { name: "Choose another time" }).waitFor({ state: "detached" });

  // A token that does not hold shows the same page as no token: nothing about any booking.
  // (A fresh page: a new fragment on the same document is not a new visit.)
  const forged = await context.newPage();
  await forged.goto(`${hub}/booking/manage#token=${booked.manage_token.slice(0, -2)}xx`);
  await forged.getByRole("heading", { name: "This booking link is not valid." }).waitFor();
  await context.close();
});
