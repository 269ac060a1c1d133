// What an SLA badge says at a moment: from the moments the hub stored for the ticket's
// running clocks, so every screen counts down to the same second the timers fire at.
import { useEffect, useState } from "react";

export type SlaTone = "none" | "ok" | "warning" | "breached";

export interface SlaMoments {
  sla_breached_at?: string | null;
  sla_next_warn_at?: string | null;
  sla_next_due_at?: string | null;
}

export interface SlaReading {
  tone: SlaTone;
  label: string;
}

/** h:mm:ss or m:ss, for what is left. */
export function remaining(ms: number): string {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

export function readSla(moments: SlaMoments, now: number): SlaReading {
  if (moments.sla_breached_at) return { tone: "breached", label: "Breached" };
  const due = moments.sla_next_due_at ? Date.parse(moments.sla_next_due_at) : null;
  if (due === null) return { tone: "none", label: "" };
  // Past its moment the clock has breached, whether or not the timers' word has come yet.
  if (now >= due) return { tone: "breached", label: "Breached" };
  const warn = moments.sla_next_warn_at ? Date.parse(moments.sla_next_warn_at) : null;
  const left = remaining(due - now);
  if (warn !== null && now >= warn) return { tone: "warning", label: `Due in ${left}` };
  return { tone: "ok", label: `Due in ${left}` };
}

/** The current time, ticking every `everyMs` while the component is shown. */
export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return now;
}
