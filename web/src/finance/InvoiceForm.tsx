import { useMemo, useState, type FormEvent } from "react";
import { useNavigate } from "react-router";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { ApiError, api, unwrap, type Schemas } from "../api/client";
import { Button, Field } from "../components/Field";
import { useClients } from "./Invoices";
import { formatMoney, fractionDigits, parseMoney } from "./money";
import { Problem } from "../components/Problem";

type Invoice = Schemas["Invoice"];
type LineInput = Schemas["InvoiceLineInput"];

interface Line {
  description: string;
  quantity: string;
  unitPrice: string;
  taxRate: string;
}

const emptyLine: Line = { description: "", quantity: "1", unitPrice: "", taxRate: "0" };

/** A new invoice, or a draft's changes: client, currency, dates and lines. */
export function InvoiceForm({ draft }: { draft?: Invoice }) {
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const clients = useClients();
  const [clientId, setClientId] = useState(draft?.client_id ?? "");
  const [currency, setCurrency] = useState(draft?.currency ?? "USD");
  const [dueDate, setDueDate] = useState(draft?.due_date ?? "");
  const [notes, setNotes] = useState(draft?.notes ?? "");
  const [lines, setLines] = useState<Line[]>(
    draft?.line_items.map((l) => ({
      description: l.description,
      quantity: l.quantity,
      unitPrice: (l.unit_price_minor / 10 ** fractionDigits(draft.currency)).toFixed(fractionDigits(draft.currency)),
      taxRate: l.tax_rate,
    })) ?? [{ ...emptyLine }],
  );
  const [problems, setProblems] = useState<Record<string, string>>({});
  // One key per form: a second click or a retry after a lost answer creates nothing twice.
  const idempotencyKey = useMemo(() => crypto.randomUUID(), []);

  const save = useMutation({
    mutationFn: async (lineItems: LineInput[]) => {
      const body = {
        client_id: clientId,
        currency: currency.trim().toUpperCase(),
        line_items: lineItems,
        notes: notes || null,
        ...(dueDate ? { due_date: dueDate } : {}),
      };
      if (draft) {
        return unwrap(await api.PATCH("/api/v1/invoices/{id}", { params: { path: { id: draft.id } }, body })).data;
      }
      return unwrap(
        await api.POST("/api/v1/invoices", { params: { header: { "Idempotency-Key": idempotencyKey } }, body }),
      ).data;
    },
    onSuccess: (invoice) => {
      void queryClient.invalidateQueries({ queryKey: ["invoices"] });
      void queryClient.invalidateQueries({ queryKey: ["invoice", invoice.id] });
      navigate(`/finance/invoices/${invoice.id}`);
    },
    onError: (error) => {
      if (error instanceof ApiError) setProblems(error.fields);
    },
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    const found: Record<string, string> = {};
    if (!clientId) found["client_id"] = "choose a client";
    const items: LineInput[] = [];
    lines.forEach((line, i) => {
      const price = parseMoney(line.unitPrice, currency.trim().toUpperCase() || "USD");
      if (!line.description.trim()) found[`line_items[${i}].description`] = "describe the line";
      if (price === null) found[`line_items[${i}].unit_price_minor`] = "an amount such as 150.00";
      items.push({ description: line.description.trim(), quantity: line.quantity, unit_price_minor: price ?? 0, tax_rate: line.taxRate || "0" });
    });
    setProblems(found);
    if (Object.keys(found).length === 0) save.mutate(items);
  }

  const update = (i: number, key: keyof Line) => (e: React.ChangeEvent<HTMLInputElement>) =>
    setLines((all) => all.map((l, j) => (j === i ? { ...l, [key]: e.target.value } : l)));
  const previewTotal = lines.reduce((sum, l) => {
    const price = parseMoney(l.unitPrice, currency || "USD") ?? 0;
    const quantity = Number(l.quantity) || 0;
    return sum + Math.round(price * quantity * (1 + (Number(l.taxRate) || 0) / 100));
  }, 0);

  return (
    <form onSubmit={submit} className="flex max-w-3xl flex-col gap-4 p-4" noValidate>
      <h1 className="text-lg font-semibold">{draft ? "Edit draft" : "New invoice"}</h1>
      <div className="flex flex-col gap-1">
        <label htmlFor="invoice-client" className="text-sm font-medium text-slate-700">
          Client
        </label>
        <select
          id="invoice-client"
          value={clientId}
          onChange={(e) => setClientId(e.target.value)}
          aria-invalid={problems["client_id"] ? true : undefined}
          className="rounded border border-slate-300 px-3 py-2"
        >
          <option value="">Choose…</option>
          {clients.data?.map((c) => (
            <option key={c.id} value={c.id}>
              {c.name}
            </option>
          ))}
        </select>
        {problems["client_id"] && (
          <p role="alert" className="text-sm text-red-700">
            {problems["client_id"]}
          </p>
        )}
      </div>
      <div className="grid gap-4 sm:grid-cols-2">
        <Field label="Currency" value={currency} maxLength={3} onChange={(e) => setCurrency(e.target.value)} error={problems["currency"]} />
        <Field label="Due date" type="date" value={dueDate} onChange={(e) => setDueDate(e.target.value)} error={problems["due_date"]} />
      </div>
      <fieldset className="flex flex-col gap-3">
        <legend className="mb-2 font-medium">Lines</legend>
        {lines.map((line, i) => (
          <div key={i} className="grid gap-2 rounded border border-slate-200 bg-white p-2 sm:grid-cols-[2fr_1fr_1fr_1fr_auto]">
            <Field label={`Line ${i + 1} description`} value={line.description} onChange={update(i, "description")} error={problems[`line_items[${i}].description`]} />
            <Field label="Quantity" inputMode="decimal" value={line.quantity} onChange={update(i, "quantity")} error={problems[`line_items[${i}].quantity`]} />
            <Field label="Unit price" inputMode="decimal" value={line.unitPrice} onChange={update(i, "unitPrice")} error={problems[`line_items[${i}].unit_price_minor`]} />
            <Field label="Tax %" inputMode="decimal" value={line.taxRate} onChange={update(i, "taxRate")} error={problems[`line_items[${i}].tax_rate`]} />
            <button
              type="button"
              disabled={lines.length === 1}
              onClick={() => setLines((all) => all.filter((_, j) => j !== i))}
              className="self-end rounded px-2 py-2 text-red-700 disabled:opacity-40"
            >
              Remove
            </button>
          </div>
        ))}
        <button type="button" onClick={() => setLines((all) => [...all, { ...emptyLine }])} className="self-start text-blue-700 underline">
          Add a line
        </button>
      </fieldset>
      <label className="flex flex-col gap-1 text-sm font-medium text-slate-700">
        Notes
        <textarea value={notes} onChange={(e) => setNotes(e.target.value)} className="rounded border border-slate-300 px-3 py-2 font-normal" rows={2} />
      </label>
      <p className="text-sm text-slate-600">
        About {formatMoney(previewTotal, currency.length === 3 ? currency.toUpperCase() : "USD")} (the hub computes the exact total)
      </p>
      <Problem error={save.error} />
      <Button type="submit" disabled={save.isPending} className="self-start">
        {draft ? "Save draft" : "Create draft"}
      </Button>
    </form>
  );
}
