import { useEffect, useState } from "react";
import { NavLink, Navigate, Outlet, useLocation } from "react-router";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "../api/client";
import { useSession } from "../auth/session";
import type { LiveStatus } from "../realtime/live";

/** The signed-in frame: who and where, the screens, the socket's state, sign-out. */
export function Layout() {
  const { session, live, signOut } = useSession();
  const location = useLocation();
  const me = useQuery({
    queryKey: ["me"],
    queryFn: async () => unwrap(await api.GET("/api/v1/me")).data,
    enabled: session !== null,
  });
  const [status, setStatus] = useState<LiveStatus>("connecting");
  const queryClient = useQueryClient();
  useEffect(
    () =>
      live?.listen({
        status: setStatus,
        // What the hub says changed: the lists that show it are read again.
        event(topic) {
          for (const key of listsFor(topic)) void queryClient.invalidateQueries({ queryKey: [key] });
        },
      }),
    [live, queryClient],
  );

  if (!session) return <Navigate to="/sign-in" replace state={{ from: location.pathname }} />;

  const link = ({ isActive }: { isActive: boolean }) =>
    `rounded px-3 py-1 ${isActive ? "bg-blue-100 text-blue-900" : "text-slate-700 hover:bg-slate-100"}`;
  return (
    <div className="flex h-screen flex-col">
      <header className="flex flex-wrap items-center gap-4 border-b border-slate-200 bg-white px-4 py-2">
        <span className="font-semibold">{me.data?.firm.name ?? session.firm}</span>
        <nav aria-label="Main" className="flex gap-1">
          <NavLink to="/inbox" className={link}>
            Inbox
          </NavLink>
          {/* A client's portal login reaches its own conversations and nothing else. */}
          {me.data && me.data.role !== "client" && (
            <>
              <NavLink to="/tickets" className={link}>
                Tickets
              </NavLink>
              <NavLink to="/crm" className={link}>
                CRM
              </NavLink>
              <NavLink to="/finance" className={link}>
                Finance
              </NavLink>
              <NavLink to="/calendar" className={link}>
                Calendar
              </NavLink>
              <NavLink to="/settings" className={link}>
                Settings
              </NavLink>
            </>
          )}
        </nav>
        <span className="ml-auto flex items-center gap-2 text-sm text-slate-600">
          <span
            aria-hidden
            className={`inline-block h-2 w-2 rounded-full ${status === "live" ? "bg-green-600" : "bg-amber-500"}`}
          />
          <span data-testid="live-status">{status === "live" ? "Live" : status === "closed" ? "Offline" : "Reconnecting…"}</span>
        </span>
        <span className="text-sm text-slate-600">{me.data?.user?.display_name}</span>
        <button type="button" onClick={() => void signOut()} className="rounded px-3 py-1 text-slate-700 hover:bg-slate-100">
          Sign out
        </button>
      </header>
      <div className="min-h-0 flex-1">
        <Outlet />
      </div>
    </div>
  );
}

/** The query keys whose data an event's topic may have changed. */
export function listsFor(topic: string): string[] {
  const family = topic.split(".")[0] ?? "";
  switch (family) {
    case "email":
      return ["conversations", "conversation-emails"];
    case "sms":
    case "conversation":
    case "message":
      return ["conversations"];
    case "ticket":
    case "sla":
      return ["tickets", "ticket"];
    case "invoice":
    case "payment":
    case "credit_note":
      return ["invoices", "invoice"];
    case "booking":
      return ["bookings"];
    default:
      return [];
  }
}
