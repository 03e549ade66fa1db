import { describe, expect, it } from "vitest";
import { LiveAlerts, backoffMs, isAlertEvent, parseMessage, wsUrl, type LiveState, type SocketLike } from "./live";

class FakeSocket implements SocketLike {
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  sent: string[] = [];
  closed = false;
  send(data: string): void {
    this.sent.push(data);
  }
  close(): void {
    this.closed = true;
  }
}

function harness(token: string | null = "jwt") {
  const sockets: FakeSocket[] = [];
  const states: LiveState[] = [];
  const timers: (() => void)[] = [];
  const counts = { alerts: 0, refreshes: 0 };
  const live = new LiveAlerts({
    url: "ws://h/api/v1/ws",
    token: () => token,
    refresh: async () => {
      counts.refreshes += 1;
    },
    onAlert: () => {
      counts.alerts += 1;
    },
    onState: (s) => states.push(s),
    connect: () => {
      const s = new FakeSocket();
      sockets.push(s);
      return s;
    },
    setTimer: (fn) => {
      timers.push(fn);
      return timers.length;
    },
    clearTimer: () => {},
  });
  return { live, sockets, states, timers, counts };
}

describe("live alerts", () => {
  it("parses only JSON objects with a type", () => {
    expect(parseMessage('{"type":"hello","stream":"s","lastId":3}')).toEqual({ type: "hello", stream: "s" });
    expect(parseMessage('{"type":"alert.opened","id":7}')).toEqual({ type: "alert.opened", id: 7 });
    expect(parseMessage("nope")).toBeNull();
    expect(parseMessage("[1]")).toBeNull();
    expect(parseMessage('{"id":1}')).toBeNull();
    expect(parseMessage(new ArrayBuffer(2))).toBeNull();
    expect(isAlertEvent("alert.resolved")).toBe(true);
    expect(isAlertEvent("stream.health")).toBe(false);
  });

  it("builds the URL without credentials and backs off to 30 s", () => {
    expect(wsUrl({ protocol: "https:", host: "cams.example:8443" })).toBe("wss://cams.example:8443/api/v1/ws");
    expect(wsUrl({ protocol: "http:", host: "localhost" })).toBe("ws://localhost/api/v1/ws");
    expect([0, 1, 2, 10].map(backoffMs)).toEqual([1000, 2000, 4000, 30_000]);
  });

  it("authenticates by first message, refetches on alert events, reconnects", async () => {
    const h = harness();
    h.live.start();
    const s = h.sockets[0]!;
    s.onopen?.({});
    expect(JSON.parse(s.sent[0]!)).toEqual({ type: "auth", token: "jwt" });
    expect(h.states).toEqual(["connecting"]);
    s.onmessage?.({ data: '{"type":"hello","stream":"s","lastId":0}' });
    expect(h.states.at(-1)).toBe("open");
    expect(h.counts.alerts).toBe(1);
    s.onmessage?.({ data: '{"type":"alert.opened","id":1}' });
    s.onmessage?.({ data: '{"type":"camera.status","id":2}' });
    s.onmessage?.({ data: "garbage" });
    expect(h.counts.alerts).toBe(2);
    // Dropped: polling resumes (closed) and a reconnect is scheduled.
    s.onclose?.({ code: 1006 });
    expect(h.states.at(-1)).toBe("closed");
    expect(h.timers).toHaveLength(1);
    h.timers[0]!();
    expect(h.sockets).toHaveLength(2);
    // An auth close refreshes the session first.
    h.sockets[1]!.onclose?.({ code: 4001 });
    h.timers[1]!();
    await Promise.resolve();
    await Promise.resolve();
    expect(h.counts.refreshes).toBe(1);
    expect(h.sockets).toHaveLength(3);
    h.live.stop();
    expect(h.sockets[2]!.closed).toBe(true);
  });

  it("stays closed without a session", () => {
    const h = harness(null);
    h.live.start();
    expect(h.sockets).toHaveLength(0);
    expect(h.states).toEqual(["closed"]);
  });
});
