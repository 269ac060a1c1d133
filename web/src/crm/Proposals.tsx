// A prospect's proposals: each with its versions (a sent proposal revised gets a new draft
// version; the sent one stays as it was sent), its lines and totals, and its decisions.
import { useState } from "react";
import { Link, useParams } from "react-router";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError, fieldsOf, unwrap, type Schemas } from "../api/client";
import { Button, Field } from "../components/Field";
import { Problem } from "../components/Problem";
import { formatMoney, fractionDigits, parseMoney } from "../finance/money";

type Proposal = Schemas["Proposal"];
type Transition = Schemas["Transition"];
interface DraftLine {
  description: string;
  quantity: string;
  price: string;
  tax: string;
}
const EMPTY_LINE: DraftLine = { description: "", quantity: "1", price: "", tax: "" };

/** What the form holds as the API's lines, or the first field that is not right. */
export function linesFrom(drafts: DraftLine[], currency: string): { lines: Schemas["LineItemInput"][] } | { field: string; problem: string } {
  const lines: Schemas["LineItemInput"][] = [];
  for (const [i, d] of drafts.entries()) {
    if (!d.description.trim()) return { field: `line_items[${i}].description`, problem: "describe the line" };
    const price = parseMoney(d.price, currency);
    if (price === null) return { field: `line_items[${i}].unit_price_minor`, problem: `an amount with at most ${fractionDigits(currency)} decimals` };
    lines.push({ description: d.description.trim(), quantity: d.quantity.trim() || "1", unit_price_minor: price, tax_rate: d.tax.trim() || null });
  }
  if (lines.length === 0) return { field: "line_items", problem: "add a line" };
  return { lines };
}

export function ProspectProposals() {
  const { id = "" } = useParams();
  const prospect = useQuery({
    queryKey: ["prospect", id],
    queryFn: async () => unwrap(await api.GET("/api/v1/prospects/{id}", { params: { path: { id } } })).data,
  });
  const proposals = useQuery({
    queryKey: ["proposals", id],
    queryFn: async () => unwrap(await api.GET("/api/v1/prospects/{id}/proposals", { params: { path: { id }, query: { limit: 100 } } })).data,
  });
  return (
    <div className="mx-auto flex max-w-4xl flex-col gap-4 p-4">
      <Link to="/crm/pipeline" className="text-blue-700 underline">
        ‹ Pipeline
      </Link>
      <h1 className="text-lg font-semibold">{prospect.data?.name ?? "…"}</h1>
      {prospect.data && (
        <p className="text-sm text-slate-600">
          Stage {prospect.data.stage} · {formatMoney(prospect.data.value_minor, prospect.data.currency)}
        </p>
      )}
      <Problem error={prospect.error ?? proposals.error} />
      <h2 className="font-semibold">Proposals</h2>
      {proposals.data?.length === 0 && <p className="text-slate-600">No proposal yet.</p>}
      <ul aria-label="Proposals" className="flex flex-col gap-3">
        {proposals.data?.map((p) => (
          <ProposalCard key={p.id} proposal={p} />
        ))}
      </ul>
      {prospect.data && <ProposalForm prospectId={id} currency={prospect.data.currency} />}
    </div>
  );
}

function ProposalCard({ proposal }: { proposal: Proposal }) {
  const queryClient = useQueryClient();
  const [version, setVersion] = useState(proposal.current_version);
  const [revising, setRevising] = useState(false);
  const shown = useQuery({
    queryKey: ["proposal", proposal.id, version],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/proposals/{id}", { params: { path: { id: proposal.id }, query: { version } } })).data,
    initialData: version === proposal.version ? proposal : undefined,
  });
  const refresh = () => void queryClient.invalidateQueries({ queryKey: ["proposals", proposal.prospect_id] });
  const transition = useMutation({
    mutationFn: async (action: Transition) =>
      unwrap(await api.POST("/api/v1/proposals/{id}/transition", { params: { path: { id: proposal.id } }, body: { action } })).data,
    onSuccess: refresh,
  });
  const p = shown.data ?? proposal;
  const actions: Transition[] = proposal.status === "draft" ? ["send"] : proposal.status === "sent" ? ["accept", "decline"] : [];
  return (
    <li aria-label={proposal.title} className="rounded border border-slate-200 bg-white p-3">
      <div className="flex flex-wrap items-center gap-2">
        <span className="font-medium">{proposal.title}</span>
        <span data-testid="proposal-status" className="rounded bg-slate-100 px-2 text-sm">
          {proposal.status}
        </span>
        <label className="ml-auto flex items-center gap-1 text-sm">
          Version
          <select aria-label="Version" value={version} onChange={(e) => setVersion(Number(e.target.value))} className="rounded border border-slate-300 px-1">
            {/* A revision just saved may be newer than the list read before it. */}
            {Array.from({ length: Math.max(proposal.current_version, version) }, (_, i) => Math.max(proposal.current_version, version) - i).map((v) => (
              <option key={v} value={v}>
                {v}
                {v === Math.max(proposal.current_version, version) ? " (current)" : ""}
              </option>
            ))}
          </select>
        </label>
      </div>
      <table aria-label={`Lines of version ${p.version}`} className="mt-2 w-full text-left text-sm">
        <thead className="text-slate-600">
          <tr>
            <th className="py-1">Description</th>
            <th className="py-1">Qty</th>
            <th className="py-1">Price</th>
            <th className="py-1">Tax</th>
            <th className="py-1 text-right">Total</th>
          </tr>
        </thead>
        <tbody>
          {p.line_items.map((line, i) => (
            <tr key={i} className="border-t border-slate-100">
              <td className="py-1">{line.description}</td>
              <td className="py-1">{line.quantity}</td>
              <td className="py-1">{formatMoney(line.unit_price_minor, p.currency)}</td>
              <td className="py-1">{line.tax_rate}%</td>
              <td className="py-1 text-right">{formatMoney(line.total_minor, p.currency)}</td>
            </tr>
          ))}
        </tbody>
        <tfoot>
          <tr>
            <td colSpan={4} className="py-1 text-right font-medium">
              Total
            </td>
            <td className="py-1 text-right font-medium" data-testid="proposal-total">
              {formatMoney(p.total_minor, p.currency)}
            </td>
          </tr>
        </tfoot>
      </table>
      <Problem error={transition.error ?? shown.error} />
      <div className="mt-2 flex gap-2">
        {actions.map((action) => (
          <Button key={action} type="button" disabled={transition.isPending} onClick={() => transition.mutate(action)} className="capitalize">
            {action}
          </Button>
        ))}
        {(proposal.status === "draft" || proposal.status === "sent") && !revising && (
          <button type="button" className="underline" onClick={() => setRevising(true)}>
            Revise
          </button>
        )}
      </div>
      {revising && (
        <ProposalForm
          prospectId={proposal.prospect_id}
          currency={proposal.currency}
          revising={p}
          onDone={(revised) => {
            setRevising(false);
            setVersion(revised.current_version);
            refresh();
          }}
        />
      )}
    </li>
  );
}

