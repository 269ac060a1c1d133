import { useState } from "react";
import { Link } from "react-router";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { api, unwrap, type Schemas } from "../api/client";
import { TabbedSection } from "../components/Tabs";
import { formatMoney } from "./money";
import { Problem } from "../components/Problem";

type InvoiceStatus = Schemas["InvoiceStatus"];
const STATUSES: InvoiceStatus[] = ["draft", "sent", "partially_paid", "paid", "void"];

export function useClients() {
  return useQuery({
    queryKey: ["clients", "all"],
    queryFn: async () => unwrap(await api.GET("/api/v1/clients", { params: { query: { limit: 100 } } })).data,
    staleTime: 60_000,
  });
}

/** Finance: invoices, aging and the summary, one tab each. */
export function Finance() {
  return (
    <TabbedSection
      label="Finance"
      tabs={[
        { to: "/finance", label: "Invoices", end: true },
        { to: "/finance/aging", label: "Aging" },
        { to: "/finance/summary", label: "Summary" },
      ]}
    />
  );
}

export function InvoiceList() {
  const [status, setStatus] = useState<InvoiceStatus | "">("");
  const clients = useClients();
  const invoices = useQuery({
    queryKey: ["invoices", status],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/invoices", { params: { query: { limit: 100, ...(status ? { status } : {}) } } })),
    placeholderData: keepPreviousData,
  });
  const clientName = new Map((clients.data ?? []).map((c) => [c.id, c.name]));
  return (
    <div className="flex flex-col gap-3 p-3">
      <div className="flex flex-wrap items-center gap-3">
        <h1 className="text-lg font-semibold">Invoices</h1>
        <label className="flex items-center gap-1 text-sm">
          Status
          <select value={status} onChange={(e) => setStatus(e.target.value as InvoiceStatus | "")} className="rounded border border-slate-300 px-2 py-1">
            <option value="">Any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s.replace("_", " ")}
              </option>
            ))}
          </select>
        </label>
        <Link to="/finance/invoices/new" className="ml-auto rounded bg-blue-700 px-3 py-1 text-white">
          New invoice
        </Link>
      </div>
      <Problem error={invoices.error} />
      {invoices.data?.data.length === 0 && <p className="text-slate-500">No invoices.</p>}
      <table className="w-full text-left text-sm">
        <thead className="bg-slate-100 text-slate-600">
          <tr>
            <th className="px-3 py-2">Number</th>
            <th className="px-3 py-2">Client</th>
            <th className="px-3 py-2">Status</th>
            <th className="px-3 py-2">Due</th>
            <th className="px-3 py-2 text-right">Total</th>
            <th className="px-3 py-2 text-right">Balance</th>
          </tr>
        </thead>
        <tbody>
          {invoices.data?.data.map((i) => (
            <tr key={i.id} className="border-b border-slate-100 bg-white">
              <td className="px-3 py-2">
                <Link to={`/finance/invoices/${i.id}`} className="text-blue-800 hover:underline">
                  {i.number ?? "Draft"}
                </Link>
              </td>
              <td className="px-3 py-2">{clientName.get(i.client_id) ?? "…"}</td>
              <td className="px-3 py-2 capitalize">
                {i.status.replace("_", " ")}
                {i.overdue && <span className="ml-2 rounded bg-red-100 px-1 text-xs text-red-800">overdue</span>}
              </td>
              <td className="px-3 py-2">{i.due_date}</td>
              <td className="px-3 py-2 text-right tabular-nums">{formatMoney(i.total_minor, i.currency)}</td>
              <td className="px-3 py-2 text-right tabular-nums">{formatMoney(i.balance_minor, i.currency)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

const BUCKETS = [
  ["current_minor", "Current"],
  ["days_1_30_minor", "1-30 days"],
  ["days_31_60_minor", "31-60 days"],
  ["days_61_90_minor", "61-90 days"],
  ["days_over_90_minor", "Over 90 days"],
] as const;

/** What clients owe by how late it is, as bars per currency. */
export function Aging() {
  const aging = useQuery({
    queryKey: ["invoices", "aging"],
    queryFn: async () => unwrap(await api.GET("/api/v1/finance/aging")).data,
  });
  const byCurrency = new Map<string, Record<string, number>>();
  for (const row of aging.data ?? []) {
    const totals = byCurrency.get(row.currency) ?? {};
    for (const [key] of BUCKETS) totals[key] = (totals[key] ?? 0) + row[key];
    byCurrency.set(row.currency, totals);
  }
  return (
    <div className="flex flex-col gap-6 p-3">
      <h1 className="text-lg font-semibold">Aging</h1>
      {aging.data?.length === 0 && <p className="text-slate-500">Nothing is owed.</p>}
      {[...byCurrency].map(([currency, totals]) => {
        const most = Math.max(1, ...BUCKETS.map(([key]) => totals[key] ?? 0));
        return (
          <figure key={currency} className="max-w-2xl">
            <figcaption className="mb-2 font-medium">{currency}</figcaption>
            <ul className="flex flex-col gap-2">
              {BUCKETS.map(([key, label]) => {
                const amount = totals[key] ?? 0;
                return (
                  <li key={key} className="grid grid-cols-[8rem_1fr_8rem] items-center gap-2 text-sm">
                    <span>{label}</span>
                    <span className="h-4 rounded bg-slate-100" aria-hidden>
                      <span className="block h-4 rounded bg-blue-600" style={{ width: `${(amount / most) * 100}%` }} />
                    </span>
                    <span className="text-right tabular-nums">{formatMoney(amount, currency)}</span>
                  </li>
                );
              })}
            </ul>
          </figure>
        );
      })}
    </div>
  );
}

/** A period's first and last day (inclusive), as the summary asks for them. */
export function periodOf(kind: "month" | "last-month" | "year", today: Date): { from: string; to: string } {
  const y = today.getFullYear();
  const m = today.getMonth();
  const day = (d: Date) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
  if (kind === "year") return { from: day(new Date(y, 0, 1)), to: day(new Date(y, 11, 31)) };
  const first = kind === "month" ? new Date(y, m, 1) : new Date(y, m - 1, 1);
  return { from: day(first), to: day(new Date(first.getFullYear(), first.getMonth() + 1, 0)) };
}

/** Invoiced and collected in a period, and outstanding now, per currency. */
export function Summary() {
  const [kind, setKind] = useState<"month" | "last-month" | "year">("month");
  const period = periodOf(kind, new Date());
  const summary = useQuery({
    queryKey: ["invoices", "summary", period.from, period.to],
    queryFn: async () => unwrap(await api.GET("/api/v1/finance/summary", { params: { query: period } })).data,
  });
  return (
    <div className="flex max-w-3xl flex-col gap-3 p-3">
      <div className="flex items-center gap-3">
        <h1 className="text-lg font-semibold">Summary</h1>
        <label className="flex items-center gap-1 text-sm">
          Period
          <select value={kind} onChange={(e) => setKind(e.target.value as typeof kind)} className="rounded border border-slate-300 px-2 py-1">
            <option value="month">This month</option>
            <option value="last-month">Last month</option>
            <option value="year">This year</option>
          </select>
        </label>
        <span className="text-sm text-slate-500">
          {period.from} to {period.to}
        </span>
      </div>
      <Problem error={summary.error} />
      {summary.isPending && <p className="text-slate-500">Loading…</p>}
      {summary.data?.length === 0 && <p className="text-slate-500">Nothing invoiced, collected or owed.</p>}
      {summary.data && summary.data.length > 0 && (
        <table aria-label="Summary by currency" className="w-full text-left text-sm">
          <thead className="bg-slate-100 text-slate-600">
            <tr>
              <th className="px-3 py-2">Currency</th>
              <th className="px-3 py-2 text-right">Invoiced</th>
              <th className="px-3 py-2 text-right">Collected</th>
              <th className="px-3 py-2 text-right">Outstanding now</th>
            </tr>
          </thead>
          <tbody>
            {summary.data.map((row) => (
              <tr key={row.currency} className="border-b border-slate-100 bg-white">
                <td className="px-3 py-2">{row.currency}</td>
                <td className="px-3 py-2 text-right tabular-nums">{formatMoney(row.invoiced_minor, row.currency)}</td>
                <td className="px-3 py-2 text-right tabular-nums">{formatMoney(row.collected_minor, row.currency)}</td>
                <td className="px-3 py-2 text-right tabular-nums">{formatMoney(row.outstanding_minor, row.currency)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
