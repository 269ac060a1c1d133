import { useState, type FormEvent } from "react";
import { Link, useParams } from "react-router";
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { ApiError, api, unwrap } from "../api/client";
import { Button, Field } from "../components/Field";
import { TabbedSection } from "../components/Tabs";

/** CRM: clients, contacts and the pipeline, a tab each. */
export function Crm() {
  return <TabbedSection label="CRM" tabs={[{ to: "/crm", label: "Clients", end: true }, { to: "/crm/contacts", label: "Contacts" }, { to: "/crm/pipeline", label: "Pipeline" }, { to: "/crm/import", label: "Import" }]} />;
}

export function Clients() {
  const queryClient = useQueryClient();
  const [q, setQ] = useState("");
  const [name, setName] = useState("");
  const [problem, setProblem] = useState<string | undefined>();
  const clients = useQuery({
    queryKey: ["clients", q],
    queryFn: async () => unwrap(await api.GET("/api/v1/clients", { params: { query: { limit: 100, ...(q ? { q } : {}) } } })),
    placeholderData: keepPreviousData,
  });
  const create = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/clients", { body: { name } })),
    onSuccess: () => {
      setName("");
      setProblem(undefined);
      void queryClient.invalidateQueries({ queryKey: ["clients"] });
    },
    onError: (error) => setProblem(error instanceof ApiError ? (error.fields["name"] ?? error.message) : error.message),
  });
  function submit(event: FormEvent) {
    event.preventDefault();
    create.mutate();
  }
  return (
    <div className="flex flex-col gap-3 p-3">
      <div className="flex flex-wrap items-end gap-3">
        <h1 className="text-lg font-semibold">Clients</h1>
        <label className="sr-only" htmlFor="client-search">
          Search clients
        </label>
        <input id="client-search" type="search" placeholder="Search" value={q} onChange={(e) => setQ(e.target.value)} className="rounded border border-slate-300 px-2 py-1" />
        <form onSubmit={submit} aria-label="New client" className="ml-auto flex items-end gap-2" noValidate>
          <Field label="Client name" value={name} onChange={(e) => setName(e.target.value)} error={problem} />
          <Button type="submit" disabled={create.isPending}>
            Add
          </Button>
        </form>
      </div>
      {clients.data?.data.length === 0 && <p className="text-slate-500">No clients match.</p>}
      <ul aria-label="Clients" className="flex flex-col gap-1">
        {clients.data?.data.map((c) => (
          <li key={c.id} className="flex items-center gap-3 rounded bg-white px-3 py-2 shadow-sm">
            <Link to={`/crm/clients/${c.id}`} className="font-medium text-blue-800 hover:underline">
              {c.name}
            </Link>
            <span className="text-sm capitalize text-slate-500">{c.status}</span>
            {c.tags.map((t) => (
              <span key={t} className="rounded bg-slate-100 px-1 text-xs">
                {t}
              </span>
            ))}
          </li>
        ))}
      </ul>
    </div>
  );
}

