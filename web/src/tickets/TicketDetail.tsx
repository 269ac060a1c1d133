import { ConversationView } from "../pages/ConversationView";
import { Link, useParams } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { ApiError, api, unwrap, type Schemas } from "../api/client";
import { SlaBadge } from "./SlaBadge";
import { PRIORITIES, StatusOptions } from "./Tickets";
import { readSla, useNow } from "./sla";
import { Problem } from "../components/Problem";

type ClockView = Schemas["ClockView"];
type TicketPatch = Schemas["TicketPatch"];

const METRICS: Record<string, string> = {
  first_response: "First response",
  next_response: "Next response",
  resolution: "Resolution",
};

export function TicketDetail() {
  const { id = "" } = useParams();
  const queryClient = useQueryClient();
  const ticket = useQuery({
    queryKey: ["ticket", id],
    queryFn: async () => unwrap(await api.GET("/api/v1/tickets/{id}", { params: { path: { id } } })).data,
  });
  const clocks = useQuery({
    queryKey: ["ticket", id, "clocks"],
    queryFn: async () => unwrap(await api.GET("/api/v1/tickets/{id}/sla", { params: { path: { id } } })).data,
  });
  const activity = useQuery({
    queryKey: ["ticket", id, "activity"],
    queryFn: async () => unwrap(await api.GET("/api/v1/tickets/{id}/activity", { params: { path: { id } } })).data,
  });
  const change = useMutation({
    mutationFn: async (body: TicketPatch) =>
      unwrap(await api.PATCH("/api/v1/tickets/{id}", { params: { path: { id } }, body })),
    onSettled: () => {
      void queryClient.invalidateQueries({ queryKey: ["ticket", id] });
      void queryClient.invalidateQueries({ queryKey: ["tickets"] });
    },
  });

  if (ticket.isPending) return <p className="p-4 text-slate-500">Loading…</p>;
  if (ticket.isError)
    return (
      <p role="alert" className="p-4 text-red-700">
        {ticket.error instanceof ApiError && ticket.error.status === 404 ? "No such ticket." : ticket.error.message}
      </p>
    );
  const t = ticket.data;
  const running = (clocks.data ?? []).filter((c) => c.state === "running" && c.due_at);
  const next = running.map((c) => c.due_at as string).sort()[0] ?? null;

  return (
    <div className="mx-auto flex max-w-4xl flex-col gap-4 p-4">
      <Link to="/tickets" className="text-blue-700">
        ‹ Tickets
      </Link>
      <header className="flex flex-wrap items-center gap-3">
        <h1 className="text-xl font-semibold">{t.subject}</h1>
        <SlaBadge moments={{ sla_breached_at: t.sla_breached_at, sla_next_due_at: next }} />
      </header>
      <div className="flex flex-wrap gap-4">
        <label className="flex items-center gap-2">
          Status
          <select
            value={t.status}
            disabled={change.isPending}
            onChange={(e) => change.mutate({ status: e.target.value as TicketPatch["status"] })}
            className="rounded border border-slate-300 px-2 py-1 capitalize"
          >
            <StatusOptions />
          </select>
        </label>
        <label className="flex items-center gap-2">
          Priority
          <select
            value={t.priority}
            disabled={change.isPending}
            onChange={(e) => change.mutate({ priority: e.target.value as TicketPatch["priority"] })}
            className="rounded border border-slate-300 px-2 py-1 capitalize"
          >
            {PRIORITIES.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </label>
        {t.conversation_id && (
          <Link to={`/inbox/${t.conversation_id}`} className="self-center text-blue-700 underline">
            Open the conversation
          </Link>
        )}
      </div>
      <Problem error={change.error} />
      <section aria-labelledby="clocks-heading">
        <h2 id="clocks-heading" className="mb-2 font-semibold">
          SLA clocks
        </h2>
        {clocks.data && clocks.data.length === 0 && <p className="text-slate-500">No policy covers this ticket.</p>}
        <ul className="grid gap-2 sm:grid-cols-3">
          {clocks.data?.map((c) => <Clock key={c.metric} clock={c} />)}
        </ul>
      </section>
      {t.conversation_id && (
        <section aria-label="The ticket's conversation" className="h-[28rem] overflow-hidden rounded border border-slate-200">
          {/* The conversation itself, live: replying here answers the customer in its channel. */}
          <ConversationView conversationId={t.conversation_id} />
        </section>
      )}
      <section aria-labelledby="activity-heading">
        <h2 id="activity-heading" className="mb-2 font-semibold">
          Activity
        </h2>
        <ol className="flex flex-col gap-1 text-sm">
          {activity.data?.map((e) => (
            <li key={e.id} className="flex gap-2">
              <time className="text-slate-500" dateTime={e.at}>
                {new Date(e.at).toLocaleString()}
              </time>
              <span>{e.kind.replaceAll("_", " ")}</span>
              <span className="text-slate-500">{e.actor_type}</span>
            </li>
          ))}
        </ol>
      </section>
    </div>
  );
}

function Clock({ clock }: { clock: ClockView }) {
  const now = useNow();
  const reading =
    clock.state === "running" ? readSla({ sla_next_due_at: clock.due_at ?? null }, now) : null;
  return (
    <li className="rounded border border-slate-200 bg-white p-3">
      <p className="font-medium">{METRICS[clock.metric] ?? clock.metric}</p>
      <p className="text-sm capitalize text-slate-600">{reading?.tone === "breached" ? "breached" : clock.state}</p>
      <p className="text-sm tabular-nums">
        {reading && reading.tone !== "breached" ? reading.label : clock.breached_at ? `Breached ${new Date(clock.breached_at).toLocaleString()}` : ""}
      </p>
      <p className="text-xs text-slate-500">Target {Math.round(clock.target_seconds / 60)} min</p>
    </li>
  );
}
