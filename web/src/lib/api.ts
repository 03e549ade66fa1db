/**
 * The one API client: JSON over `/api/v1`, the error envelope turned into a typed
 * {@link ApiError}, and sessions (access JWT + single-use refresh token).
 *
 * Refresh rule: a request answered 401 refreshes the session and is retried once with the
 * new access token. Concurrent 401s share one refresh (refresh tokens are single-use and the
 * server treats a reused one as theft, ending the session). When the refresh fails, or the
 * retry is 401 again, the session is cleared and `onSessionEnd` sends the user to login.
 */
import type { components, paths } from "@/api/schema";

export type Schemas = components["schemas"];
export type ErrorCode = Schemas["ErrorCode"];
export type ApiPath = keyof paths;

/** One invalid field of a `VALIDATION_FAILED` answer. */
export interface FieldError {
  field: string;
  message: string;
}

/** An error answer of the API (or a network failure, `status` 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: ErrorCode | "NETWORK_ERROR" | "UNEXPECTED_RESPONSE";
  readonly details: Record<string, unknown> | null;
  readonly requestId: string | null;

  constructor(
    status: number,
    code: ApiError["code"],
    message: string,
    details: Record<string, unknown> | null = null,
    requestId: string | null = null,
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.requestId = requestId;
  }

  /** `details.fields` as field → message (first message per field). */
  get fields(): Record<string, string> {
    const out: Record<string, string> = {};
    const list = this.details?.["fields"];
    if (Array.isArray(list)) {
      for (const item of list as unknown[]) {
        if (isRecord(item) && typeof item["field"] === "string" && typeof item["message"] === "string") {
          out[item["field"]] ??= item["message"];
        }
      }
    }
    return out;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The credentials of a logged-in session. */
export interface Session {
  accessToken: string;
  refreshToken: string;
}

/** Where the session lives (localStorage in the app, memory in tests). */
export interface SessionStore {
  get(): Session | null;
  set(session: Session | null): void;
}

export function memoryStore(initial: Session | null = null): SessionStore {
  let s = initial;
  return { get: () => s, set: (v) => void (s = v) };
}

export function localStorageStore(key = "camstream.session"): SessionStore {
  return {
    get() {
      try {
        const raw = localStorage.getItem(key);
        if (!raw) return null;
        const v: unknown = JSON.parse(raw);
        if (isRecord(v) && typeof v["accessToken"] === "string" && typeof v["refreshToken"] === "string") {
          return { accessToken: v["accessToken"], refreshToken: v["refreshToken"] };
        }
      } catch {
        // A corrupt entry is no session.
      }
      return null;
    },
    set(s) {
      if (s) localStorage.setItem(key, JSON.stringify(s));
      else localStorage.removeItem(key);
    },
  };
}

export type Query = Record<string, string | number | boolean | null | undefined>;

export interface RequestOptions {
  /** Values for `{name}` segments of the path. */
  params?: Record<string, string>;
  query?: Query;
  body?: unknown;
  /** Send the access token (default true). */
  auth?: boolean;
  signal?: AbortSignal;
}

export interface ClientOptions {
  store: SessionStore;
  /** Called once when a session ends without the user asking (refresh refused). */
  onSessionEnd?: () => void;
  fetch?: typeof fetch;
  baseUrl?: string;
}

type Method = "GET" | "POST" | "PUT" | "DELETE";

/** Fills `{name}` segments; every value is URI-encoded. */
export function buildUrl(base: string, path: string, params?: Record<string, string>, query?: Query): string {
  const filled = path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const v = params?.[name];
    if (v === undefined) throw new Error(`missing path parameter ${name} for ${path}`);
    return encodeURIComponent(v);
  });
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== "") qs.set(k, String(v));
  }
  const q = qs.toString();
  return `${base}${filled}${q ? `?${q}` : ""}`;
}

export class ApiClient {
  private readonly store: SessionStore;
  private readonly onSessionEnd: () => void;
  private readonly fetchFn: typeof fetch;
  private readonly baseUrl: string;
  private refreshing: Promise<Session | null> | null = null;

  constructor(opts: ClientOptions) {
    this.store = opts.store;
    this.onSessionEnd = opts.onSessionEnd ?? (() => {});
    this.fetchFn = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.baseUrl = opts.baseUrl ?? "";
  }

  get session(): Session | null {
    return this.store.get();
  }

