// CSV import of contacts or leads: the file goes up as it is, the hub imports it in one
// transaction and streams its progress, and the report names every refused line.
import { useState } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { Button } from "../components/Field";
import { Problem } from "../components/Problem";
import { readImport, type ImportLine } from "./importStream";

type Kind = "contacts" | "leads";
const COLUMNS: Record<Kind, string> = {
  contacts: "first_name, last_name, title, emails, phones, client_id (several emails or phones separated by ;)",
  leads: "first_name, last_name, company, email, phone, source, status, estimated_value_minor, currency",
};

export function Import() {
  const queryClient = useQueryClient();
  const [kind, setKind] = useState<Kind>("contacts");
  const [file, setFile] = useState<File | null>(null);
  const [skipInvalid, setSkipInvalid] = useState(false);
  const [progress, setProgress] = useState<{ done: number; total: number } | null>(null);
  const [report, setReport] = useState<ImportLine["report"] | null>(null);
  const run = useMutation({
    mutationFn: async () => {
      if (!file) throw new Error("Choose a CSV file first.");
      setProgress(null);
      setReport(null);
      const path = kind === "contacts" ? "/api/v1/contacts/import" : "/api/v1/leads/import";
      const answer = await api.POST(path, {
        params: { query: { skip_invalid: skipInvalid } },
        // The file goes up as it is: the hub reads the CSV.
        body: file as unknown as string,
        bodySerializer: (body: unknown) => body as BodyInit,
        headers: { "Content-Type": "text/csv" },
        parseAs: "stream",
      });
      if (!answer.response.ok || !answer.data) {
        // An error before the import began comes whole, in the error format.
        const text = await new Response(answer.data ?? null).text();
        unwrap({ response: answer.response, error: text ? JSON.parse(text) : undefined });
      }
      let failure: Error | null = null;
      await readImport(answer.data as ReadableStream<Uint8Array>, (line) => {
        if (line.progress) setProgress(line.progress);
        if (line.report) setReport(line.report);
        if (line.error) failure = new Error(line.error.message);
      });
      if (failure) throw failure;
    },
    onSettled: () => {
      void queryClient.invalidateQueries({ queryKey: [kind] });
      void queryClient.invalidateQueries({ queryKey: ["pipeline"] });
    },
  });
  const percent = progress && progress.total > 0 ? Math.round((progress.done / progress.total) * 100) : 0;

  return (
    <div className="mx-auto flex max-w-3xl flex-col gap-4 p-4">
      <h1 className="text-lg font-semibold">Import from CSV</h1>
      <form
        aria-label="Import from CSV"
        className="flex flex-col gap-3"
        onSubmit={(e) => {
          e.preventDefault();
          run.mutate();
        }}
      >
        <label className="flex flex-col gap-1 text-sm font-medium text-slate-700">
          What the file holds
          <select value={kind} onChange={(e) => setKind(e.target.value as Kind)} className="rounded border border-slate-300 px-2 py-2 font-normal">
            <option value="contacts">Contacts</option>
            <option value="leads">Leads</option>
          </select>
        </label>
        <p className="text-sm text-slate-600">A header row, then one row each; columns: {COLUMNS[kind]}.</p>
        <label className="flex flex-col gap-1 text-sm font-medium text-slate-700">
          CSV file
          <input type="file" accept=".csv,text/csv" onChange={(e) => setFile(e.target.files?.[0] ?? null)} className="font-normal" />
        </label>
        <label className="flex items-center gap-2 text-sm">
          <input type="checkbox" checked={skipInvalid} onChange={(e) => setSkipInvalid(e.target.checked)} />
          Import the good rows and skip the bad ones (otherwise a bad row imports nothing)
        </label>
        <Button type="submit" disabled={run.isPending || !file} className="self-start">
          Import
        </Button>
      </form>
      {(run.isPending || progress) && (
        <div className="flex flex-col gap-1">
          <div
            role="progressbar"
            aria-label="Import progress"
            aria-valuemin={0}
            aria-valuemax={100}
            aria-valuenow={percent}
            className="h-3 overflow-hidden rounded bg-slate-200"
          >
            <div className="h-full bg-blue-700 transition-all" style={{ width: `${percent}%` }} />
          </div>
          <p className="text-sm text-slate-600" data-testid="import-progress">
            {progress ? `${progress.done} of ${progress.total} rows` : "Uploading…"}
          </p>
        </div>
      )}
      <Problem error={run.error} />
      {report && (
        <section role="status" aria-label="Import report" className={`rounded p-3 ${report.rolled_back ? "bg-red-50" : "bg-green-50"}`}>
          <p data-testid="import-summary">
            {report.rolled_back
              ? `Nothing was imported: ${report.rejected.length} of ${report.total} rows have a problem. Fix them, or skip bad rows.`
              : `Imported ${report.imported} of ${report.total} rows${report.rejected.length ? `; ${report.rejected.length} skipped` : ""}.`}
          </p>
          {report.rejected.length > 0 && (
            <ul aria-label="Refused rows" className="mt-2 list-disc pl-5 text-sm">
              {report.rejected.map((r) => (
                <li key={r.line}>
                  Line {r.line}: {r.problem}
                </li>
              ))}
            </ul>
          )}
        </section>
      )}
    </div>
  );
}
