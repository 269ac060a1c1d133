// The typed API client. `paths` is generated from the hub's /api/openapi.json
// (scripts/web.sh), so a request or response that drifts from the API fails the type check.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type Conversation = Schemas["Conversation"];
export type Message = Schemas["Message"];
export type TokenPair = Schemas["TokenPair"];

/** The project's error envelope, thrown by `unwrap` for every non-2xx answer. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }

  /** `details.fields` of a validation error: field name -> what is wrong with it. */
  get fields(): Record<string, string> {
    const fields = this.details["fields"];
    if (fields && typeof fields === "object") {
      return Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, String(v)]));
    }
    return {};
  }
}

/** Where the client gets its bearer token and what it does when a request comes back 401. */
export interface TokenSource {
  accessToken(): string | null;
  /** Exchanges the refresh token; true when a new access token is in place. */
  refresh(): Promise<boolean>;
}

let tokens: TokenSource | null = null;

export function useTokenSource(source: TokenSource | null) {
  tokens = source;
}

const pendingRetries = new WeakMap<Request, Request>();

const auth: Middleware = {
  onRequest({ request }) {
    const token = tokens?.accessToken();
    if (token && !request.headers.has("Authorization")) {
      request.headers.set("Authorization", `Bearer ${token}`);
    }
    // A request that may have to go again after a refresh keeps an unread copy.
    if (!request.url.includes("/auth/")) pendingRetries.set(request, request.clone());
    return request;
  },
  async onResponse({ request, response }) {
    const copy = pendingRetries.get(request);
    pendingRetries.delete(request);
    if (response.status !== 401 || !copy || !tokens) return response;
    // The access token lapsed (or the session ended): one quiet refresh, then once more.
    if (!(await tokens.refresh())) return response;
    const retry = new Request(copy);
    retry.headers.set("Authorization", `Bearer ${tokens.accessToken() ?? ""}`);
    return globalThis.fetch(retry);
  },
};

// Same origin as the page (the hub serves the app, or Vite passes /api through). `fetch` is
// looked up at each call, so tests can stand in for the network.
export const api = createClient<paths>({
  baseUrl: globalThis.location?.origin ?? "",
  fetch: (request) => globalThis.fetch(request),
});
api.use(auth);

type Answer<T> = { data?: T; error?: unknown; response: Response };

/** The data of a 2xx answer, or the error envelope thrown as an `ApiError`. */
export function unwrap<T>(answer: Answer<T>): T {
  if (answer.response.ok && answer.data !== undefined) return answer.data;
  const envelope = answer.error as { error?: { code?: string; message?: string; details?: Record<string, unknown> } };
  const error = envelope?.error;
  throw new ApiError(
    answer.response.status,
    error?.code ?? "unknown",
    error?.message ?? `the server answered ${answer.response.status}`,
    error?.details ?? {},
  );
}

/** For answers with no body (204): nothing on success, the error envelope thrown otherwise. */
export function ensureOk(answer: Answer<unknown>): void {
  if (answer.response.ok) return;
  unwrap({ ...answer, data: undefined });
}

/** `details.fields` of a refusal, for the form that sent it; none for any other failure. */
export function fieldsOf(error: unknown): Record<string, string> {
  return error instanceof ApiError ? error.fields : {};
}

/**
 * Hands a file fetched with the session's token (a plain link would carry none) to the
 * browser as a download named `filename`; the error envelope is thrown for a refusal.
 */
export function saveDownload(answer: Answer<unknown>, filename: string): void {
  if (!(answer.data instanceof Blob)) unwrap({ ...answer, data: undefined });
  const url = URL.createObjectURL(answer.data as Blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
