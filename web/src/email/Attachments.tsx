// An email's attachments, fetched with the session's token (a plain link would carry none)
// and handed to the browser as a download under the sender's file name.
import { useMutation, useQuery } from "@tanstack/react-query";
import { api, saveDownload, unwrap, type Schemas } from "../api/client";
import { Problem } from "../components/Problem";

type Part = Schemas["EmailPart"];

/** Bytes as people read them: 812 B, 14.2 KB, 3.1 MB. */
export function sizeLabel(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1_000_000) return `${(bytes / 1000).toFixed(1)} KB`;
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

/** The parts a reader would call attachments: declared so, or named files not shown inline. */
export function attachmentsOf(parts: Part[]): Part[] {
  return parts.filter((p) => p.disposition === "attachment" || (p.filename && !p.content_id));
}

export function Attachments({ emailId }: { emailId: string }) {
  const email = useQuery({
    queryKey: ["email", emailId],
    queryFn: async () => unwrap(await api.GET("/api/v1/emails/{id}", { params: { path: { id: emailId } } })).data,
    staleTime: Infinity,
  });
  const download = useMutation({
    mutationFn: async (part: Part) => {
      const answer = await api.GET("/api/v1/emails/{id}/parts/{position}", {
        params: { path: { id: emailId, position: part.position } },
        parseAs: "blob",
      });
      saveDownload(answer, part.filename ?? `attachment-${part.position}`);
    },
  });
  const parts = email.data ? attachmentsOf(email.data.parts) : [];
  if (parts.length === 0) return null;
  return (
    <div>
      <ul aria-label="Attachments" className="flex flex-wrap gap-2">
        {parts.map((part) => (
          <li key={part.position}>
            {part.oversize ? (
              <span className="rounded border border-slate-200 px-2 py-1 text-sm text-slate-500" title="Over the size limit: not kept">
                {part.filename ?? "attachment"} · {sizeLabel(part.size_bytes)} · not kept
              </span>
            ) : (
              <button
                type="button"
                onClick={() => download.mutate(part)}
                className="rounded border border-slate-300 bg-white px-2 py-1 text-sm hover:bg-slate-50"
              >
                📎 {part.filename ?? "attachment"} · {sizeLabel(part.size_bytes)}
              </button>
            )}
          </li>
        ))}
      </ul>
      <Problem error={download.error} className="text-sm" />
    </div>
  );
}
