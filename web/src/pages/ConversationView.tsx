import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { Link } from "react-router";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap, type Message, type Schemas } from "../api/client";
import { EmailHtml } from "../email/EmailBody";
import { Attachments } from "../email/Attachments";
import { countSegments } from "../sms/segments";
import { splitQuoted } from "../email/quoted";
import { useSession } from "../auth/session";
import { useConversation } from "../realtime/useConversation";

const TYPING_EVERY_MS = 3_000;

export function ConversationView({ conversationId }: { conversationId: string }) {
  const { live } = useSession();
  const queryClient = useQueryClient();
  const me = useQuery({ queryKey: ["me"], queryFn: async () => unwrap(await api.GET("/api/v1/me")).data });
  const conversation = useQuery({
    queryKey: ["conversation", conversationId],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/conversations/{id}", { params: { path: { id: conversationId } } })).data,
  });
  const feed = useConversation(conversationId, live);
  const isEmail = conversation.data?.channel === "email";
  const emails = useQuery({
    queryKey: ["conversation-emails", conversationId],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/conversations/{id}/emails", { params: { path: { id: conversationId } } })).data,
    enabled: isEmail,
  });
  const emailOf = new Map((emails.data ?? []).filter((e) => e.chat_message_id).map((e) => [e.chat_message_id, e]));
  const missingEmail = isEmail && feed.messages.some((m) => !emailOf.has(m.id) && !m.author_user_id);
  const { refetch: refetchEmails } = emails;
  const newestSeq = feed.messages.at(-1)?.seq ?? 0;
  const emailsReadAt = useRef(0);
  useEffect(() => {
    // A message that arrived live from a mailbox: its email is read once it is there
    // (once per new message, not again for a message that has no email behind it).
    if (missingEmail && newestSeq > emailsReadAt.current) {
      emailsReadAt.current = newestSeq;
      void refetchEmails();
    }
  }, [missingEmail, newestSeq, refetchEmails]);
  // Read receipts: everyone's position from the conversation, then the socket's `read` frames;
  // presence from the hub's frames (members only: a portal login gets none).
  const [reads, setReads] = useState<Record<string, number>>({});
  const loadedReads = conversation.data?.reads;
  useEffect(() => {
    if (loadedReads) setReads((now) => mergeReads(now, loadedReads));
  }, [loadedReads]);
  const [online, setOnline] = useState<string[]>(() => live?.online ?? []);
  useEffect(
    () =>
      live?.listen({
        read(id, userId, seq) {
          if (id === conversationId) setReads((now) => mergeReads(now, [{ user_id: userId, last_read_seq: seq }]));
        },
        presence: setOnline,
      }),
    [live, conversationId],
  );
  const isMember = me.data !== undefined && me.data.role !== "client";
  const members = useQuery({
    queryKey: ["members"],
    queryFn: async () => unwrap(await api.GET("/api/v1/members", { params: { query: { limit: 100 } } })).data,
    enabled: isMember,
  });
  const nameOf = (userId: string) => members.data?.find((m) => m.user_id === userId)?.display_name ?? "Someone";
  const [draft, setDraft] = useState("");
  const lastTyping = useRef(0);
  const bottom = useRef<HTMLLIElement>(null);

  const newest = feed.messages.at(-1)?.seq;
  useEffect(() => {
    bottom.current?.scrollIntoView?.({ block: "end" });
    // What is on screen has been read; the list's unread count follows.
    if (newest !== undefined && live) {
      live.read(conversationId, newest);
      void queryClient.invalidateQueries({ queryKey: ["conversations"] });
    }
  }, [newest, conversationId, live, queryClient]);

  function send(event?: FormEvent) {
    event?.preventDefault();
    const body = draft.trim();
    if (!body || !live) return;
    live.send(conversationId, body);
    setDraft("");
  }

  function onKeyDown(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key === "Enter" && !event.shiftKey) {
      send();
      return;
    }
    const now = Date.now();
    if (live && now - lastTyping.current > TYPING_EVERY_MS) {
      lastTyping.current = now;
      live.typing(conversationId);
    }
  }

  const isSms = conversation.data?.channel === "sms";
  const firstContact = conversation.data?.participants.contacts[0];
  const contact = useQuery({
    queryKey: ["contact", firstContact],
    queryFn: async () =>
      unwrap(await api.GET("/api/v1/contacts/{id}", { params: { path: { id: firstContact ?? "" } } })).data,
    enabled: isSms && firstContact !== undefined,
  });
  // Every number of the contact replied STOP: the hub would refuse the message (409).
  const optedOut =
    isSms &&
    contact.data !== undefined &&
    contact.data.phones.length > 0 &&
    contact.data.phones.every((phone) => contact.data.sms_opted_out.includes(phone));
  const segments = isSms ? countSegments(draft) : null;

  const myId = me.data?.user?.id;
  const others = feed.typing.filter((u) => u !== myId);
  const seenAt = receiptsBySeq(
    reads,
    feed.messages.map((m) => m.seq),
    myId,
  );
  const participants = conversation.data?.participants.members ?? [];
  return (
    <div className="flex h-full min-w-0 flex-1 flex-col">
      <header className="flex items-center gap-3 border-b border-slate-200 bg-white px-4 py-2">
        <Link to="/inbox" className="text-blue-700 md:hidden">
          ‹ Back
        </Link>
        <h2 className="truncate font-semibold">{conversation.data?.subject ?? "…"}</h2>
        <span className="text-xs uppercase text-slate-500">{conversation.data?.channel}</span>
        {isMember && participants.length > 0 && (
          <ul aria-label="Participants" className="ml-auto hidden gap-2 text-sm text-slate-600 sm:flex">
            {participants.map((userId) => {
              const here = online.includes(userId);
              return (
                <li key={userId} className="flex items-center gap-1" data-online={here}>
                  <span aria-hidden className={`inline-block h-2 w-2 rounded-full ${here ? "bg-green-600" : "bg-slate-300"}`} />
                  {nameOf(userId)}
                  <span className="sr-only">{here ? " (online)" : " (offline)"}</span>
                </li>
              );
            })}
          </ul>
        )}
      </header>
      {feed.error && (
        <p role="alert" className="p-4 text-red-700">
          {feed.error}
        </p>
      )}
      <ol aria-label="Messages" aria-live="polite" className="min-h-0 flex-1 space-y-2 overflow-y-auto p-4">
        {feed.loading && <li className="text-slate-500">Loading…</li>}
        {!feed.loading && feed.messages.length === 0 && <li className="text-slate-500">No messages yet.</li>}
        {feed.messages.map((m) => (
          <li
            key={m.seq}
            data-seq={m.seq}
            className={`max-w-prose rounded px-3 py-2 ${m.author_user_id && m.author_user_id === myId ? "ml-auto bg-blue-100" : "bg-white shadow-sm"}`}
          >
            <MessageContent message={m} email={emailOf.get(m.id)} />
            <span className="flex gap-2 text-xs text-slate-500">
              <time dateTime={m.created_at}>{new Date(m.created_at).toLocaleString()}</time>
              <DeliveryStatus message={m} />
            </span>
            {seenAt.get(m.seq) && (
              <p className="text-right text-xs text-slate-500" data-testid="read-receipt">
                Seen by {seenAt.get(m.seq)?.map((u) => (isMember ? nameOf(u) : "the firm")).join(", ")}
              </p>
            )}
          </li>
        ))}
        <li ref={bottom} aria-hidden />
      </ol>
      <p aria-live="polite" className="h-5 px-4 text-sm text-slate-500">
        {others.length > 0 ? "Someone is typing…" : ""}
      </p>
      {optedOut && (
        <p role="status" className="bg-amber-100 px-4 py-2 text-sm text-amber-900">
          This contact replied STOP: nothing can be sent by SMS until they text START.
        </p>
      )}
      {segments && draft && (
        <p data-testid="sms-segments" className="px-4 text-xs text-slate-500">
          {segments.units} characters ({segments.encoding}) · {segments.segments} {segments.segments === 1 ? "segment" : "segments"}
        </p>
      )}
      <form onSubmit={send} className="flex gap-2 border-t border-slate-200 bg-white p-3">
        <label htmlFor="composer" className="sr-only">
          Message
        </label>
        <textarea
          id="composer"
          rows={2}
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          onKeyDown={onKeyDown}
          placeholder="Write a message (Enter sends, Shift+Enter for a new line)"
          className="min-w-0 flex-1 resize-none rounded border border-slate-300 px-2 py-1"
        />
        <button type="submit" disabled={!draft.trim() || !live || optedOut} className="rounded bg-blue-700 px-4 text-white disabled:opacity-50">
          Send
        </button>
      </form>
    </div>
  );
}

