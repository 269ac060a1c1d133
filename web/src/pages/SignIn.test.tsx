import { afterEach, describe, expect, it, vi } from "vitest";
import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { MemoryRouter } from "react-router";
import { SessionProvider } from "../auth/session";
import { SignIn } from "./SignIn";

function answer(status: number, body: unknown) {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

function renderSignIn() {
  render(
    <QueryClientProvider client={new QueryClient()}>
      <SessionProvider>
        <MemoryRouter>
          <SignIn />
        </MemoryRouter>
      </SessionProvider>
    </QueryClientProvider>,
  );
}

function fill(label: string, value: string) {
  fireEvent.change(screen.getByLabelText(label), { target: { value } });
}

describe("SignIn", () => {
  afterEach(() => {
    cleanup();
    vi.unstubAllGlobals();
    sessionStorage.clear();
  });

  it("asks for the authenticator code when the server says MFA is required, then sends it", async () => {
    const bodies: unknown[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (request: Request) => {
        bodies.push(await request.clone().json());
        if (bodies.length === 1) return answer(401, { error: { code: "mfa_required", message: "enter the code", details: {} } });
        return answer(401, { error: { code: "invalid_mfa_code", message: "That code is not valid.", details: {} } });
      }),
    );
    renderSignIn();
    fill("Firm", "demo");
    fill("Email", "owner@demo.test");
    fill("Password", "secret-password");
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    const code = await screen.findByLabelText("Authentication code");
    fireEvent.change(code, { target: { value: "123456" } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    await screen.findByText("That code is not valid.");
    expect(bodies[0]).toEqual({ firm: "demo", email: "owner@demo.test", password: "secret-password" });
    expect(bodies[1]).toEqual({ firm: "demo", email: "owner@demo.test", password: "secret-password", totp_code: "123456" });
    expect(sessionStorage.length).toBe(0);
  });

  it("shows a validation error's field problems next to the fields", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async () =>
        answer(400, {
          error: { code: "validation_error", message: "The request is not valid.", details: { fields: { email: "is not an email address" } } },
        }),
      ),
    );
    renderSignIn();
    fill("Firm", "demo");
    fill("Email", "nobody");
    fill("Password", "x");
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    await screen.findByText("is not an email address");
    const email = screen.getByLabelText("Email");
    expect(email.getAttribute("aria-invalid")).toBe("true");
    await waitFor(() => expect(email.getAttribute("aria-describedby")).toBeTruthy());
  });

  it("keeps the session's tokens once the server accepts the credentials", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn(async () =>
        answer(200, { data: { access_token: "a.b.c", refresh_token: "firm.secret", token_type: "Bearer", expires_in: 900 }, meta: {} }),
      ),
    );
    renderSignIn();
    fill("Firm", "demo");
    fill("Email", "owner@demo.test");
    fill("Password", "secret-password");
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    await waitFor(() => expect(sessionStorage.getItem("consultantpro.session")).toContain("firm.secret"));
  });
});
