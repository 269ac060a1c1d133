// What triage kept out of the conversations (auto-replies, bounces, mail loops, and what a
// rule ignored), so nothing a client sent is lost from sight.
import { useState } from "react";
import { Link } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { api, unwrap, type Schemas } from "../api/client";
import { Problem } from "../components/Problem";

type Kind = Schemas["TriageKind"];
const KINDS: { kind: Kind; label: string }[] = [
  { kind: "automatic", label: "Auto-replies" },
  { kind: "bounce", label: "Bounces" },
  { kind: "loop", label: "Mail loops" },
  { kind: "ignored", label: "Ignored by a rule" },
  { kind: "unreadable", label: "Unreadable (kept as received)" },
];

export function Triage() {
  const [kind, setKind] = useState<Kind | "">("");
  const [open, setOpen] = useState<string | null>(null);
  const emails = useQuery({
    queryKey: ["triage", kind],
    queryFn: async () => unwrap(await api.GET("/api/v1/emails/triage", { params: { query: { limit: 200, ...(kind ? { kind } : {}) } } })).data,
  });
  return (
    <div className="mx-auto flex h-full max-w-5xl flex-col gap-3 overflow-auto p-4">
      <div className="flex flex-wrap items-center gap-3">
        <Link to="/inbox" className="text-blue-700 underline">
          ‹ Inbox
        </Link>
        <h1 className="text-lg font-semibold">Triage queue</h1>
        <label className="ml-auto flex items-center gap-2 text-sm">
          Show
          <select value={kind} onChange={(e) => setKind(e.target.value as Kind | "")} className="rounded border border-slate-300 px-2 py-1">
            <option value="">Everything kept out</option>
            {KINDS.map((k) => (
              <option key={k.kind} value={k.kind}>
                {k.label}
              </option>
            ))}
          </select>
        </label>
      </div>
      <p className="text-sm text-slate-600">
        Mail the hub did not put into a conversation, and why. Nothing here was answered automatically.
      </p>
      <Problem error={emails.error} />
      {emails.isPending && <p>Loading…</p>}
      {emails.data?.length === 0 && <p className="text-slate-600">Nothing kept out.</p>}
      <ul aria-label="Triaged emails" className="flex flex-col gap-2">
        {emails.data?.map((e) => (
          <li key={e.id} className="rounded border border-slate-200 bg-white p-3">
            <button
              type="button"
              aria-expanded={open === e.id}
              onClick={() => setOpen(open === e.id ? null : e.id)}
              className="flex w-full flex-wrap items-baseline gap-2 text-left"
            >
              <span className="rounded bg-amber-100 px-2 text-xs" data-testid="triage-kind">
                {KINDS.find((k) => k.kind === e.triage)?.label ?? e.triage}
              </span>
              <span className="font-medium">{e.subject || "(no subject)"}</span>
              <span className="text-sm text-slate-600">{e.from_name ? `${e.from_name} <${e.from_address ?? ""}>` : e.from_address}</span>
              <time dateTime={e.created_at} className="ml-auto text-sm text-slate-500">
                {new Date(e.created_at).toLocaleString()}
              </time>
            </button>
            {e.triage_reason && <p className="text-sm text-slate-600">{e.triage_reason}</p>}
            {open === e.id && <pre className="mt-2 max-h-80 overflow-auto whitespace-pre-wrap break-words rounded bg-slate-50 p-2 text-sm">{e.text_body}</pre>}
          </li>
        ))}
      </ul>
    </div>
  );
}
