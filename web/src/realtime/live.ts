// One WebSocket per signed-in tab. It keeps, per conversation, the highest seq it has
// handed on, subscribes again with `after_seq` after every reconnect (the hub replays what
// was missed from the database, then goes live), drops a frame it has already seen, and
// sends again what the hub had not acknowledged (the `client_msg_id` makes that safe).
import type { Message } from "../api/client";

export type ServerFrame =
  | { type: "message"; conversation_id: string; seq: number; message: Message }
  | { type: "subscribed"; conversation_id: string; last_seq: number }
  | { type: "ack"; client_msg_id: string; conversation_id: string; seq: number }
  | { type: "typing"; conversation_id: string; user_id: string }
  | { type: "read"; conversation_id: string; user_id: string; seq: number }
  | { type: "presence"; online: string[] }
  | { type: "event"; topic: string; payload: unknown }
  | { type: "error"; code: string; message: string }
  | { type: "pong" };

export type LiveStatus = "connecting" | "live" | "reconnecting" | "closed";

export interface LiveListener {
  message?(conversationId: string, message: Message): void;
  typing?(conversationId: string, userId: string): void;
  read?(conversationId: string, userId: string, seq: number): void;
  presence?(online: string[]): void;
  event?(topic: string, payload: unknown): void;
  status?(status: LiveStatus): void;
  acked?(clientMsgId: string, seq: number): void;
}

interface Outgoing {
  conversation_id: string;
  client_msg_id: string;
  body: string;
}

export interface LiveOptions {
  /** A one-use ticket for the socket; null when the session has ended. */
  ticket(): Promise<string | null>;
  /** The socket URL for a ticket. */
  url(ticket: string): string;
  /** For tests: a WebSocket stand-in. */
  socket?: (url: string) => WebSocket;
  /** Reconnect delays: first, and the most it grows to. */
  backoff?: { first: number; max: number };
}

export class LiveSocket {
  private ws: WebSocket | null = null;
  private readonly seen = new Map<string, number>();
  private readonly unacked = new Map<string, Outgoing>();
  private readonly listeners = new Set<LiveListener>();
  private closed = false;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  status: LiveStatus = "connecting";
  /** The firm's members online, as the hub's last presence frame listed them. */
  online: string[] = [];

  constructor(private readonly options: LiveOptions) {}

  start() {
    void this.connect();
  }

  listen(listener: LiveListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Follow a conversation from `afterSeq` (what the caller already shows). */
  subscribe(conversationId: string, afterSeq: number) {
    const known = this.seen.get(conversationId);
    if (known === undefined || afterSeq > known) this.seen.set(conversationId, afterSeq);
    this.write({ type: "subscribe", conversation_id: conversationId, after_seq: this.seen.get(conversationId) });
  }

  unsubscribe(conversationId: string) {
    this.seen.delete(conversationId);
    this.write({ type: "unsubscribe", conversation_id: conversationId });
  }

  /** Sends a message; it goes again after a reconnect until the hub acknowledges it. */
  send(conversationId: string, body: string, clientMsgId: string = crypto.randomUUID()): string {
    const outgoing = { conversation_id: conversationId, client_msg_id: clientMsgId, body };
    this.unacked.set(clientMsgId, outgoing);
    this.write({ type: "send", ...outgoing });
    return clientMsgId;
  }

  typing(conversationId: string) {
    this.write({ type: "typing", conversation_id: conversationId });
  }

  read(conversationId: string, seq: number) {
    this.write({ type: "read", conversation_id: conversationId, seq });
  }

  /** The highest seq handed on for a conversation. */
  lastSeq(conversationId: string): number | undefined {
    return this.seen.get(conversationId);
  }

  /** Ends the socket for good (sign-out, session ended). */
  close() {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.ws?.close(1000, "signed out");
    this.ws = null;
    this.setStatus("closed");
  }

  private emit(call: (l: LiveListener) => void) {
    for (const listener of this.listeners) call(listener);
  }

  private setStatus(status: LiveStatus) {
    this.status = status;
    this.emit((l) => l.status?.(status));
  }

  private write(frame: object) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(frame));
  }

  private async connect() {
    if (this.closed) return;
    let ticket: string | null;
    try {
      ticket = await this.options.ticket();
    } catch {
      this.retry();
      return;
    }
    if (this.closed) return;
    if (ticket === null) {
      this.close();
      return;
    }
    const url = this.options.url(ticket);
    const ws = this.options.socket ? this.options.socket(url) : new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.setStatus("live");
      for (const [conversationId, afterSeq] of this.seen) {
        this.write({ type: "subscribe", conversation_id: conversationId, after_seq: afterSeq });
      }
      for (const outgoing of this.unacked.values()) this.write({ type: "send", ...outgoing });
    };
    ws.onmessage = (event) => this.receive(String(event.data));
    ws.onclose = () => {
      if (this.ws === ws) this.ws = null;
      this.retry();
    };
  }

  private retry() {
    if (this.closed) return;
    this.setStatus("reconnecting");
    const { first, max } = this.options.backoff ?? { first: 500, max: 10_000 };
    const delay = Math.min(max, first * 2 ** this.attempt);
    this.attempt += 1;
    this.timer = setTimeout(() => void this.connect(), delay * (0.5 + Math.random() / 2));
  }

  private receive(text: string) {
    let frame: ServerFrame;
    try {
      frame = JSON.parse(text) as ServerFrame;
    } catch {
      return;
    }
    switch (frame.type) {
      case "message": {
        const known = this.seen.get(frame.conversation_id);
        if (known === undefined) return; // not followed (any more)
        if (frame.seq <= known) return; // already handed on: a replay overlapping live frames
        this.seen.set(frame.conversation_id, frame.seq);
        this.emit((l) => l.message?.(frame.conversation_id, frame.message));
        break;
      }
      case "ack":
        this.unacked.delete(frame.client_msg_id);
        this.emit((l) => l.acked?.(frame.client_msg_id, frame.seq));
        break;
      case "typing":
        this.emit((l) => l.typing?.(frame.conversation_id, frame.user_id));
        break;
      case "read":
        this.emit((l) => l.read?.(frame.conversation_id, frame.user_id, frame.seq));
        break;
      case "presence":
        this.online = frame.online;
        this.emit((l) => l.presence?.(frame.online));
        break;
      case "event":
        this.emit((l) => l.event?.(frame.topic, frame.payload));
        break;
      default:
        break;
    }
  }
}
