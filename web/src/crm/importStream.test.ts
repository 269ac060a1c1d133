import { describe, expect, it } from "vitest";
import { readImport, takeLines } from "./importStream";

describe("an import's streamed answer", () => {
  it("keeps a line cut between chunks until it is whole", () => {
    const first = takeLines('{"progress":{"done":1,"total":2}}\n{"progress":{"do');
    expect(first.lines).toEqual([{ progress: { done: 1, total: 2 } }]);
    const second = takeLines(`${first.rest}ne":2,"total":2}}\n`);
    expect(second.lines).toEqual([{ progress: { done: 2, total: 2 } }]);
    expect(second.rest).toBe("");
  });

  it("reads every line of a stream in order, the last one without a newline too", async () => {
    const chunks = ['{"progress":{"done":1,"total":2}}\n{"prog', 'ress":{"done":2,"total":2}}\n', '{"report":{"total":2,"imported":2,"rejected":[],"rolled_back":false}}'];
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
        controller.close();
      },
    });
    const seen: unknown[] = [];
    await readImport(body, (line) => seen.push(line));
    expect(seen).toEqual([
      { progress: { done: 1, total: 2 } },
      { progress: { done: 2, total: 2 } },
      { report: { total: 2, imported: 2, rejected: [], rolled_back: false } },
    ]);
  });
});
