// Settings for the channels a firm brings: its IMAP mailboxes (with the connection test the
// hub runs step by step) and its Twilio account and numbers.
import { useState, type FormEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, ensureOk, fieldsOf, unwrap, type Schemas } from "../api/client";
import { Button, Field } from "../components/Field";
import { Problem } from "../components/Problem";

type TlsMode = Schemas["TlsMode"];

export function Mailboxes() {
  const queryClient = useQueryClient();
  const mailboxes = useQuery({
    queryKey: ["mailboxes"],
    queryFn: async () => unwrap(await api.GET("/api/v1/mailboxes")).data,
  });
  const refresh = () => void queryClient.invalidateQueries({ queryKey: ["mailboxes"] });
  const [results, setResults] = useState<Record<string, Schemas["MailboxTest"]>>({});
  const test = useMutation({
    mutationFn: async (id: string) => ({ id, result: unwrap(await api.POST("/api/v1/mailboxes/{id}/test", { params: { path: { id } } })).data }),
    onSuccess: ({ id, result }) => setResults((all) => ({ ...all, [id]: result })),
  });
  const remove = useMutation({
    mutationFn: async (id: string) => ensureOk(await api.DELETE("/api/v1/mailboxes/{id}", { params: { path: { id } } })),
    onSettled: refresh,
  });
  const toggle = useMutation({
    mutationFn: async ({ id, enabled }: { id: string; enabled: boolean }) =>
      unwrap(await api.PATCH("/api/v1/mailboxes/{id}", { params: { path: { id } }, body: { enabled } })),
    onSettled: refresh,
  });

  return (
    <div className="mx-auto flex max-w-4xl flex-col gap-6 p-4">
      <section aria-labelledby="mailboxes-heading">
        <h1 id="mailboxes-heading" className="mb-2 text-lg font-semibold">
          Mailboxes
        </h1>
        <Problem error={mailboxes.error ?? test.error ?? remove.error ?? toggle.error} />
        {mailboxes.isPending && <p>Loading…</p>}
        {mailboxes.data?.length === 0 && <p className="text-slate-600">No mailbox yet: add one below and the hub starts reading it.</p>}
        <ul aria-label="Mailboxes" className="flex flex-col gap-3">
          {mailboxes.data?.map((m) => {
            const result = results[m.id];
            return (
              <li key={m.id} aria-label={m.name} className="rounded border border-slate-200 bg-white p-3">
                <div className="flex flex-wrap items-center gap-2">
                  <span className="font-medium">{m.name}</span>
                  <span className="text-slate-600">{m.address}</span>
                  <span data-testid="mailbox-state" className="rounded bg-slate-100 px-2 text-sm">
                    {m.enabled ? m.state : "paused"}
                  </span>
                  <span className="ml-auto flex gap-2">
                    <Button type="button" disabled={test.isPending} onClick={() => test.mutate(m.id)}>
                      Test connection
                    </Button>
                    <button type="button" className="underline" onClick={() => toggle.mutate({ id: m.id, enabled: !m.enabled })}>
                      {m.enabled ? "Pause" : "Resume"}
                    </button>
                    <button type="button" className="text-red-700 underline" onClick={() => remove.mutate(m.id)}>
                      Remove
                    </button>
                  </span>
                </div>
                <p className="text-sm text-slate-600">
                  IMAP {m.imap.host}:{m.imap.port} ({m.imap.tls}) as {m.imap.username} · folders {m.folders.join(", ")}
                  {m.last_sync_at && ` · last read ${new Date(m.last_sync_at).toLocaleString()}`}
                </p>
                {m.state_reason && <p className="text-sm text-amber-800">{m.state_reason}</p>}
                {result && (
                  <div role="status" data-testid="mailbox-test" className={`mt-2 rounded p-2 text-sm ${result.ok ? "bg-green-50" : "bg-red-50"}`}>
                    <p>
                      {result.ok ? "Connected. " : `Failed at ${result.failed_step ?? "an unknown step"}: `}
                      {result.message}
                    </p>
                    {result.folders.length > 0 && (
                      <ul>
                        {result.folders.map((f) => (
                          <li key={f.folder}>
                            {f.folder}: {f.messages} messages
                          </li>
                        ))}
                      </ul>
                    )}
                  </div>
                )}
              </li>
            );
          })}
        </ul>
      </section>
      <NewMailbox onAdded={refresh} />
    </div>
  );
}

