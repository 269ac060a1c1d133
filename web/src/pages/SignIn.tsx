import { useState, type FormEvent } from "react";
import { Link, Navigate, useLocation } from "react-router";
import { ApiError } from "../api/client";
import { useSession } from "../auth/session";
import { Button, Field } from "../components/Field";

export function SignIn() {
  const { session, signIn, endedBecause } = useSession();
  const location = useLocation();
  const [form, setForm] = useState({ firm: "", email: "", password: "", totp_code: "" });
  const [needsCode, setNeedsCode] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const [fields, setFields] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);

  if (session) {
    const from = (location.state as { from?: string } | null)?.from ?? "/inbox";
    return <Navigate to={from} replace />;
  }

  const update = (key: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement>) =>
    setForm((f) => ({ ...f, [key]: e.target.value }));

  async function submit(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setProblem(null);
    setFields({});
    try {
      const { totp_code, ...rest } = form;
      await signIn(needsCode ? { ...rest, totp_code } : rest);
    } catch (error) {
      if (error instanceof ApiError) {
        if (error.code === "mfa_required") {
          setNeedsCode(true);
          setProblem("Enter the code from your authenticator app.");
        } else {
          setProblem(error.message);
          setFields(error.fields);
        }
      } else {
        setProblem("The server could not be reached. Try again in a moment.");
      }
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="mx-auto mt-16 max-w-sm px-4">
      <h1 className="mb-6 text-2xl font-semibold">Sign in to ConsultantPro</h1>
      {endedBecause && (
        <p role="status" className="mb-4 rounded bg-amber-100 p-3 text-amber-900">
          {endedBecause}
        </p>
      )}
      <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
        <Field label="Firm" name="firm" autoComplete="organization" required value={form.firm} onChange={update("firm")} error={fields["firm"]} />
        <Field label="Email" name="email" type="email" autoComplete="username" required value={form.email} onChange={update("email")} error={fields["email"]} />
        <Field label="Password" name="password" type="password" autoComplete="current-password" required value={form.password} onChange={update("password")} error={fields["password"]} />
        {needsCode && (
          <Field label="Authentication code" name="totp_code" inputMode="numeric" autoComplete="one-time-code" autoFocus value={form.totp_code} onChange={update("totp_code")} error={fields["totp_code"]} />
        )}
        {problem && (
          <p role="alert" className="text-red-700">
            {problem}
          </p>
        )}
        <Button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </Button>
      </form>
      <p className="mt-4 text-sm">
        <Link to="/forgot-password" className="text-blue-700 underline">
          Forgot your password?
        </Link>
      </p>
    </main>
  );
}