  get<T>(path: ApiPath, opts: RequestOptions = {}): Promise<T> {
    return this.request<T>("GET", path, opts);
  }
  post<T>(path: ApiPath, opts: RequestOptions = {}): Promise<T> {
    return this.request<T>("POST", path, opts);
  }
  put<T>(path: ApiPath, opts: RequestOptions = {}): Promise<T> {
    return this.request<T>("PUT", path, opts);
  }
  delete<T>(path: ApiPath, opts: RequestOptions = {}): Promise<T> {
    return this.request<T>("DELETE", path, opts);
  }

  /** Logs in and keeps the session. */
  async login(username: string, password: string): Promise<Schemas["TokenPair"]> {
    const body: Schemas["LoginRequest"] = { username, password };
    const env = await this.request<Schemas["Envelope_TokenPair"]>("POST", "/api/v1/auth/login", { body, auth: false });
    this.store.set({ accessToken: env.data.accessToken, refreshToken: env.data.refreshToken });
    return env.data;
  }

  /** Ends the session on the server (best effort) and forgets it here. */
  async logout(): Promise<void> {
    try {
      if (this.store.get()) await this.request<unknown>("POST", "/api/v1/auth/logout", {});
    } catch {
      // The session is forgotten here whatever the server said.
    } finally {
      this.store.set(null);
    }
  }

  async request<T>(method: Method, path: ApiPath, opts: RequestOptions = {}): Promise<T> {
    const auth = opts.auth ?? true;
    const sent = auth ? this.store.get() : null;
    const first = await this.send(method, path, opts, sent?.accessToken);
    if (first.status !== 401 || !auth || !sent) return this.parse<T>(first);
    const fresh = await this.refresh(sent);
    if (!fresh) {
      throw await this.error(first);
    }
    const retry = await this.send(method, path, opts, fresh.accessToken);
    if (retry.status === 401) {
      this.endSession();
    }
    return this.parse<T>(retry);
  }

  /**
   * A new session from the refresh token, shared by every request that saw a 401 with the
   * same access token. Returns null when the session is over.
   */
  private refresh(stale: Session): Promise<Session | null> {
    const current = this.store.get();
    if (!current) return Promise.resolve(null);
    // Another request already refreshed: use its result.
    if (current.accessToken !== stale.accessToken) return Promise.resolve(current);
    if (!this.refreshing) {
      this.refreshing = this.doRefresh(current.refreshToken).finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  private async doRefresh(refreshToken: string): Promise<Session | null> {
    let res: Response;
    try {
      const body: Schemas["RefreshRequest"] = { refreshToken };
      res = await this.send("POST", "/api/v1/auth/refresh", { body, auth: false }, undefined);
    } catch {
      // Network trouble is not a verdict on the session: keep it, fail this request.
      return null;
    }
    if (!res.ok) {
      this.endSession();
      return null;
    }
    const env = (await res.json()) as Schemas["Envelope_TokenPair"];
    const s = { accessToken: env.data.accessToken, refreshToken: env.data.refreshToken };
    this.store.set(s);
    return s;
  }

  private endSession(): void {
    if (this.store.get()) {
      this.store.set(null);
      this.onSessionEnd();
    }
  }

  private async send(method: Method, path: ApiPath, opts: RequestOptions, token: string | undefined): Promise<Response> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (opts.body !== undefined) headers["content-type"] = "application/json";
    if (token) headers["authorization"] = `Bearer ${token}`;
    try {
      return await this.fetchFn(buildUrl(this.baseUrl, path, opts.params, opts.query), {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        signal: opts.signal,
      });
    } catch (e) {
      if (e instanceof DOMException && e.name === "AbortError") throw e;
      throw new ApiError(0, "NETWORK_ERROR", "The server cannot be reached. Check your connection.");
    }
  }

  private async parse<T>(res: Response): Promise<T> {
    if (!res.ok) throw await this.error(res);
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(res.status, "UNEXPECTED_RESPONSE", "The server sent a response that is not JSON.");
    }
  }

  private async error(res: Response): Promise<ApiError> {
    let body: unknown = null;
    try {
      body = await res.clone().json();
    } catch {
      // Not the envelope (a proxy's page, an empty body): described by the status alone.
    }
    const err = isRecord(body) ? body["error"] : null;
    if (isRecord(err) && typeof err["code"] === "string" && typeof err["message"] === "string") {
      return new ApiError(
        res.status,
        err["code"] as ErrorCode,
        err["message"],
        isRecord(err["details"]) ? err["details"] : null,
        typeof err["requestId"] === "string" ? err["requestId"] : null,
      );
    }
    return new ApiError(res.status, "UNEXPECTED_RESPONSE", `The server answered ${res.status}.`);
  }
}
