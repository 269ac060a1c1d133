// Reading an import's answer: newline-delimited JSON, progress lines then one report (or
// an error in the error format), as the chunks of the response arrive.
import type { Schemas } from "../api/client";

export type ImportLine = Schemas["ImportLine"];

/** Splits what has arrived into whole lines; the unfinished tail waits for the next chunk. */
export function takeLines(buffered: string): { lines: ImportLine[]; rest: string } {
  const parts = buffered.split("\n");
  const rest = parts.pop() ?? "";
  const lines = parts.filter((p) => p.trim() !== "").map((p) => JSON.parse(p) as ImportLine);
  return { lines, rest };
}

/** Feeds each line of `body` to `onLine`, in order, until the stream ends. */
export async function readImport(body: ReadableStream<Uint8Array>, onLine: (line: ImportLine) => void): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { done, value } = await reader.read();
    buffered += decoder.decode(value, { stream: !done });
    const { lines, rest } = takeLines(done ? `${buffered}\n` : buffered);
    buffered = rest;
    lines.forEach(onLine);
    if (done) return;
  }
}
