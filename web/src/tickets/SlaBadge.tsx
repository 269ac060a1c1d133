import { readSla, useNow, type SlaMoments } from "./sla";

const TONES = {
  ok: "bg-slate-100 text-slate-800",
  warning: "bg-amber-100 text-amber-900",
  breached: "bg-red-100 text-red-800",
} as const;

export function SlaBadge({ moments }: { moments: SlaMoments }) {
  const now = useNow();
  const reading = readSla(moments, now);
  if (reading.tone === "none") return null;
  return (
    <span data-testid="sla-badge" data-tone={reading.tone} className={`rounded px-2 py-0.5 text-xs font-medium tabular-nums ${TONES[reading.tone]}`}>
      {reading.tone === "warning" && <span className="sr-only">SLA warning: </span>}
      {reading.label}
    </span>
  );
}
