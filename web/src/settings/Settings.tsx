import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, fieldsOf, unwrap, type Schemas } from "../api/client";
import { Button, Field } from "../components/Field";
import { TabbedSection } from "../components/Tabs";

type Role = Schemas["Role"];
const MEMBER_ROLES: Role[] = ["owner", "admin", "staff", "billing", "readonly"];

export function Settings() {
  return (
    <TabbedSection
      label="Settings"
      tabs={[
        { to: "/settings", label: "Members", end: true },
        { to: "/settings/account", label: "My account" },
        { to: "/settings/mailboxes", label: "Mailboxes" },
        { to: "/settings/twilio", label: "Twilio" },
        { to: "/settings/webhooks", label: "Webhooks" },
        { to: "/settings/business-calendars", label: "Business calendars" },
        { to: "/settings/sla-policies", label: "SLA policies" },
      ]}
    />
  );
}

/** The firm's members and open invitations; owners and admins invite, change and remove. */
export function Members() {
  const queryClient = useQueryClient();
  const members = useQuery({
    queryKey: ["members"],
    queryFn: async () => unwrap(await api.GET("/api/v1/members", { params: { query: { limit: 100 } } })).data,
  });
  const invitations = useQuery({
    queryKey: ["members", "invited"],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/members", { params: { query: { status: "invited", limit: 100 } } })).data as unknown as Schemas["Invitation"][],
  });
  const refresh = () => void queryClient.invalidateQueries({ queryKey: ["members"] });
  const change = useMutation({
    mutationFn: async ({ userId, body }: { userId: string; body: Schemas["MemberChanges"] }) =>
      unwrap(await api.PATCH("/api/v1/members/{user_id}", { params: { path: { user_id: userId } }, body })),
    onSettled: refresh,
  });
  const revoke = useMutation({
    mutationFn: async (id: string) => unwrap(await api.DELETE("/api/v1/members/invitations/{id}", { params: { path: { id } } })),
    onSettled: refresh,
  });
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<Role>("staff");
  const [fields, setFields] = useState<Record<string, string>>({});
  const invite = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/members", { body: { email, role } })),
    onSuccess: () => {
      setEmail("");
      setFields({});
      refresh();
    },
    onError: (error) => setFields(fieldsOf(error)),
  });
  function submit(event: FormEvent) {
    event.preventDefault();
    invite.mutate();
  }

  return (
    <div className="mx-auto flex max-w-4xl flex-col gap-6 p-4">
      <section aria-labelledby="members-heading">
        <h1 id="members-heading" className="mb-2 text-lg font-semibold">
          Members
        </h1>
        {[change, revoke].map((m, i) =>
          m.isError ? (
            <p key={i} role="alert" className="text-red-700">
              {m.error.message}
            </p>
          ) : null,
        )}
        <table className="w-full text-left text-sm">
          <thead className="bg-slate-100 text-slate-600">
            <tr>
              <th className="px-2 py-1">Name</th>
              <th className="px-2 py-1">Email</th>
              <th className="px-2 py-1">Role</th>
              <th className="px-2 py-1">MFA</th>
              <th className="px-2 py-1">Status</th>
            </tr>
          </thead>
          <tbody>
            {members.data?.map((m) => (
              <tr key={m.user_id} className="border-b border-slate-100 bg-white">
                <td className="px-2 py-1">{m.display_name}</td>
                <td className="px-2 py-1">{m.email}</td>
                <td className="px-2 py-1">
                  {m.role === "client" ? (
                    "client (portal)"
                  ) : (
                    <select
                      aria-label={`Role of ${m.display_name}`}
                      value={m.role}
                      disabled={change.isPending}
                      onChange={(e) => change.mutate({ userId: m.user_id, body: { role: e.target.value as Role } })}
                      className="rounded border border-slate-300 px-1"
                    >
                      {MEMBER_ROLES.map((r) => (
                        <option key={r} value={r}>
                          {r}
                        </option>
                      ))}
                    </select>
                  )}
                </td>
                <td className="px-2 py-1">{m.mfa_enabled ? "on" : "off"}</td>
                <td className="px-2 py-1">
                  {m.status}
                  {m.status === "active" && (
                    <button
                      type="button"
                      onClick={() => change.mutate({ userId: m.user_id, body: { status: "deactivated" } })}
                      className="ml-2 text-red-700 underline"
                    >
                      Deactivate
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <section aria-labelledby="invite-heading">
        <h2 id="invite-heading" className="mb-2 font-semibold">
          Invite someone
        </h2>
        <form onSubmit={submit} aria-label="Invite someone" className="flex flex-wrap items-end gap-2" noValidate>
          <Field label="Email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} error={fields["email"]} />
          <label className="flex flex-col gap-1 text-sm font-medium text-slate-700">
            Role
            <select value={role} onChange={(e) => setRole(e.target.value as Role)} className="rounded border border-slate-300 px-2 py-2 font-normal">
              {MEMBER_ROLES.map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          </label>
          <Button type="submit" disabled={invite.isPending}>
            Send invitation
          </Button>
        </form>
        {invite.isError && Object.keys(fields).length === 0 && (
          <p role="alert" className="text-red-700">
            {invite.error.message}
          </p>
        )}
        <ul aria-label="Open invitations" className="mt-3 flex flex-col gap-1 text-sm">
          {invitations.data?.map((i) => (
            <li key={i.id} className="flex gap-2">
              {i.email} · {i.role} · until {new Date(i.expires_at).toLocaleDateString()}
              <button type="button" onClick={() => revoke.mutate(i.id)} className="text-red-700 underline">
                Withdraw
              </button>
            </li>
          ))}
        </ul>
      </section>
    </div>
  );
}

/** Two-step sign-in for one's own login: enrol (password), confirm with a code, keep the recovery codes. */
export function Account() {
  const queryClient = useQueryClient();
  const me = useQuery({ queryKey: ["me"], queryFn: async () => unwrap(await api.GET("/api/v1/me")).data });
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [enrollment, setEnrollment] = useState<Schemas["MfaEnrollment"] | null>(null);
  const [recovery, setRecovery] = useState<string[] | null>(null);
  const enroll = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/auth/mfa/enroll", { body: { password } })).data,
    onSuccess: setEnrollment,
  });
  const confirm = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/auth/mfa/confirm", { body: { password, code } })).data,
    onSuccess: (codes) => {
      setRecovery(codes.recovery_codes);
      setEnrollment(null);
      setCode("");
      void queryClient.invalidateQueries({ queryKey: ["me"] });
    },
  });
  const disable = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/auth/mfa/disable", { body: { password, code } })),
    onSuccess: () => {
      setCode("");
      void queryClient.invalidateQueries({ queryKey: ["me"] });
    },
  });
  const on = me.data?.user?.mfa_enabled ?? false;
  const failed = [enroll, confirm, disable].find((m) => m.isError)?.error;
  return (
    <div className="mx-auto flex max-w-xl flex-col gap-4 p-4">
      <h1 className="text-lg font-semibold">Two-step sign-in</h1>
      <p data-testid="mfa-state">{on ? "On: sign-in asks for a code from your authenticator app." : "Off."}</p>
      {recovery && (
        <section role="status" className="rounded bg-amber-50 p-3">
          <h2 className="font-semibold">Recovery codes</h2>
          <p className="text-sm">Each works once in place of a code. They are shown only now: keep them somewhere safe.</p>
          <ul className="mt-2 grid grid-cols-2 gap-1 font-mono text-sm">
            {recovery.map((c) => (
              <li key={c}>{c}</li>
            ))}
          </ul>
        </section>
      )}
      <Field label="Current password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} />
      {!on && !enrollment && (
        <Button type="button" disabled={enroll.isPending || !password} onClick={() => enroll.mutate()} className="self-start">
          Set up two-step sign-in
        </Button>
      )}
      {enrollment && (
        <div className="flex flex-col gap-2">
          <p>Add this key to your authenticator app, then enter the code it shows:</p>
          <code data-testid="mfa-secret" className="rounded bg-slate-100 p-2 font-mono break-all">
            {enrollment.secret}
          </code>
          <a href={enrollment.otpauth_uri} className="text-sm text-blue-700 underline">
            Open in an authenticator app on this device
          </a>
        </div>
      )}
      {(enrollment || on) && (
        <Field label={on ? "Code or recovery code" : "Code"} inputMode="numeric" autoComplete="one-time-code" value={code} onChange={(e) => setCode(e.target.value)} />
      )}
      {enrollment && (
        <Button type="button" disabled={confirm.isPending || !code} onClick={() => confirm.mutate()} className="self-start">
          Turn on
        </Button>
      )}
      {on && (
        <Button type="button" disabled={disable.isPending || !code || !password} onClick={() => disable.mutate()} className="self-start bg-red-700 hover:bg-red-800">
          Turn off
        </Button>
      )}
      {failed && (
        <p role="alert" className="text-red-700">
          {failed.message}
        </p>
      )}
    </div>
  );
}
