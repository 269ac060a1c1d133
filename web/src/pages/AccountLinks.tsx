// The pages emailed links open: accepting an invitation and setting a new password. The
// token comes in the URL's fragment (never sent to a server, so not in any access log or
// Referer), is read once and taken off the address bar, and travels only in a POST body.
import { useState, type FormEvent } from "react";
import { Link, useNavigate } from "react-router";
import { useMutation, useQuery } from "@tanstack/react-query";
import { api, ApiError, fieldsOf, unwrap } from "../api/client";
import { useSession } from "../auth/session";
import { Button, Field } from "../components/Field";
import { Problem } from "../components/Problem";

export function useFragmentToken(): string {
  const [token] = useState(() => {
    const found = new URLSearchParams(window.location.hash.slice(1)).get("token") ?? "";
    if (found) window.history.replaceState(null, "", window.location.pathname);
    return found;
  });
  return token;
}

export function AcceptInvitation() {
  const token = useFragmentToken();
  const { signIn } = useSession();
  const navigate = useNavigate();
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [needsCode, setNeedsCode] = useState(false);
  const [fields, setFields] = useState<Record<string, string>>({});
  const preview = useQuery({
    queryKey: ["invitation", token],
    queryFn: async () => unwrap(await api.POST("/api/v1/invitations/preview", { body: { token } })).data,
    enabled: token !== "",
    retry: false,
  });
  const accept = useMutation({
    mutationFn: async () => {
      const joined = unwrap(
        await api.POST("/api/v1/invitations/accept", {
          body: { token, password, display_name: name || null, ...(needsCode ? { totp_code: code } : {}) },
        }),
      ).data;
      // Joined: straight in, with the same address and password.
      await signIn({ firm: joined.firm_slug, email: joined.email, password, ...(needsCode ? { totp_code: code } : {}) });
    },
    onSuccess: () => navigate("/inbox", { replace: true }),
    onError: (error) => {
      if (error instanceof ApiError && error.code === "mfa_required") setNeedsCode(true);
      setFields(fieldsOf(error));
    },
  });
  function submit(event: FormEvent) {
    event.preventDefault();
    accept.mutate();
  }

  if (!token || preview.isError)
    return (
      <main className="mx-auto mt-16 max-w-sm px-4">
        <h1 className="mb-4 text-2xl font-semibold">This invitation cannot be used</h1>
        <p>It may have been used already, withdrawn, or have lapsed. Ask the firm for a new one.</p>
      </main>
    );
  return (
    <main className="mx-auto mt-16 max-w-sm px-4">
      <h1 className="mb-2 text-2xl font-semibold">Join {preview.data?.firm_name ?? "…"}</h1>
      {preview.data && <p className="mb-6 text-slate-600">You are invited as {preview.data.role === "client" ? "a client" : `${preview.data.role}`}.</p>}
      <form onSubmit={submit} className="flex flex-col gap-4" noValidate>
        <Field label="Your name" autoComplete="name" value={name} onChange={(e) => setName(e.target.value)} error={fields["display_name"]} />
        <Field
          label="Password"
          type="password"
          autoComplete="new-password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          error={fields["password"]}
        />
        <p className="-mt-3 text-sm text-slate-500">At least 12 characters. If you already have a login, its password.</p>
        {needsCode && (
          <Field label="Authentication code" inputMode="numeric" autoComplete="one-time-code" value={code} onChange={(e) => setCode(e.target.value)} />
        )}
        {accept.isError && Object.keys(fields).length === 0 && (
          <p role="alert" className="text-red-700">
            {accept.error.message}
          </p>
        )}
        <Button type="submit" disabled={accept.isPending || !preview.data}>
          Join
        </Button>
      </form>
    </main>
  );
}

export function ResetPassword() {
  const token = useFragmentToken();
  const [password, setPassword] = useState("");
  const [fields, setFields] = useState<Record<string, string>>({});
  const reset = useMutation({
    mutationFn: async () =>
      unwrap(await api.POST("/api/v1/auth/password/reset", { body: { token, new_password: password } })),
    onError: (error) => setFields(fieldsOf(error)),
  });
  if (reset.isSuccess)
    return (
      <main className="mx-auto mt-16 max-w-sm px-4">
        <h1 className="mb-4 text-2xl font-semibold">Password changed</h1>
        <p className="mb-4">You were signed out everywhere. Sign in with the new password.</p>
        <Link to="/sign-in" className="text-blue-700 underline">
          Sign in
        </Link>
      </main>
    );
  return (
    <main className="mx-auto mt-16 max-w-sm px-4">
      <h1 className="mb-6 text-2xl font-semibold">Choose a new password</h1>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          reset.mutate();
        }}
        className="flex flex-col gap-4"
        noValidate
      >
        <Field
          label="New password"
          type="password"
          autoComplete="new-password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          error={fields["new_password"]}
        />
        {reset.isError && Object.keys(fields).length === 0 && (
          <p role="alert" className="text-red-700">
            {reset.error.message}
          </p>
        )}
        <Button type="submit" disabled={reset.isPending || !token}>
          Set password
        </Button>
      </form>
    </main>
  );
}

export function ForgotPassword() {
  const [firm, setFirm] = useState("");
  const [email, setEmail] = useState("");
  const forgot = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/auth/password/forgot", { body: { firm, email } })),
  });
  return (
    <main className="mx-auto mt-16 max-w-sm px-4">
      <h1 className="mb-6 text-2xl font-semibold">Forgot your password?</h1>
      {forgot.isSuccess ? (
        <p role="status">If that account exists, a link to choose a new password is on its way to {email}.</p>
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            forgot.mutate();
          }}
          className="flex flex-col gap-4"
          noValidate
        >
          <Field label="Firm" value={firm} onChange={(e) => setFirm(e.target.value)} />
          <Field label="Email" type="email" autoComplete="username" value={email} onChange={(e) => setEmail(e.target.value)} />
          <Problem error={forgot.error} />
          <Button type="submit" disabled={forgot.isPending}>
            Send the link
          </Button>
        </form>
      )}
    </main>
  );
}
