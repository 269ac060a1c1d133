// SLA reports: for tickets opened in a period, each target met, breached or overdue, by
// policy, team or agent, as bars, with the time it took to meet them.
import { useMemo, useState } from "react";
import { Link } from "react-router";
import { useMutation, useQuery } from "@tanstack/react-query";
import { api, saveDownload, unwrap, type Schemas } from "../api/client";
import { Problem } from "../components/Problem";

type Row = Schemas["ReportRow"];
type Group = Schemas["ReportGroup"];
const METRIC_LABELS: Record<string, string> = {
  first_response: "First response",
  next_response: "Next response",
  resolution: "Resolution",
};
const PERIODS = [7, 30, 90, 365];

/** Seconds as a short duration: 45 s, 12 min, 3.5 h, 2.1 d. */
export function durationLabel(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86_400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86_400).toFixed(1)} d`;
}

/** The rows by metric, in the report's own order, each metric's groups biggest first. */
export function byMetric(rows: Row[]): [string, Row[]][] {
  const metrics = new Map<string, Row[]>();
  for (const row of rows) metrics.set(row.metric, [...(metrics.get(row.metric) ?? []), row]);
  const total = (r: Row) => r.met + r.breached + r.overdue;
  return [...metrics.entries()].map(([metric, list]) => [metric, [...list].sort((a, b) => total(b) - total(a))]);
}

export function SlaReport() {
  const [days, setDays] = useState(30);
  const [groupBy, setGroupBy] = useState<Group>("policy");
  // The period ends now, rounded to the minute so a re-render does not ask again.
  const period = useMemo(() => {
    const to = new Date(Math.ceil(Date.now() / 60_000) * 60_000);
    return { from: new Date(to.getTime() - days * 86_400_000).toISOString(), to: to.toISOString() };
  }, [days]);
  const report = useQuery({
    queryKey: ["sla-report", groupBy, period.from, period.to],
    queryFn: async () => {
      const answer = unwrap(await api.GET("/api/v1/sla/report", { params: { query: { group_by: groupBy, ...period } } }));
      // Asked without `format=csv`, the answer is the JSON report.
      if (typeof answer === "string") throw new Error("the report came back as CSV");
      return answer.data;
    },
  });
  const policies = useQuery({ queryKey: ["sla-policies"], queryFn: async () => unwrap(await api.GET("/api/v1/sla-policies")).data });
  const members = useQuery({
    queryKey: ["members"],
    queryFn: async () => unwrap(await api.GET("/api/v1/members", { params: { query: { limit: 100 } } })).data,
  });
  const groupName = (group: string | null | undefined) => {
    if (!group) return groupBy === "agent" ? "Unassigned" : groupBy === "team" ? "No team" : "No policy";
    if (groupBy === "policy") return policies.data?.find((p) => p.id === group)?.name ?? group;
    if (groupBy === "agent") return members.data?.find((m) => m.user_id === group)?.display_name ?? group;
    return group;
  };
  const csv = useMutation({
    mutationFn: async () => {
      const answer = await api.GET("/api/v1/sla/report", {
        params: { query: { group_by: groupBy, ...period, format: "csv" } },
        parseAs: "blob",
      });
      saveDownload(answer, `sla-report-${groupBy}-${period.from.slice(0, 10)}.csv`);
    },
  });
  const metrics = byMetric(report.data ?? []);

  return (
    <div className="mx-auto flex h-full max-w-5xl flex-col gap-4 overflow-auto p-4">
      <div className="flex flex-wrap items-center gap-3">
        <Link to="/tickets" className="text-blue-700 underline">
          ‹ Tickets
        </Link>
        <h1 className="text-lg font-semibold">SLA report</h1>
        <label className="flex items-center gap-1 text-sm">
          Opened in the last
          <select value={days} onChange={(e) => setDays(Number(e.target.value))} className="rounded border border-slate-300 px-2 py-1">
            {PERIODS.map((d) => (
              <option key={d} value={d}>
                {d} days
              </option>
            ))}
          </select>
        </label>
        <label className="flex items-center gap-1 text-sm">
          By
          <select value={groupBy} onChange={(e) => setGroupBy(e.target.value as Group)} className="rounded border border-slate-300 px-2 py-1">
            <option value="policy">policy</option>
            <option value="team">team</option>
            <option value="agent">agent</option>
          </select>
        </label>
        <button type="button" onClick={() => csv.mutate()} className="ml-auto rounded border border-slate-300 bg-white px-3 py-1 text-sm">
          Download CSV
        </button>
      </div>
      <Problem error={report.error ?? csv.error} />
      {report.isPending && <p>Loading…</p>}
      {report.data?.length === 0 && <p className="text-slate-600">No ticket with an SLA target was opened in this period.</p>}
      <p className="flex gap-4 text-sm" aria-hidden>
        <span className="flex items-center gap-1">
          <span className="inline-block h-3 w-3 bg-green-600" /> met
        </span>
        <span className="flex items-center gap-1">
          <span className="inline-block h-3 w-3 bg-red-600" /> breached
        </span>
        <span className="flex items-center gap-1">
          <span className="inline-block h-3 w-3 bg-amber-500" /> overdue, still open
        </span>
      </p>
      {metrics.map(([metric, rows]) => {
        const widest = Math.max(1, ...rows.map((r) => r.met + r.breached + r.overdue));
        return (
          <section key={metric} aria-labelledby={`metric-${metric}`}>
            <h2 id={`metric-${metric}`} className="mb-2 font-semibold">
              {METRIC_LABELS[metric] ?? metric}
            </h2>
            <table aria-label={`${METRIC_LABELS[metric] ?? metric} by ${groupBy}`} className="w-full text-left text-sm">
              <thead className="text-slate-600">
                <tr>
                  <th className="w-40 px-2 py-1 capitalize">{groupBy}</th>
                  <th className="px-2 py-1">Met · breached · overdue</th>
                  <th className="w-20 px-2 py-1">Met rate</th>
                  <th className="w-36 px-2 py-1">Time to meet p50 / p90</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((r) => (
                  <tr key={r.group ?? "none"} className="border-b border-slate-100">
                    <td className="px-2 py-1">{groupName(r.group)}</td>
                    <td className="px-2 py-1">
                      <div
                        role="img"
                        aria-label={`${r.met} met, ${r.breached} breached, ${r.overdue} overdue`}
                        className="flex h-4 overflow-hidden rounded bg-slate-100"
                        style={{ width: `${Math.max(4, ((r.met + r.breached + r.overdue) / widest) * 100)}%` }}
                      >
                        {r.met > 0 && <span className="bg-green-600" style={{ flexGrow: r.met }} />}
                        {r.breached > 0 && <span className="bg-red-600" style={{ flexGrow: r.breached }} />}
                        {r.overdue > 0 && <span className="bg-amber-500" style={{ flexGrow: r.overdue }} />}
                      </div>
                      <span className="text-xs text-slate-600">
                        {r.met} · {r.breached} · {r.overdue}
                      </span>
                    </td>
                    <td className="px-2 py-1" data-testid="met-rate">
                      {r.met_rate === null || r.met_rate === undefined ? "—" : `${Math.round(r.met_rate * 100)}%`}
                    </td>
                    <td className="px-2 py-1">
                      {durationLabel(r.p50_seconds)} / {durationLabel(r.p90_seconds)}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        );
      })}
    </div>
  );
}
