import { useMemo, useState, type FormEvent } from "react";
import { Link, useParams } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { ApiError, api, unwrap, type Schemas } from "../api/client";
import { Button, Field } from "../components/Field";
import { InvoiceForm } from "./InvoiceForm";
import { useClients } from "./Invoices";
import { formatMoney, fractionDigits, parseMoney } from "./money";

type Invoice = Schemas["Invoice"];
type PaymentMethod = Schemas["PaymentMethod"];
const METHODS: PaymentMethod[] = ["bank_transfer", "card", "ach", "cash", "check", "other"];

export function InvoiceDetail() {
  const { id = "" } = useParams();
  const queryClient = useQueryClient();
  const [editing, setEditing] = useState(false);
  const invoice = useQuery({
    queryKey: ["invoice", id],
    queryFn: async () => unwrap(await api.GET("/api/v1/invoices/{id}", { params: { path: { id } } })).data,
  });
  const payments = useQuery({
    queryKey: ["invoice", id, "payments"],
    queryFn: async () => unwrap(await api.GET("/api/v1/invoices/{id}/payments", { params: { path: { id } } })).data,
  });
  const clients = useClients();
  const refresh = () => {
    void queryClient.invalidateQueries({ queryKey: ["invoice", id] });
    void queryClient.invalidateQueries({ queryKey: ["invoices"] });
  };
  const send = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/invoices/{id}/send", { params: { path: { id } } })),
    onSettled: refresh,
  });
  const voidIt = useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/invoices/{id}/void", { params: { path: { id } } })),
    onSettled: refresh,
  });

  if (invoice.isPending) return <p className="p-4 text-slate-500">Loading…</p>;
  if (invoice.isError)
    return (
      <p role="alert" className="p-4 text-red-700">
        {invoice.error instanceof ApiError && invoice.error.status === 404 ? "No such invoice." : invoice.error.message}
      </p>
    );
  const inv = invoice.data;
  if (editing && inv.status === "draft") return <InvoiceForm draft={inv} />;
  const money = (minor: number) => formatMoney(minor, inv.currency);
  const client = clients.data?.find((c) => c.id === inv.client_id)?.name ?? "…";
  const open = inv.status === "sent" || inv.status === "partially_paid";

  return (
    <div className="mx-auto flex max-w-4xl flex-col gap-4 p-4">
      <Link to="/finance" className="text-blue-700">
        ‹ Invoices
      </Link>
      <header className="flex flex-wrap items-center gap-3">
        <h1 className="text-xl font-semibold">{inv.number ? `Invoice ${inv.number}` : "Draft invoice"}</h1>
        <span data-testid="invoice-status" className="rounded bg-slate-100 px-2 py-0.5 text-sm capitalize">
          {inv.status.replace("_", " ")}
        </span>
        {inv.overdue && <span className="rounded bg-red-100 px-2 py-0.5 text-sm text-red-800">overdue</span>}
      </header>
      <p className="text-slate-700">
        {client} · issued {inv.issue_date} · due {inv.due_date}
      </p>
      <table className="w-full text-left text-sm">
        <thead className="bg-slate-100 text-slate-600">
          <tr>
            <th className="px-2 py-1">Description</th>
            <th className="px-2 py-1 text-right">Quantity</th>
            <th className="px-2 py-1 text-right">Unit price</th>
            <th className="px-2 py-1 text-right">Tax</th>
            <th className="px-2 py-1 text-right">Total</th>
          </tr>
        </thead>
        <tbody>
          {inv.line_items.map((l, i) => (
            <tr key={i} className="border-b border-slate-100 bg-white">
              <td className="px-2 py-1">{l.description}</td>
              <td className="px-2 py-1 text-right">{l.quantity}</td>
              <td className="px-2 py-1 text-right tabular-nums">{money(l.unit_price_minor)}</td>
              <td className="px-2 py-1 text-right">{l.tax_rate}%</td>
              <td className="px-2 py-1 text-right tabular-nums">{money(l.total_minor)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <dl className="ml-auto grid grid-cols-2 gap-x-6 gap-y-1 text-sm tabular-nums">
        <dt>Subtotal</dt>
        <dd className="text-right">{money(inv.subtotal_minor)}</dd>
        <dt>Tax</dt>
        <dd className="text-right">{money(inv.tax_minor)}</dd>
        <dt className="font-semibold">Total</dt>
        <dd className="text-right font-semibold">{money(inv.total_minor)}</dd>
        <dt>Paid</dt>
        <dd className="text-right">{money(inv.paid_minor)}</dd>
        <dt>Credited</dt>
        <dd className="text-right">{money(inv.credited_minor)}</dd>
        <dt className="font-semibold">Balance</dt>
        <dd data-testid="invoice-balance" className="text-right font-semibold">
          {money(inv.balance_minor)}
        </dd>
      </dl>
      <div className="flex flex-wrap gap-2">
        {inv.status === "draft" && (
          <>
            <Button type="button" onClick={() => setEditing(true)} className="bg-slate-600 hover:bg-slate-700">
              Edit draft
            </Button>
            <Button type="button" disabled={send.isPending} onClick={() => send.mutate()}>
              Send
            </Button>
          </>
        )}
        {(inv.status === "draft" || inv.status === "sent") && (
          <button type="button" disabled={voidIt.isPending} onClick={() => voidIt.mutate()} className="rounded px-3 py-2 text-red-700">
            Void
          </button>
        )}
      </div>
      {[send, voidIt].map((m, i) =>
        m.isError ? (
          <p key={i} role="alert" className="text-red-700">
            {m.error.message}
          </p>
        ) : null,
      )}
      {open && <PaymentForm invoice={inv} onDone={refresh} />}
      {open && <CreditNoteForm invoice={inv} onDone={refresh} />}
      <section aria-labelledby="payments-heading">
        <h2 id="payments-heading" className="mb-1 font-semibold">
          Payments
        </h2>
        {payments.data?.length === 0 && <p className="text-sm text-slate-500">None yet.</p>}
        <ul className="text-sm">
          {payments.data?.map((p) => (
            <li key={p.id}>
              {p.received_on} · {money(p.amount_minor)} · {p.method.replace("_", " ")}
              {p.reference && ` · ${p.reference}`}
            </li>
          ))}
        </ul>
      </section>
    </div>
  );
}

function PaymentForm({ invoice, onDone }: { invoice: Invoice; onDone: () => void }) {
  const decimals = fractionDigits(invoice.currency);
  const [amount, setAmount] = useState((invoice.balance_minor / 10 ** decimals).toFixed(decimals));
  const [method, setMethod] = useState<PaymentMethod>("bank_transfer");
  const [reference, setReference] = useState("");
  const [problem, setProblem] = useState<string | undefined>();
  const key = useMemo(() => crypto.randomUUID(), []);
  const pay = useMutation({
    mutationFn: async (amountMinor: number) =>
      unwrap(
        await api.POST("/api/v1/invoices/{id}/payments", {
          params: { path: { id: invoice.id }, header: { "Idempotency-Key": key } },
          body: { amount_minor: amountMinor, method, reference: reference || null },
        }),
      ),
    onSuccess: onDone,
    onError: (error) => setProblem(error instanceof ApiError ? (error.fields["amount_minor"] ?? error.message) : error.message),
  });
  function submit(event: FormEvent) {
    event.preventDefault();
    const minor = parseMoney(amount, invoice.currency);
    if (minor === null || minor === 0) {
      setProblem("an amount such as 150.00");
      return;
    }
    setProblem(undefined);
    pay.mutate(minor);
  }
  return (
    <form onSubmit={submit} aria-label="Record a payment" className="flex flex-wrap items-end gap-2 rounded border border-slate-200 bg-white p-3">
      <Field label="Payment amount" inputMode="decimal" value={amount} onChange={(e) => setAmount(e.target.value)} error={problem} />
      <label className="flex flex-col gap-1 text-sm font-medium text-slate-700">
        Method
        <select value={method} onChange={(e) => setMethod(e.target.value as PaymentMethod)} className="rounded border border-slate-300 px-2 py-2 font-normal">
          {METHODS.map((m) => (
            <option key={m} value={m}>
              {m.replace("_", " ")}
            </option>
          ))}
        </select>
      </label>
      <Field label="Reference" value={reference} onChange={(e) => setReference(e.target.value)} />
      <Button type="submit" disabled={pay.isPending}>
        Record payment
      </Button>
    </form>
  );
}

function CreditNoteForm({ invoice, onDone }: { invoice: Invoice; onDone: () => void }) {
  const [amount, setAmount] = useState("");
  const [reason, setReason] = useState("");
  const [problem, setProblem] = useState<string | undefined>();
  const key = useMemo(() => crypto.randomUUID(), []);
  const credit = useMutation({
    mutationFn: async (amountMinor: number) =>
      unwrap(
        await api.POST("/api/v1/invoices/{id}/credit-notes", {
          params: { path: { id: invoice.id }, header: { "Idempotency-Key": key } },
          body: { amount_minor: amountMinor, reason },
        }),
      ),
    onSuccess: onDone,
    onError: (error) => setProblem(error.message),
  });
  function submit(event: FormEvent) {
    event.preventDefault();
    const minor = parseMoney(amount, invoice.currency);
    if (minor === null || minor === 0 || !reason.trim()) {
      setProblem("an amount and a reason");
      return;
    }
    credit.mutate(minor);
  }
  return (
    <form onSubmit={submit} aria-label="Issue a credit note" className="flex flex-wrap items-end gap-2 rounded border border-slate-200 bg-white p-3">
      <Field label="Credit amount" inputMode="decimal" value={amount} onChange={(e) => setAmount(e.target.value)} error={problem} />
      <Field label="Reason" value={reason} onChange={(e) => setReason(e.target.value)} />
      <Button type="submit" disabled={credit.isPending} className="bg-slate-600 hover:bg-slate-700">
        Issue credit note
      </Button>
    </form>
  );
}
