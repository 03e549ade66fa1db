/**
 * Live alert events over `GET /api/v1/ws` (docs/websocket.md): while the socket is up the
 * alert queries stop polling and are invalidated on each `alert.*` event; when it is down
 * (refused, dropped, no WebSocket) they poll again and the socket is retried with backoff.
 * No React here: `AlertsBell` starts one {@link LiveAlerts} per page.
 */

/** The socket's state, as the alert queries see it. */
export type LiveState = "connecting" | "open" | "closed";

/** The alert events that change what the bell and the list show. */
export const ALERT_EVENTS = ["alert.opened", "alert.acknowledged", "alert.resolved"] as const;

/** Close codes after which the token must be refreshed before reconnecting. */
const AUTH_CLOSE = 4001;

/** A server message, narrowed to what this module reads. */
export interface LiveMessage {
  type: string;
  id?: number;
  stream?: string;
}

/** Parses a text frame; `null` for anything that is not a JSON object with a string `type`. */
export function parseMessage(data: unknown): LiveMessage | null {
  if (typeof data !== "string") return null;
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof v !== "object" || v === null) return null;
  const o = v as Record<string, unknown>;
  if (typeof o["type"] !== "string") return null;
  const msg: LiveMessage = { type: o["type"] };
  if (typeof o["id"] === "number") msg.id = o["id"];
  if (typeof o["stream"] === "string") msg.stream = o["stream"];
  return msg;
}

export function isAlertEvent(type: string): boolean {
  return (ALERT_EVENTS as readonly string[]).includes(type);
}

/** Reconnect delay: 1 s, doubling, at most 30 s. */
export function backoffMs(attempt: number): number {
  return Math.min(30_000, 1000 * 2 ** Math.max(0, Math.min(attempt, 5)));
}

/** The socket URL for a page served from `loc` (same origin, ws or wss). */
export function wsUrl(loc: { protocol: string; host: string }): string {
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}/api/v1/ws`;
}

/** What a WebSocket must offer here (the browser's, or a test double). */
export interface SocketLike {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(): void;
}

export interface LiveOptions {
  url: string;
  /** The current access token (read at each connect). */
  token: () => string | null;
  /** Refreshes the session (after a 4001 close, the token may have expired). */
  refresh: () => Promise<void>;
  /** An alert event arrived. */
  onAlert: () => void;
  /** The state changed. */
  onState: (s: LiveState) => void;
  connect?: (url: string) => SocketLike;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (t: unknown) => void;
}

/** One live connection with reconnects. Call `start` once and `stop` when done. */
export class LiveAlerts {
  private socket: SocketLike | null = null;
  private attempt = 0;
  private timer: unknown = null;
  private stopped = false;
  private readonly opts: LiveOptions;

  constructor(opts: LiveOptions) {
    this.opts = opts;
  }

  start(): void {
    this.stopped = false;
    this.open();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) (this.opts.clearTimer ?? clearTimeout)(this.timer as ReturnType<typeof setTimeout>);
    this.timer = null;
    const s = this.socket;
    this.socket = null;
    if (s) {
      s.onclose = null;
      s.close();
    }
  }

  private open(): void {
    const token = this.opts.token();
    if (!token) {
      this.opts.onState("closed");
      return;
    }
    let s: SocketLike;
    try {
      s = (this.opts.connect ?? ((u: string) => new WebSocket(u) as unknown as SocketLike))(this.opts.url);
    } catch {
      this.retry(false);
      return;
    }
    this.socket = s;
    this.opts.onState("connecting");
    // The token goes in the first message, never in the URL.
    s.onopen = () => s.send(JSON.stringify({ type: "auth", token }));
    s.onmessage = (ev) => {
      const m = parseMessage(ev.data);
      if (!m) return;
      if (m.type === "hello") {
        this.attempt = 0;
        this.opts.onState("open");
        // Whatever happened while the socket was down: one refetch.
        this.opts.onAlert();
      } else if (isAlertEvent(m.type)) {
        this.opts.onAlert();
      }
    };
    s.onerror = () => {};
    s.onclose = (ev) => {
      this.socket = null;
      this.opts.onState("closed");
      this.retry(ev.code === AUTH_CLOSE);
    };
  }

  private retry(refresh: boolean): void {
    if (this.stopped) return;
    const delay = backoffMs(this.attempt);
    this.attempt += 1;
    this.timer = (this.opts.setTimer ?? setTimeout)(() => {
      this.timer = null;
      if (this.stopped) return;
      if (refresh) {
        this.opts.refresh().then(
          () => this.open(),
          () => this.open(),
        );
      } else {
        this.open();
      }
    }, delay);
  }
}

let state: LiveState = "closed";
const listeners = new Set<() => void>();

/** The page's live socket state (what the alert queries' polling depends on). */
export function liveState(): LiveState {
  return state;
}

export function setLiveState(s: LiveState): void {
  if (s === state) return;
  state = s;
  listeners.forEach((fn) => fn());
}

export function subscribeLiveState(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
