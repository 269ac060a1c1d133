import { useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap, type Conversation } from "../api/client";
import { ConversationView } from "./ConversationView";

const CHANNELS = ["internal", "email", "sms", "portal"] as const;
type Channel = (typeof CHANNELS)[number];

/** Conversations across channels with unread counts, filters and search; one open beside. */
export function Inbox() {
  const { id } = useParams();
  const [channel, setChannel] = useState<Channel | "">("");
  const [q, setQ] = useState("");
  const me = useQuery({ queryKey: ["me"], queryFn: async () => unwrap(await api.GET("/api/v1/me")).data });
  const list = useQuery({
    queryKey: ["conversations", channel, q],
    queryFn: async () =>
      unwrap(
        await api.GET("/api/v1/conversations", {
          params: { query: { limit: 100, ...(channel ? { channel } : {}), ...(q ? { q } : {}) } },
        }),
      ),
    placeholderData: keepPreviousData,
    refetchInterval: 15_000,
  });

  return (
    <div className="flex h-full">
      <aside className={`w-full flex-col border-r border-slate-200 bg-white md:flex md:w-80 ${id ? "hidden" : "flex"}`}>
        <div className="flex flex-col gap-2 border-b border-slate-200 p-3">
          <NewConversation />
          <label className="sr-only" htmlFor="inbox-search">
            Search conversations
          </label>
          <input
            id="inbox-search"
            type="search"
            placeholder="Search"
            value={q}
            onChange={(e) => setQ(e.target.value)}
            className="rounded border border-slate-300 px-2 py-1"
          />
          <label className="sr-only" htmlFor="inbox-channel">
            Channel
          </label>
          <select
            id="inbox-channel"
            value={channel}
            onChange={(e) => setChannel(e.target.value as Channel | "")}
            className="rounded border border-slate-300 px-2 py-1"
          >
            <option value="">All channels</option>
            {CHANNELS.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
          {me.data && me.data.role !== "client" && (
            <Link to="/triage" className="text-sm text-blue-700 underline">
              Triage queue: mail kept out of the inbox
            </Link>
          )}
        </div>
        {list.isPending && <p className="p-3 text-slate-500">Loading…</p>}
        {list.isError && (
          <p role="alert" className="p-3 text-red-700">
            {list.error.message}
          </p>
        )}
        {list.data && list.data.data.length === 0 && <p className="p-3 text-slate-500">No conversations yet.</p>}
        <ul aria-label="Conversations" className="min-h-0 flex-1 overflow-y-auto">
          {list.data?.data.map((c) => (
            <ConversationRow key={c.id} conversation={c} open={c.id === id} />
          ))}
        </ul>
      </aside>
      <section className={`min-w-0 flex-1 ${id ? "flex" : "hidden md:flex"}`}>
        {id ? (
          <ConversationView key={id} conversationId={id} />
        ) : (
          <p className="m-auto text-slate-500">Choose a conversation.</p>
        )}
      </section>
    </div>
  );
}

function ConversationRow({ conversation, open }: { conversation: Conversation; open: boolean }) {
  return (
    <li>
      <Link
        to={`/inbox/${conversation.id}`}
        aria-current={open ? "page" : undefined}
        className={`flex items-center gap-2 border-b border-slate-100 px-3 py-2 hover:bg-slate-50 ${open ? "bg-blue-50" : ""}`}
      >
        <span className="min-w-0 flex-1">
          <span className="block truncate font-medium">{conversation.subject || "(no subject)"}</span>
          <span className="text-xs uppercase text-slate-500">{conversation.channel}</span>
        </span>
        {conversation.unread > 0 && (
          <span className="rounded-full bg-blue-700 px-2 text-xs text-white" aria-label={`${conversation.unread} unread`}>
            {conversation.unread}
          </span>
        )}
      </Link>
    </li>
  );
}

/** Starts a conversation: internal for members, a portal conversation for a client. */
function NewConversation() {
  const [open, setOpen] = useState(false);
  const [subject, setSubject] = useState("");
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const me = useQuery({ queryKey: ["me"], queryFn: async () => unwrap(await api.GET("/api/v1/me")).data });
  const start = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.POST("/api/v1/conversations", {
          body: { subject, channel: me.data?.role === "client" ? "portal" : "internal" },
        }),
      ).data,
    onSuccess: (conversation) => {
      setOpen(false);
      setSubject("");
      void queryClient.invalidateQueries({ queryKey: ["conversations"] });
      navigate(`/inbox/${conversation.id}`);
    },
  });
  if (!open)
    return (
      <button type="button" onClick={() => setOpen(true)} className="rounded bg-blue-700 px-3 py-1 text-white">
        New conversation
      </button>
    );
  return (
    <form
      aria-label="New conversation"
      onSubmit={(e) => {
        e.preventDefault();
        start.mutate();
      }}
      className="flex flex-col gap-2"
    >
      <label htmlFor="new-subject" className="text-sm font-medium">
        Subject
      </label>
      <input id="new-subject" autoFocus value={subject} onChange={(e) => setSubject(e.target.value)} className="rounded border border-slate-300 px-2 py-1" />
      {start.isError && (
        <p role="alert" className="text-sm text-red-700">
          {start.error.message}
        </p>
      )}
      <div className="flex gap-2">
        <button type="submit" disabled={start.isPending || !subject.trim()} className="rounded bg-blue-700 px-3 py-1 text-white disabled:opacity-50">
          Start
        </button>
        <button type="button" onClick={() => setOpen(false)} className="px-3 py-1">
          Cancel
        </button>
      </div>
    </form>
  );
}
