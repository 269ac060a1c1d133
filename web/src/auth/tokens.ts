// The signed-in session's tokens. Kept in sessionStorage: they survive a reload of the tab
// but are not shared with other tabs or left behind when the browser closes, and an access
// token lives only minutes. Everything the app holds for a session goes when it ends.
import type { TokenPair } from "../api/client";

export interface StoredSession {
  firm: string;
  accessToken: string;
  refreshToken: string;
  /** Epoch milliseconds at which the access token expires. */
  expiresAt: number;
}

const KEY = "consultantpro.session";

export function loadSession(storage: Storage = sessionStorage): StoredSession | null {
  try {
    const raw = storage.getItem(KEY);
    if (!raw) return null;
    const value = JSON.parse(raw) as Partial<StoredSession>;
    if (typeof value.accessToken !== "string" || typeof value.refreshToken !== "string") return null;
    if (typeof value.firm !== "string" || typeof value.expiresAt !== "number") return null;
    return value as StoredSession;
  } catch {
    return null;
  }
}

export function saveSession(session: StoredSession | null, storage: Storage = sessionStorage) {
  if (session) storage.setItem(KEY, JSON.stringify(session));
  else storage.removeItem(KEY);
}

export function fromTokenPair(firm: string, pair: TokenPair, now = Date.now()): StoredSession {
  return {
    firm,
    accessToken: pair.access_token,
    refreshToken: pair.refresh_token,
    expiresAt: now + pair.expires_in * 1000,
  };
}

/** When to refresh quietly: at four fifths of the token's life, never sooner than 5 s. */
export function refreshDelay(session: StoredSession, now = Date.now()): number {
  const life = session.expiresAt - now;
  return Math.max(5_000, Math.floor(life * 0.8));
}
