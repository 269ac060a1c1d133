// Webhook endpoints: subscribe a URL to events, see each delivery's attempts and send one again.
import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, fieldsOf, unwrap, type Schemas } from "../api/client";
import { Button, Field } from "../components/Field";
import { Problem } from "../components/Problem";

type EventType = Schemas["EventType"];
type Selector = Schemas["EventSelector"];

// The closed set of events, from the API's own document (`EventType`), less the test ping.
const EVENTS: EventType[] = [
  "member.added",
  "member.role_changed",
  "member.deactivated",
  "member.reactivated",
  "conversation.created",
  "message.created",
  "client.created",
  "invoice.created",
  "invoice.updated",
  "invoice.sent",
  "invoice.voided",
  "payment.received",
  "payment.refunded",
  "payment.unapplied",
  "credit_note.issued",
  "sla.warning",
  "sla.breached",
  "booking.created",
  "booking.confirmed",
  "booking.rescheduled",
  "booking.cancelled",
];

export function Webhooks() {
  const queryClient = useQueryClient();
  const endpoints = useQuery({
    queryKey: ["webhooks"],
    queryFn: async () => unwrap(await api.GET("/api/v1/webhooks")).data,
  });
  const refresh = () => void queryClient.invalidateQueries({ queryKey: ["webhooks"] });
  const [open, setOpen] = useState<string | null>(null);
  const [secret, setSecret] = useState<{ url: string; secret: string } | null>(null);
  const remove = useMutation({
    mutationFn: async (id: string) => unwrap(await api.DELETE("/api/v1/webhooks/{id}", { params: { path: { id } } })),
    onSettled: refresh,
  });
  const ping = useMutation({
    mutationFn: async (id: string) => unwrap(await api.POST("/api/v1/webhooks/{id}/ping", { params: { path: { id } } })),
    onSettled: () => void queryClient.invalidateQueries({ queryKey: ["webhook-deliveries"] }),
  });
  const toggle = useMutation({
    mutationFn: async ({ id, active }: { id: string; active: boolean }) =>
      unwrap(await api.PATCH("/api/v1/webhooks/{id}", { params: { path: { id } }, body: { active } })),
    onSettled: refresh,
  });

  return (
    <div className="mx-auto flex max-w-5xl flex-col gap-6 p-4">
      <section aria-labelledby="webhooks-heading">
        <h1 id="webhooks-heading" className="mb-2 text-lg font-semibold">
          Webhooks
        </h1>
        <Problem error={endpoints.error ?? remove.error ?? ping.error ?? toggle.error} />
        {secret && (
          <div role="status" className="mb-3 rounded bg-amber-50 p-3 text-sm">
            <p>
              Signing secret for {secret.url}, shown only now: every delivery is signed with it (the X-CP-Signature header).
            </p>
            <code data-testid="webhook-secret" className="font-mono break-all">
              {secret.secret}
            </code>
          </div>
        )}
        {endpoints.data?.length === 0 && <p className="text-slate-600">No endpoint yet.</p>}
        <ul aria-label="Endpoints" className="flex flex-col gap-3">
          {endpoints.data?.map((e) => (
            <li key={e.id} aria-label={e.url} className="rounded border border-slate-200 bg-white p-3">
              <div className="flex flex-wrap items-center gap-2">
                <span className="font-mono break-all">{e.url}</span>
                <span className={`rounded px-2 text-sm ${e.active ? "bg-green-100" : "bg-slate-200"}`}>{e.active ? "active" : "disabled"}</span>
                {e.failure_streak > 0 && <span className="text-sm text-amber-800">{e.failure_streak} failures in a row</span>}
                <span className="ml-auto flex gap-2 text-sm">
                  <button type="button" className="underline" onClick={() => setOpen(open === e.id ? null : e.id)} aria-expanded={open === e.id}>
                    Deliveries
                  </button>
                  <button type="button" className="underline" onClick={() => ping.mutate(e.id)}>
                    Send a ping
                  </button>
                  <button type="button" className="underline" onClick={() => toggle.mutate({ id: e.id, active: !e.active })}>
                    {e.active ? "Disable" : "Enable"}
                  </button>
                  <button type="button" className="text-red-700 underline" onClick={() => remove.mutate(e.id)}>
                    Delete
                  </button>
                </span>
              </div>
              <p className="text-sm text-slate-600">
                {e.description && `${e.description} · `}
                {e.event_types.join(", ")}
              </p>
              {e.disabled_reason && <p className="text-sm text-amber-800">{e.disabled_reason}</p>}
              {open === e.id && <Deliveries endpointId={e.id} />}
            </li>
          ))}
        </ul>
      </section>
      <NewEndpoint
        onCreated={(created) => {
          setSecret({ url: created.endpoint.url, secret: created.secret });
          refresh();
        }}
      />
    </div>
  );
}