type Email = Schemas["Email"];

/** Read positions only move forward, whichever arrives first (the page or a frame). */
export function mergeReads(now: Record<string, number>, positions: { user_id: string; last_read_seq: number }[]): Record<string, number> {
  const next = { ...now };
  for (const p of positions) next[p.user_id] = Math.max(next[p.user_id] ?? 0, p.last_read_seq);
  return next;
}

/** For each shown message, the other readers whose position stops at it (their newest seen message). */
export function receiptsBySeq(reads: Record<string, number>, seqs: number[], me: string | undefined): Map<number, string[]> {
  const at = new Map<number, string[]>();
  for (const [userId, readSeq] of Object.entries(reads)) {
    if (userId === me) continue;
    const last = seqs.filter((s) => s <= readSeq).at(-1);
    if (last === undefined) continue;
    at.set(last, [...(at.get(last) ?? []), userId]);
  }
  return at;
}

function MessageContent({ message, email }: { message: Message; email: Email | undefined }) {
  if (!email) return <p className="whitespace-pre-wrap break-words">{message.body}</p>;
  const from = email.from_name ? `${email.from_name} <${email.from_address ?? ""}>` : (email.from_address ?? "");
  return (
    <article aria-label={`Email: ${email.subject}`} className="flex flex-col gap-1">
      <header className="text-sm text-slate-600">
        <p>
          <span className="font-medium text-slate-800">{from}</span>
          {email.to_addresses.length > 0 && <> to {email.to_addresses.join(", ")}</>}
          {email.cc_addresses.length > 0 && <>, cc {email.cc_addresses.join(", ")}</>}
        </p>
        <p className="font-medium text-slate-800">{email.subject}</p>
      </header>
      {email.html_body ? <EmailHtml html={email.html_body} /> : <EmailText text={email.text_body} />}
      <Attachments emailId={email.id} />
    </article>
  );
}

/** A plain-text email, the history it quotes (`>` lines and what follows "On ... wrote:") folded away. */
function EmailText({ text }: { text: string }) {
  const { fresh, quoted } = splitQuoted(text);
  return (
    <div>
      <p className="whitespace-pre-wrap break-words">{fresh}</p>
      {quoted && (
        <details className="mt-1 text-sm text-slate-600">
          <summary className="cursor-pointer">Quoted history</summary>
          <p className="whitespace-pre-wrap break-words border-l-2 border-slate-300 pl-2">{quoted}</p>
        </details>
      )}
    </div>
  );
}

/** How a message travels over its channel (email or SMS): queued, sent, failed... */
function DeliveryStatus({ message }: { message: Message }) {
  const delivery = message.delivery as { channel?: string; status?: string; error_message?: string | null } | null | undefined;
  if (!delivery?.status) return null;
  const failed = delivery.status.startsWith("failed") || delivery.status === "undelivered";
  return (
    <span className={failed ? "text-red-700" : undefined} title={delivery.error_message ?? undefined}>
      {delivery.channel === "sms" ? "SMS" : "Email"} · {delivery.status.replaceAll("_", " ")}
    </span>
  );
}
