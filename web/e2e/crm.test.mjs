// CRM in the browser: a client added and found again, a note on its timeline, and a
// prospect dragged from one stage of the pipeline to the next.
import { test } from "node:test";
import assert from "node:assert/strict";
import { api, artifacts, email, firm, password, signedInPage } from "./helpers.mjs";

test("clients, their timeline, and the pipeline board by drag and drop", async () => {
  const { access_token: token } = await api("/api/v1/auth/login", { method: "POST", body: { firm, email, password } });
  const { context, page } = await signedInPage("crm");
  try {
    await clientsAndPipeline(page, token);
  } catch (error) {
    await page.screenshot({ path: `${artifacts}/crm-failure.png` });
    throw error;
  }
  await context.close();
});

async function clientsAndPipeline(page, token) {
  await page.getByRole("link", { name: "CRM" }).click();

  const name = `Northwind ${Date.now()}`;
  // An empty name is refused by the hub, the reason shown at the field.
  await page.getByRole("button", { name: "Add" }).click();
  await page.getByRole("form", { name: "New client" }).getByRole("alert").waitFor();
  await page.getByLabel("Client name", { exact: true }).fill(name);
  await page.getByRole("button", { name: "Add" }).click();
  await page.getByLabel("Search clients").fill(name);
  await page.getByRole("list", { name: "Clients" }).getByRole("link", { name }).click();
  await page.getByRole("heading", { name }).waitFor();
  await page.getByLabel("Note", { exact: true }).fill("Met the CFO; budget approved for Q1.");
  await page.getByRole("button", { name: "Add note" }).click();
  await page.getByRole("list", { name: "Timeline" }).getByText("budget approved").waitFor();
  await page.screenshot({ path: `${artifacts}/client.png` });

  const clients = await api(`/api/v1/clients?q=${encodeURIComponent(name)}`, { token });
  const prospect = await api("/api/v1/prospects", {
    token,
    method: "POST",
    body: { client_id: clients[0].id, name: `Audit for ${name}`, currency: "USD", value_minor: 1500000 },
  });
  await page.getByRole("link", { name: "Pipeline" }).click();
  const card = page.getByRole("region", { name: "discovery" }).getByRole("listitem").filter({ hasText: prospect.name });
  await card.waitFor();
  await card.dragTo(page.getByRole("region", { name: "proposal" }));
  await page.getByRole("region", { name: "proposal" }).getByText(prospect.name).waitFor();
  let stage = null;
  for (let i = 0; i < 50 && stage !== "proposal"; i++) {
    stage = (await api(`/api/v1/prospects/${prospect.id}`, { token })).stage;
    if (stage !== "proposal") await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(stage, "proposal");
  await page.screenshot({ path: `${artifacts}/pipeline.png` });
}
