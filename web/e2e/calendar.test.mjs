// Booking in the browser: an invitee with no account books a slot on the public page, in
// a time zone of their own, and the member's calendar shows it without a reload.
import { test } from "node:test";
import assert from "node:assert/strict";
import { artifacts, bookingLink, browser, hub, signedInPage } from "./helpers.mjs";

test("book a slot on the public page and see the booking", async () => {
  const { slug } = await bookingLink("intro", { title: "Introductory call", duration_minutes: 30 });

  const member = await signedInPage("calendar");
  await member.page.getByRole("link", { name: "Calendar" }).click();
  await member.page.getByRole("heading", { name: "Upcoming bookings" }).waitFor();

  // The invitee: another browser, no session, in Tokyo.
  const invitee = await browser.newContext({ timezoneId: "Asia/Tokyo", viewport: { width: 420, height: 860 } });
  const page = await invitee.newPage();
  await page.goto(`${hub}/book/${slug}`);
  await page.getByRole("heading", { name: "Introductory call" }).waitFor();
  assert.equal(await page.getByLabel("Your time zone").inputValue(), "Asia/Tokyo");
  const first = page.getByRole("region", { name: "Open times" }).getByRole("button").first();
  await first.waitFor();
  await page.screenshot({ path: `${artifacts}/booking-page.png` });
  await first.click();
  await page.getByLabel("Your name").fill("Kenji Invitee");
  await page.getByLabel("Your email").fill("kenji@client.example");
  await page.getByRole("button", { name: "Book" }).click();
  await page.getByRole("status").getByText("Booked").waitFor();
  assert.match(await page.getByRole("status").innerText(), /Asia\/Tokyo/);
  await page.screenshot({ path: `${artifacts}/booking-done.png` });

  // The member's calendar follows the hub's booking event.
  await member.page.getByRole("list", { name: "Upcoming bookings" }).getByText(/Kenji Invitee/).waitFor({ timeout: 15_000 });
  await member.page.screenshot({ path: `${artifacts}/calendar.png` });
  await invitee.close();
  await member.context.close();
});