function Deliveries({ endpointId }: { endpointId: string }) {
  const queryClient = useQueryClient();
  const deliveries = useQuery({
    queryKey: ["webhook-deliveries", endpointId],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/webhooks/{id}/deliveries", { params: { path: { id: endpointId }, query: { limit: 50 } } })).data,
    // Attempts go on in the background: keep the table current while it is open.
    refetchInterval: 2_000,
  });
  const redeliver = useMutation({
    mutationFn: async (deliveryId: string) =>
      unwrap(
        await api.POST("/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", {
          params: { path: { id: endpointId, delivery_id: deliveryId } },
        }),
      ),
    onSettled: () => void queryClient.invalidateQueries({ queryKey: ["webhook-deliveries", endpointId] }),
  });
  return (
    <div className="mt-2 overflow-x-auto">
      <Problem error={deliveries.error ?? redeliver.error} />
      {deliveries.data?.length === 0 && <p className="text-sm text-slate-600">Nothing delivered yet.</p>}
      {deliveries.data && deliveries.data.length > 0 && (
        <table aria-label="Deliveries" className="w-full text-left text-sm">
          <thead className="bg-slate-100 text-slate-600">
            <tr>
              <th className="px-2 py-1">Event</th>
              <th className="px-2 py-1">State</th>
              <th className="px-2 py-1">Attempts</th>
              <th className="px-2 py-1">Last answer</th>
              <th className="px-2 py-1">When</th>
              <th className="px-2 py-1">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {deliveries.data.map((d) => (
              <tr key={d.id} className="border-b border-slate-100">
                <td className="px-2 py-1 font-mono">{d.event_type}</td>
                <td className="px-2 py-1" data-testid="delivery-state">
                  {d.state}
                </td>
                <td className="px-2 py-1">{d.attempts}</td>
                <td className="px-2 py-1">
                  {d.last_status_code ?? ""}
                  {d.last_error && <span className="text-red-700"> {d.last_error}</span>}
                  {d.last_latency_ms !== null && d.last_latency_ms !== undefined && <span className="text-slate-500"> {d.last_latency_ms} ms</span>}
                </td>
                <td className="px-2 py-1">{new Date(d.last_attempt_at ?? d.created_at).toLocaleString()}</td>
                <td className="px-2 py-1">
                  <button type="button" className="underline" disabled={redeliver.isPending} onClick={() => redeliver.mutate(d.id)}>
                    Redeliver
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function NewEndpoint({ onCreated }: { onCreated: (created: Schemas["EndpointWithSecret"]) => void }) {
  const [url, setUrl] = useState("");
  const [description, setDescription] = useState("");
  const [everything, setEverything] = useState(false);
  const [chosen, setChosen] = useState<EventType[]>([]);
  const [fields, setFields] = useState<Record<string, string>>({});
  const create = useMutation({
    mutationFn: async () => {
      const event_types: Selector[] = everything ? ["*"] : chosen;
      return unwrap(await api.POST("/api/v1/webhooks", { body: { url, description, event_types } })).data;
    },
    onSuccess: (created) => {
      setUrl("");
      setDescription("");
      setChosen([]);
      setEverything(false);
      setFields({});
      onCreated(created);
    },
    onError: (error) => setFields(fieldsOf(error)),
  });
  return (
    <section aria-labelledby="new-endpoint-heading">
      <h2 id="new-endpoint-heading" className="mb-2 font-semibold">
        Add an endpoint
      </h2>
      <form
        aria-label="Add an endpoint"
        className="flex flex-col gap-2"
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate();
        }}
      >
        <Field label="URL" type="url" placeholder="https://" value={url} onChange={(e) => setUrl(e.target.value)} error={fields["url"]} />
        <Field label="Description" value={description} onChange={(e) => setDescription(e.target.value)} error={fields["description"]} />
        <fieldset className="rounded border border-slate-200 p-2">
          <legend className="px-1 text-sm font-medium">Events</legend>
          <label className="mb-1 flex items-center gap-2 text-sm">
            <input type="checkbox" checked={everything} onChange={(e) => setEverything(e.target.checked)} />
            Every event, including ones added later
          </label>
          <div className="grid grid-cols-1 gap-1 sm:grid-cols-3">
            {EVENTS.map((event) => (
              <label key={event} className="flex items-center gap-2 font-mono text-sm">
                <input
                  type="checkbox"
                  disabled={everything}
                  checked={everything || chosen.includes(event)}
                  onChange={(e) => setChosen(e.target.checked ? [...chosen, event] : chosen.filter((c) => c !== event))}
                />
                {event}
              </label>
            ))}
          </div>
          {fields["event_types"] && (
            <p role="alert" className="text-sm text-red-700">
              {fields["event_types"]}
            </p>
          )}
        </fieldset>
        <Button type="submit" disabled={create.isPending} className="self-start">
          Add endpoint
        </Button>
        {create.isError && Object.keys(fields).length === 0 && <Problem error={create.error} />}
      </form>
    </section>
  );
}