/** A new proposal, or a revision of `revising` (its lines start as the shown version's). */
function ProposalForm({
  prospectId,
  currency,
  revising,
  onDone,
}: {
  prospectId: string;
  currency: string;
  revising?: Proposal;
  onDone?: (proposal: Proposal) => void;
}) {
  const queryClient = useQueryClient();
  const digits = fractionDigits(currency);
  const [title, setTitle] = useState(revising?.title ?? "");
  const [lines, setLines] = useState<DraftLine[]>(
    revising?.line_items.map((l) => ({
      description: l.description,
      quantity: l.quantity,
      price: (l.unit_price_minor / 10 ** digits).toFixed(digits),
      tax: l.tax_rate === "0" ? "" : l.tax_rate,
    })) ?? [{ ...EMPTY_LINE }],
  );
  const [fields, setFields] = useState<Record<string, string>>({});
  const save = useMutation({
    mutationFn: async () => {
      const read = linesFrom(lines, currency);
      if ("field" in read) throw new ApiError(400, "validation_error", "Check the lines.", { fields: { [read.field]: read.problem } });
      if (revising) {
        return unwrap(await api.PATCH("/api/v1/proposals/{id}", { params: { path: { id: revising.id } }, body: { title, line_items: read.lines } })).data;
      }
      return unwrap(await api.POST("/api/v1/prospects/{id}/proposals", { params: { path: { id: prospectId } }, body: { title, line_items: read.lines } }))
        .data;
    },
    onSuccess: (saved) => {
      setFields({});
      if (!revising) {
        setTitle("");
        setLines([{ ...EMPTY_LINE }]);
      }
      void queryClient.invalidateQueries({ queryKey: ["proposals", prospectId] });
      onDone?.(saved);
    },
    onError: (error) => setFields(fieldsOf(error)),
  });
  const setLine = (i: number, key: keyof DraftLine, value: string) => setLines(lines.map((l, j) => (j === i ? { ...l, [key]: value } : l)));
  const label = revising ? "Revise the proposal" : "New proposal";
  return (
    <form
      aria-label={label}
      className="mt-3 flex flex-col gap-2 rounded border border-slate-200 bg-slate-50 p-3"
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        save.mutate();
      }}
    >
      <h3 className="font-semibold">{label}</h3>
      <Field label="Title" value={title} onChange={(e) => setTitle(e.target.value)} error={fields["title"]} />
      {lines.map((line, i) => (
        <fieldset key={i} className="grid grid-cols-2 gap-2 sm:grid-cols-4">
          <legend className="sr-only">Line {i + 1}</legend>
          <Field label={`Line ${i + 1} description`} value={line.description} onChange={(e) => setLine(i, "description", e.target.value)} error={fields[`line_items[${i}].description`]} />
          <Field label={`Line ${i + 1} quantity`} inputMode="decimal" value={line.quantity} onChange={(e) => setLine(i, "quantity", e.target.value)} error={fields[`line_items[${i}].quantity`]} />
          <Field label={`Line ${i + 1} price (${currency})`} inputMode="decimal" value={line.price} onChange={(e) => setLine(i, "price", e.target.value)} error={fields[`line_items[${i}].unit_price_minor`]} />
          <Field label={`Line ${i + 1} tax %`} inputMode="decimal" value={line.tax} onChange={(e) => setLine(i, "tax", e.target.value)} error={fields[`line_items[${i}].tax_rate`]} />
        </fieldset>
      ))}
      {fields["line_items"] && (
        <p role="alert" className="text-sm text-red-700">
          {fields["line_items"]}
        </p>
      )}
      <div className="flex gap-2">
        <button type="button" className="underline" onClick={() => setLines([...lines, { ...EMPTY_LINE }])}>
          Add a line
        </button>
        <Button type="submit" disabled={save.isPending}>
          {revising ? "Save as a new version" : "Create proposal"}
        </Button>
      </div>
      {save.isError && Object.keys(fields).length === 0 && <Problem error={save.error} />}
    </form>
  );
}
