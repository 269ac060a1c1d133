// Where a plain-text reply's own words end and the history it quotes begins: at the first
// "On <date>, <someone> wrote:" line or the first run of `>` lines, whichever comes first.
const ATTRIBUTION = /^(On .{3,200} wrote:|-{2,} ?Original Message ?-{2,}|Le .{3,200} a écrit ?:|Am .{3,200} schrieb .{1,200}:)\s*$/i;

export function splitQuoted(text: string): { fresh: string; quoted: string | null } {
  const lines = text.split(/\r?\n/);
  const start = lines.findIndex((line) => ATTRIBUTION.test(line.trim()) || line.startsWith(">"));
  // A message that is all quote (or quotes from its first line) is shown whole.
  if (start <= 0) return { fresh: text, quoted: null };
  return { fresh: lines.slice(0, start).join("\n").trimEnd(), quoted: lines.slice(start).join("\n") };
}