function NewMailbox({ onAdded }: { onAdded: () => void }) {
  const empty = { name: "", address: "", host: "", port: "", tls: "tls" as TlsMode, username: "", password: "" };
  const [form, setForm] = useState(empty);
  const [fields, setFields] = useState<Record<string, string>>({});
  const add = useMutation({
    mutationFn: async () => {
      const port = form.port.trim() === "" ? null : Number(form.port);
      if (port !== null && !Number.isInteger(port)) throw new ApiError(400, "validation_failed", "Check the port.", { fields: { "imap.port": "a whole number" } });
      return unwrap(
        await api.POST("/api/v1/mailboxes", {
          body: {
            name: form.name,
            address: form.address,
            imap: { host: form.host, port, tls: form.tls, username: form.username, password: form.password },
          },
        }),
      );
    },
    onSuccess: () => {
      setForm(empty);
      setFields({});
      onAdded();
    },
    onError: (error) => setFields(fieldsOf(error)),
  });
  const set = (key: keyof typeof empty) => (e: { target: { value: string } }) => setForm({ ...form, [key]: e.target.value });
  function submit(event: FormEvent) {
    event.preventDefault();
    add.mutate();
  }
  return (
    <section aria-labelledby="new-mailbox-heading">
      <h2 id="new-mailbox-heading" className="mb-2 font-semibold">
        Add a mailbox
      </h2>
      <form onSubmit={submit} aria-label="Add a mailbox" className="grid gap-2 sm:grid-cols-2" noValidate>
        <Field label="Name" value={form.name} onChange={set("name")} error={fields["name"]} />
        <Field label="Address" type="email" value={form.address} onChange={set("address")} error={fields["address"]} />
        <Field label="IMAP host" value={form.host} onChange={set("host")} error={fields["imap.host"]} />
        <Field label="IMAP port" inputMode="numeric" placeholder="993" value={form.port} onChange={set("port")} error={fields["imap.port"]} />
        <label className="flex flex-col gap-1 text-sm font-medium text-slate-700">
          Security
          <select value={form.tls} onChange={set("tls")} className="rounded border border-slate-300 px-2 py-2 font-normal">
            <option value="tls">TLS</option>
            <option value="starttls">STARTTLS</option>
            <option value="none">None (local networks only)</option>
          </select>
        </label>
        <Field label="IMAP username" autoComplete="off" value={form.username} onChange={set("username")} error={fields["imap.username"]} />
        <Field label="IMAP password" type="password" autoComplete="new-password" value={form.password} onChange={set("password")} error={fields["imap.password"]} />
        <div className="flex items-end">
          <Button type="submit" disabled={add.isPending}>
            Add mailbox
          </Button>
        </div>
      </form>
      {add.isError && Object.keys(fields).length === 0 && <Problem error={add.error} />}
    </section>
  );
}

