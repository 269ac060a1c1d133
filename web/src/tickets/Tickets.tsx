import { useState } from "react";
import { Link } from "react-router";
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap, type Schemas } from "../api/client";
import { SlaBadge } from "./SlaBadge";
import { Problem } from "../components/Problem";

type TicketSummary = Schemas["TicketSummary"];
type Status = Schemas["TicketStatus"];
type Priority = Schemas["Priority"];

export const STATUSES: Status[] = ["new", "open", "pending", "on_hold", "solved", "closed"];
export const PRIORITIES: Priority[] = ["low", "normal", "high", "urgent"];
/** The board's columns: closed tickets stay in the list. */
const BOARD: Status[] = ["new", "open", "pending", "on_hold", "solved"];

export const statusLabel = (s: string) => s.replace("_", " ");

/** The ticket statuses as the options of a select. */
export function StatusOptions() {
  return (
    <>
      {STATUSES.map((s) => (
        <option key={s} value={s}>
          {statusLabel(s)}
        </option>
      ))}
    </>
  );
}

/** Tickets as a list or a board by status, each with its SLA badge counting down. */
export function Tickets() {
  const [view, setView] = useState<"list" | "board">("list");
  const [status, setStatus] = useState<Status | "">("");
  const [priority, setPriority] = useState<Priority | "">("");
  const tickets = useQuery({
    queryKey: ["tickets", view, status, priority],
    queryFn: async () =>
      unwrap(
        await api.GET("/api/v1/tickets", {
          params: {
            query: {
              limit: 100,
              ...(view === "list" && status ? { status } : {}),
              ...(priority ? { priority } : {}),
            },
          },
        }),
      ),
    placeholderData: keepPreviousData,
    refetchInterval: 30_000,
  });

  return (
    <div className="flex h-full flex-col">
      <div className="flex flex-wrap items-center gap-3 border-b border-slate-200 bg-white p-3">
        <h1 className="text-lg font-semibold">Tickets</h1>
        <Link to="/tickets/reports" className="text-sm text-blue-700 underline">
          SLA report
        </Link>
        <div role="group" aria-label="View" className="flex overflow-hidden rounded border border-slate-300">
          {(["list", "board"] as const).map((v) => (
            <button
              key={v}
              type="button"
              aria-pressed={view === v}
              onClick={() => setView(v)}
              className={`px-3 py-1 capitalize ${view === v ? "bg-blue-700 text-white" : "bg-white"}`}
            >
              {v}
            </button>
          ))}
        </div>
        {view === "list" && (
          <label className="flex items-center gap-1 text-sm">
            Status
            <select value={status} onChange={(e) => setStatus(e.target.value as Status | "")} className="rounded border border-slate-300 px-2 py-1">
              <option value="">Any</option>
              <StatusOptions />
            </select>
          </label>
        )}
        <label className="flex items-center gap-1 text-sm">
          Priority
          <select value={priority} onChange={(e) => setPriority(e.target.value as Priority | "")} className="rounded border border-slate-300 px-2 py-1">
            <option value="">Any</option>
            {PRIORITIES.map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </label>
      </div>
      {tickets.isPending && <p className="p-4 text-slate-500">Loading…</p>}
      {tickets.isError && (
        <p role="alert" className="p-4 text-red-700">
          {tickets.error.message}
        </p>
      )}
      {tickets.data && tickets.data.data.length === 0 && <p className="p-4 text-slate-500">No tickets.</p>}
      {tickets.data && view === "list" && <TicketTable tickets={tickets.data.data} />}
      {tickets.data && view === "board" && <TicketBoard tickets={tickets.data.data} />}
    </div>
  );
}

function TicketTable({ tickets }: { tickets: TicketSummary[] }) {
  return (
    <div className="min-h-0 flex-1 overflow-auto">
      <table className="w-full text-left text-sm">
        <thead className="sticky top-0 bg-slate-100 text-slate-600">
          <tr>
            <th className="px-3 py-2">Subject</th>
            <th className="px-3 py-2">Status</th>
            <th className="px-3 py-2">Priority</th>
            <th className="px-3 py-2">SLA</th>
            <th className="hidden px-3 py-2 md:table-cell">Opened</th>
          </tr>
        </thead>
        <tbody>
          {tickets.map((t) => (
            <tr key={t.id} className="border-b border-slate-100 bg-white">
              <td className="px-3 py-2">
                <Link to={`/tickets/${t.id}`} className="text-blue-800 hover:underline">
                  {t.subject}
                </Link>
              </td>
              <td className="px-3 py-2 capitalize">{statusLabel(t.status)}</td>
              <td className="px-3 py-2 capitalize">{t.priority}</td>
              <td className="px-3 py-2">
                <SlaBadge moments={t} />
              </td>
              <td className="hidden px-3 py-2 md:table-cell">{new Date(t.created_at).toLocaleString()}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function TicketBoard({ tickets }: { tickets: TicketSummary[] }) {
  const queryClient = useQueryClient();
  const move = useMutation({
    mutationFn: async ({ id, status }: { id: string; status: Status }) =>
      unwrap(await api.PATCH("/api/v1/tickets/{id}", { params: { path: { id } }, body: { status } })),
    onSettled: () => queryClient.invalidateQueries({ queryKey: ["tickets"] }),
  });
  return (
    <div className="flex min-h-0 flex-1 gap-3 overflow-x-auto p-3">
      <Problem error={move.error} />
      {BOARD.map((column) => (
        <section key={column} aria-label={statusLabel(column)} className="flex w-64 shrink-0 flex-col rounded bg-slate-100">
          <h2 className="px-3 py-2 text-sm font-semibold capitalize text-slate-700">
            {statusLabel(column)} ({tickets.filter((t) => t.status === column).length})
          </h2>
          <ul className="flex flex-col gap-2 overflow-y-auto p-2">
            {tickets
              .filter((t) => t.status === column)
              .map((t) => (
                <li key={t.id} className="rounded bg-white p-2 shadow-sm">
                  <Link to={`/tickets/${t.id}`} className="block font-medium text-blue-800 hover:underline">
                    {t.subject}
                  </Link>
                  <div className="mt-1 flex items-center gap-2 text-xs">
                    <span className="capitalize text-slate-600">{t.priority}</span>
                    <SlaBadge moments={t} />
                  </div>
                  <label className="mt-2 flex items-center gap-1 text-xs text-slate-600">
                    Move to
                    <select
                      value={t.status}
                      disabled={move.isPending}
                      onChange={(e) => move.mutate({ id: t.id, status: e.target.value as Status })}
                      className="rounded border border-slate-300 px-1"
                    >
                      <StatusOptions />
                    </select>
                  </label>
                </li>
              ))}
          </ul>
        </section>
      ))}
    </div>
  );
}