export function ClientDetail() {
  const { id = "" } = useParams();
  const queryClient = useQueryClient();
  const [note, setNote] = useState("");
  const client = useQuery({
    queryKey: ["client", id],
    queryFn: async () => unwrap(await api.GET("/api/v1/clients/{id}", { params: { path: { id } } })).data,
  });
  const contacts = useQuery({
    queryKey: ["contacts", "of", id],
    queryFn: async () => unwrap(await api.GET("/api/v1/contacts", { params: { query: { client_id: id, limit: 100 } } })).data,
  });
  const timeline = useQuery({
    queryKey: ["client", id, "timeline"],
    queryFn: async () => unwrap(await api.GET("/api/v1/clients/{id}/timeline", { params: { path: { id } } })).data,
  });
  const addNote = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/clients/{id}/notes", { params: { path: { id } }, body: { body: note } })),
    onSuccess: () => {
      setNote("");
      void queryClient.invalidateQueries({ queryKey: ["client", id, "timeline"] });
    },
  });
  if (client.isPending) return <p className="p-4 text-slate-500">Loading…</p>;
  if (client.isError)
    return (
      <p role="alert" className="p-4 text-red-700">
        {client.error instanceof ApiError && client.error.status === 404 ? "No such client." : client.error.message}
      </p>
    );
  return (
    <div className="mx-auto flex max-w-4xl flex-col gap-4 p-4">
      <Link to="/crm" className="text-blue-700">
        ‹ Clients
      </Link>
      <h1 className="text-xl font-semibold">{client.data.name}</h1>
      <section aria-labelledby="contacts-heading">
        <h2 id="contacts-heading" className="mb-1 font-semibold">
          Contacts
        </h2>
        {contacts.data?.length === 0 && <p className="text-sm text-slate-500">No contacts yet.</p>}
        <ul className="text-sm">
          {contacts.data?.map((c) => (
            <li key={c.id}>
              {[c.first_name, c.last_name].filter(Boolean).join(" ")} · {c.emails.join(", ")}
              {c.phones.length > 0 && ` · ${c.phones.join(", ")}`}
            </li>
          ))}
        </ul>
      </section>
      <section aria-labelledby="timeline-heading">
        <h2 id="timeline-heading" className="mb-1 font-semibold">
          Timeline
        </h2>
        <form
          aria-label="Add a note"
          onSubmit={(e) => {
            e.preventDefault();
            if (note.trim()) addNote.mutate();
          }}
          className="mb-3 flex gap-2"
        >
          <label htmlFor="note" className="sr-only">
            Note
          </label>
          <input id="note" value={note} onChange={(e) => setNote(e.target.value)} placeholder="Add a note" className="min-w-0 flex-1 rounded border border-slate-300 px-2 py-1" />
          <Button type="submit" disabled={addNote.isPending || !note.trim()}>
            Add note
          </Button>
        </form>
        <ol aria-label="Timeline" className="flex flex-col gap-1 text-sm">
          {timeline.data?.map((entry) => (
            <li key={`${entry.kind}-${entry.id}`} className="flex gap-2">
              <time className="shrink-0 text-slate-500" dateTime={entry.at}>
                {new Date(entry.at).toLocaleString()}
              </time>
              <span className="shrink-0 rounded bg-slate-100 px-1 text-xs uppercase">{entry.kind}</span>
              <span>{entry.text}</span>
            </li>
          ))}
        </ol>
      </section>
    </div>
  );
}

export function Contacts() {
  const [q, setQ] = useState("");
  const contacts = useQuery({
    queryKey: ["contacts", q],
    queryFn: async () => unwrap(await api.GET("/api/v1/contacts", { params: { query: { limit: 100, ...(q ? { q } : {}) } } })),
    placeholderData: keepPreviousData,
  });
  return (
    <div className="flex flex-col gap-3 p-3">
      <div className="flex items-center gap-3">
        <h1 className="text-lg font-semibold">Contacts</h1>
        <label className="sr-only" htmlFor="contact-search">
          Search contacts
        </label>
        <input id="contact-search" type="search" placeholder="Search" value={q} onChange={(e) => setQ(e.target.value)} className="rounded border border-slate-300 px-2 py-1" />
      </div>
      <table className="w-full text-left text-sm">
        <thead className="bg-slate-100 text-slate-600">
          <tr>
            <th className="px-3 py-2">Name</th>
            <th className="px-3 py-2">Email</th>
            <th className="px-3 py-2">Phone</th>
            <th className="px-3 py-2">Portal</th>
          </tr>
        </thead>
        <tbody>
          {contacts.data?.data.map((c) => (
            <tr key={c.id} className="border-b border-slate-100 bg-white">
              <td className="px-3 py-2">
                {[c.first_name, c.last_name].filter(Boolean).join(" ")}
                {c.needs_review && <span className="ml-2 rounded bg-amber-100 px-1 text-xs text-amber-900">review</span>}
              </td>
              <td className="px-3 py-2">{c.emails.join(", ")}</td>
              <td className="px-3 py-2">
                {c.phones.join(", ")}
                {c.sms_opted_out.length > 0 && <span className="ml-2 text-xs text-red-700">opted out</span>}
              </td>
              <td className="px-3 py-2">{c.portal_access ? "yes" : ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