/** The firm's Twilio account (the token is write-only) and the numbers it sends from. */
export function Twilio() {
  const queryClient = useQueryClient();
  const settings = useQuery({
    queryKey: ["sms-settings"],
    queryFn: async () => {
      const answer = await api.GET("/api/v1/sms/settings");
      // Not set up yet: the form starts empty.
      if (answer.response.status === 404) return null;
      return unwrap(answer).data;
    },
  });
  const numbers = useQuery({
    queryKey: ["sms-numbers"],
    queryFn: async () => unwrap(await api.GET("/api/v1/sms/numbers")).data,
  });
  const [account, setAccount] = useState<{ sid: string; token: string; base: string; help: string } | null>(null);
  const shown = account ?? {
    sid: settings.data?.account_sid ?? "",
    token: "",
    base: settings.data?.public_base_url ?? "",
    help: settings.data?.help_text ?? "",
  };
  const [fields, setFields] = useState<Record<string, string>>({});
  const save = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.PUT("/api/v1/sms/settings", {
          body: { account_sid: shown.sid, auth_token: shown.token === "" ? null : shown.token, public_base_url: shown.base, help_text: shown.help },
        }),
      ).data,
    onSuccess: (saved) => {
      queryClient.setQueryData(["sms-settings"], saved);
      setAccount(null);
      setFields({});
    },
    onError: (error) => setFields(fieldsOf(error)),
  });
  const [number, setNumber] = useState("");
  const [numberFields, setNumberFields] = useState<Record<string, string>>({});
  const addNumber = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/sms/numbers", { body: { phone_number: number } })),
    onSuccess: () => {
      setNumber("");
      setNumberFields({});
      void queryClient.invalidateQueries({ queryKey: ["sms-numbers"] });
    },
    onError: (error) => setNumberFields(fieldsOf(error)),
  });
  const removeNumber = useMutation({
    mutationFn: async (id: string) => unwrap(await api.DELETE("/api/v1/sms/numbers/{id}", { params: { path: { id } } })),
    onSettled: () => void queryClient.invalidateQueries({ queryKey: ["sms-numbers"] }),
  });
  const edit = (key: keyof typeof shown) => (e: { target: { value: string } }) => setAccount({ ...shown, [key]: e.target.value });

  return (
    <div className="mx-auto flex max-w-3xl flex-col gap-6 p-4">
      <section aria-labelledby="twilio-heading">
        <h1 id="twilio-heading" className="mb-2 text-lg font-semibold">
          Twilio
        </h1>
        <Problem error={settings.error} />
        <form
          aria-label="Twilio account"
          className="flex flex-col gap-2"
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            save.mutate();
          }}
        >
          <Field label="Account SID" value={shown.sid} onChange={edit("sid")} error={fields["account_sid"]} />
          <Field
            label={settings.data?.auth_token_set ? "Auth token (stored; leave empty to keep it)" : "Auth token"}
            type="password"
            autoComplete="off"
            value={shown.token}
            onChange={edit("token")}
            error={fields["auth_token"]}
          />
          <Field label="Public base URL of this hub" value={shown.base} onChange={edit("base")} error={fields["public_base_url"]} />
          <Field label="Reply to HELP" value={shown.help} onChange={edit("help")} error={fields["help_text"]} />
          <Button type="submit" disabled={save.isPending} className="self-start">
            Save
          </Button>
          {save.isError && Object.keys(fields).length === 0 && <Problem error={save.error} />}
          {save.isSuccess && <p role="status">Saved.</p>}
        </form>
        {settings.data && (
          <dl className="mt-3 text-sm">
            <dt className="font-medium">Incoming messages URL (set it on each number in Twilio)</dt>
            <dd data-testid="twilio-inbound-url" className="font-mono break-all">
              {settings.data.inbound_url}
            </dd>
            <dt className="mt-1 font-medium">Status callback URL</dt>
            <dd className="font-mono break-all">{settings.data.status_callback_url}</dd>
          </dl>
        )}
      </section>
      <section aria-labelledby="numbers-heading">
        <h2 id="numbers-heading" className="mb-2 font-semibold">
          Numbers
        </h2>
        <Problem error={numbers.error ?? removeNumber.error} />
        {numbers.data?.length === 0 && <p className="text-slate-600">No number yet.</p>}
        <ul aria-label="Numbers" className="flex flex-col gap-1">
          {numbers.data?.map((n) => (
            <li key={n.id} className="flex gap-2">
              <span className="font-mono">{n.phone_number ?? n.messaging_service_sid}</span>
              {n.label && <span>{n.label}</span>}
              <span className="text-sm text-slate-600">{n.per_second}/s</span>
              <button type="button" className="text-red-700 underline" onClick={() => removeNumber.mutate(n.id)}>
                Remove
              </button>
            </li>
          ))}
        </ul>
        <form
          aria-label="Add a number"
          className="mt-2 flex items-end gap-2"
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            addNumber.mutate();
          }}
        >
          <Field label="Phone number" type="tel" value={number} onChange={(e) => setNumber(e.target.value)} error={numberFields["phone_number"]} />
          <Button type="submit" disabled={addNumber.isPending}>
            Add number
          </Button>
        </form>
        {addNumber.isError && Object.keys(numberFields).length === 0 && <Problem error={addNumber.error} />}
      </section>
    </div>
  );
}
