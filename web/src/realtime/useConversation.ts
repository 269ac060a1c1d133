import { useEffect, useRef, useState } from "react";
import { api, unwrap, type Message } from "../api/client";
import type { LiveSocket } from "./live";

/** Merges messages by seq: each seq once, in order. */
export function mergeBySeq(held: Message[], incoming: Message[]): Message[] {
  const bySeq = new Map(held.map((m) => [m.seq, m]));
  for (const message of incoming) bySeq.set(message.seq, message);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

/** The message with its `delivery` updated from a status event. */
export function withDelivery(
  held: Message[],
  messageId: string,
  channel: string,
  change: Record<string, unknown>,
): Message[] {
  return held.map((m) => {
    if (m.id !== messageId) return m;
    const before = (m.delivery ?? {}) as Record<string, unknown>;
    const { conversation_id: _c, message_id: _m, delivery, ...fields } = change;
    const next = { channel, ...before, ...(typeof delivery === "object" && delivery ? delivery : {}), ...fields };
    return { ...m, delivery: next };
  });
}

export interface ConversationFeed {
  messages: Message[];
  loading: boolean;
  error: string | null;
  /** User ids seen typing in the last few seconds. */
  typing: string[];
}

/**
 * The newest page of a conversation's messages, then everything after it live: the socket
 * subscribes from the page's last seq, so what was posted in between is replayed, not lost.
 */
export function useConversation(conversationId: string, live: LiveSocket | null): ConversationFeed {
  const [messages, setMessages] = useState<Message[]>([]);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [typing, setTyping] = useState<string[]>([]);
  const typingTimers = useRef(new Map<string, ReturnType<typeof setTimeout>>());

  useEffect(() => {
    let cancelled = false;
    setMessages([]);
    setLoading(true);
    setError(null);
    void (async () => {
      try {
        const page = unwrap(
          await api.GET("/api/v1/conversations/{id}/messages", { params: { path: { id: conversationId } } }),
        ).data;
        if (cancelled) return;
        setMessages((held) => mergeBySeq(held, page));
        live?.subscribe(conversationId, page.at(-1)?.seq ?? 0);
      } catch (e) {
        if (!cancelled) setError(e instanceof Error ? e.message : "could not load the messages");
      } finally {
        if (!cancelled) setLoading(false);
      }
    })();
    const stop = live?.listen({
      message(id, message) {
        if (id === conversationId) setMessages((held) => mergeBySeq(held, [message]));
      },
      event(topic, payload) {
        // A message's way over its channel moved on (queued, sent, delivered, failed...).
        if (topic !== "sms.status" && topic !== "email.status") return;
        const change = payload as { conversation_id?: string; message_id?: string } & Record<string, unknown>;
        if (change.conversation_id !== conversationId || !change.message_id) return;
        setMessages((held) => withDelivery(held, change.message_id as string, topic.split(".")[0] ?? "", change));
      },
      typing(id, userId) {
        if (id !== conversationId) return;
        const timers = typingTimers.current;
        clearTimeout(timers.get(userId));
        setTyping((now) => (now.includes(userId) ? now : [...now, userId]));
        timers.set(
          userId,
          setTimeout(() => setTyping((now) => now.filter((u) => u !== userId)), 4_000),
        );
      },
    });
    return () => {
      cancelled = true;
      stop?.();
      live?.unsubscribe(conversationId);
      for (const timer of typingTimers.current.values()) clearTimeout(timer);
      typingTimers.current.clear();
    };
  }, [conversationId, live]);

  return { messages, loading, error, typing };
}
