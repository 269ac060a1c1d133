import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Message } from "../api/client";
import { LiveSocket } from "./live";
import { mergeBySeq, withDelivery } from "./useConversation";

/** A WebSocket stand-in the test drives: what the client sent, and frames from the "hub". */
class FakeSocket {
  static opened: FakeSocket[] = [];
  readyState = 0;
  sent: Record<string, unknown>[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((event: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.opened.push(this);
  }
  send(text: string) {
    this.sent.push(JSON.parse(text) as Record<string, unknown>);
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  drop() {
    this.readyState = 3;
    this.onclose?.();
  }
  frame(value: object) {
    this.onmessage?.({ data: JSON.stringify(value) });
  }
}

const conversation = "c0a80101-0000-4000-8000-000000000001";
const message = (seq: number): Message => ({
  id: `m-${seq}`,
  conversation_id: conversation,
  seq,
  body: `message ${seq}`,
  created_at: "2026-12-03T10:00:00Z",
});
const messageFrame = (seq: number) => ({ type: "message", conversation_id: conversation, seq, message: message(seq) });

async function started() {
  let tickets = 0;
  const live = new LiveSocket({
    ticket: async () => `ticket-${++tickets}`,
    url: (ticket) => `ws://hub/api/v1/ws?ticket=${ticket}`,
    socket: (url) => new FakeSocket(url) as unknown as WebSocket,
    backoff: { first: 10, max: 10 },
  });
  const received: number[] = [];
  live.listen({ message: (_, m) => received.push(m.seq) });
  live.start();
  await vi.waitFor(() => expect(FakeSocket.opened).toHaveLength(1));
  const first = FakeSocket.opened[0]!;
  first.open();
  return { live, received, first };
}

describe("LiveSocket", () => {
  beforeEach(() => {
    FakeSocket.opened = [];
  });
  afterEach(() => vi.useRealTimers());

  it("hands each seq on once, in order, across a reconnect that replays from after_seq", async () => {
    const { live, received, first } = await started();
    live.subscribe(conversation, 2);
    expect(first.sent).toContainEqual({ type: "subscribe", conversation_id: conversation, after_seq: 2 });

    first.frame(messageFrame(3));
    first.frame(messageFrame(3)); // the same frame twice
    first.frame(messageFrame(2)); // older than what the page showed
    expect(received).toEqual([3]);

    first.drop();
    await vi.waitFor(() => expect(FakeSocket.opened).toHaveLength(2));
    const second = FakeSocket.opened[1]!;
    expect(second.url).toBe("ws://hub/api/v1/ws?ticket=ticket-2"); // a fresh one-use ticket
    second.open();
    expect(second.sent).toContainEqual({ type: "subscribe", conversation_id: conversation, after_seq: 3 });
    // The replay overlaps what was already live, then the missed ones follow.
    for (const seq of [3, 4, 5, 6]) second.frame(messageFrame(seq));
    expect(received).toEqual([3, 4, 5, 6]);
    live.close();
  });

  it("sends again after a reconnect what the hub had not acknowledged, with the same client id", async () => {
    const { live, first } = await started();
    live.subscribe(conversation, 0);
    const acked = live.send(conversation, "first");
    const pending = live.send(conversation, "second");
    first.frame({ type: "ack", client_msg_id: acked, conversation_id: conversation, seq: 1 });
    first.drop();
    await vi.waitFor(() => expect(FakeSocket.opened).toHaveLength(2));
    const second = FakeSocket.opened[1]!;
    second.open();
    const resent = second.sent.filter((f) => f["type"] === "send");
    expect(resent).toEqual([{ type: "send", conversation_id: conversation, client_msg_id: pending, body: "second" }]);
    live.close();
  });

  it("stops for good when the session has ended (no ticket) and after close", async () => {
    const statuses: string[] = [];
    const live = new LiveSocket({
      ticket: async () => null,
      url: () => "ws://hub",
      socket: (url) => new FakeSocket(url) as unknown as WebSocket,
    });
    live.listen({ status: (s) => statuses.push(s) });
    live.start();
    await vi.waitFor(() => expect(statuses).toContain("closed"));
    expect(FakeSocket.opened).toHaveLength(0);
  });

  it("ignores frames for conversations it does not follow and frames that are not JSON", async () => {
    const { live, received, first } = await started();
    first.frame(messageFrame(1));
    first.onmessage?.({ data: "{not json" });
    expect(received).toEqual([]);
    live.close();
  });
});

describe("mergeBySeq", () => {
  it("keeps one copy of each seq, in seq order", () => {
    const merged = mergeBySeq([message(1), message(3)], [message(2), message(3), message(4)]);
    expect(merged.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
  });
});

describe("withDelivery", () => {
  it("moves one message's delivery on and leaves the others alone", () => {
    const held = [message(1), { ...message(2), delivery: { channel: "sms", status: "pending", segments: 1 } }];
    const next = withDelivery(held, "m-2", "sms", { conversation_id: conversation, message_id: "m-2", status: "delivered", error_code: null });
    expect(next[0]).toBe(held[0]);
    expect(next[1]?.delivery).toEqual({ channel: "sms", status: "delivered", segments: 1, error_code: null });
  });
});
