import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { api, unwrap, useTokenSource } from "../api/client";
import { LiveSocket } from "../realtime/live";
import { fromTokenPair, loadSession, refreshDelay, saveSession, type StoredSession } from "./tokens";

export interface Credentials {
  firm: string;
  email: string;
  password: string;
  totp_code?: string;
}

interface SessionContext {
  session: StoredSession | null;
  live: LiveSocket | null;
  /** Why the last session ended, when it was not a sign-out. */
  endedBecause: string | null;
  signIn(credentials: Credentials): Promise<void>;
  signOut(): Promise<void>;
}

const Context = createContext<SessionContext | null>(null);

export function useSession(): SessionContext {
  const value = useContext(Context);
  if (!value) throw new Error("useSession outside <SessionProvider>");
  return value;
}

function socketUrl(ticket: string): string {
  const origin = window.location.origin.replace(/^http/, "ws");
  return `${origin}/api/v1/ws?ticket=${encodeURIComponent(ticket)}`;
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const queryClient = useQueryClient();
  const [session, setSession] = useState<StoredSession | null>(() => loadSession());
  const [endedBecause, setEndedBecause] = useState<string | null>(null);
  const current = useRef(session);
  const refreshing = useRef<Promise<boolean> | null>(null);

  const adopt = useCallback((next: StoredSession | null) => {
    current.current = next;
    saveSession(next);
    setSession(next);
  }, []);

  // Everything held for the session goes: tokens, cached data, and (through `live`'s
  // effect below) the socket.
  const end = useCallback(
    (why: string | null) => {
      adopt(null);
      queryClient.clear();
      setEndedBecause(why);
    },
    [adopt, queryClient],
  );

  const refresh = useCallback((): Promise<boolean> => {
    const held = current.current;
    if (!held) return Promise.resolve(false);
    // Concurrent 401s share one exchange: the refresh token rotates, a second use would
    // look like reuse and end the whole family.
    refreshing.current ??= (async () => {
      try {
        const answer = await api.POST("/api/v1/auth/refresh", { body: { refresh_token: held.refreshToken } });
        if (!answer.response.ok || !answer.data) {
          if (answer.response.status === 401) end("Your session ended. Please sign in again.");
          return false;
        }
        adopt(fromTokenPair(held.firm, answer.data.data));
        return true;
      } catch {
        return false;
      } finally {
        refreshing.current = null;
      }
    })();
    return refreshing.current;
  }, [adopt, end]);

  useEffect(() => {
    useTokenSource({ accessToken: () => current.current?.accessToken ?? null, refresh });
    return () => useTokenSource(null);
  }, [refresh]);

  // The quiet refresh before the access token lapses.
  useEffect(() => {
    if (!session) return;
    const timer = setTimeout(() => void refresh(), refreshDelay(session));
    return () => clearTimeout(timer);
  }, [session, refresh]);

  const signedIn = session !== null;
  const [live, setLive] = useState<LiveSocket | null>(null);
  useEffect(() => {
    if (!signedIn) return;
    const socket = new LiveSocket({
      ticket: async () => {
        const answer = await api.POST("/api/v1/realtime/ticket");
        if (answer.response.status === 401) return null;
        return unwrap(answer).data.ticket;
      },
      url: socketUrl,
    });
    socket.start();
    setLive(socket);
    return () => {
      socket.close();
      setLive(null);
    };
  }, [signedIn]);

  const signIn = useCallback(
    async (credentials: Credentials) => {
      const answer = await api.POST("/api/v1/auth/login", { body: credentials });
      const pair = unwrap(answer).data;
      queryClient.clear();
      setEndedBecause(null);
      adopt(fromTokenPair(credentials.firm, pair));
    },
    [adopt, queryClient],
  );

  const signOut = useCallback(async () => {
    try {
      await api.POST("/api/v1/auth/logout");
    } finally {
      end(null);
    }
  }, [end]);

  const value = useMemo(
    () => ({ session, live, endedBecause, signIn, signOut }),
    [session, live, endedBecause, signIn, signOut],
  );
  return <Context.Provider value={value}>{children}</Context.Provider>;
}
