import { describe, expect, it, vi } from "vitest";
import { ApiClient, ApiError, buildUrl, memoryStore } from "./api";

type Handler = (url: string, init: RequestInit) => Response | Promise<Response>;

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

function envelopeError(status: number, code: string, message = "no", details: unknown = null): Response {
  return json(status, { success: false, error: { code, message, details, timestamp: "2026-12-05T00:00:00Z", requestId: "r1" } });
}

function pair(n: number) {
  return {
    success: true,
    data: {
      accessToken: `access-${n}`,
      refreshToken: `refresh-${n}`,
      tokenType: "Bearer",
      expiresIn: 900,
      user: { id: "u1", username: "admin", role: "admin", isActive: true, createdAt: "", updatedAt: "" },
    },
  };
}

function setup(handler: Handler, session = { accessToken: "access-0", refreshToken: "refresh-0" }) {
  const calls: { url: string; auth: string | undefined; body: unknown }[] = [];
  const fetchFn = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input);
    const headers = (init?.headers ?? {}) as Record<string, string>;
    calls.push({ url, auth: headers["authorization"], body: init?.body ? JSON.parse(String(init.body)) : undefined });
    return handler(url, init ?? {});
  });
  const store = memoryStore(session);
  const onSessionEnd = vi.fn();
  const client = new ApiClient({ store, onSessionEnd, fetch: fetchFn as unknown as typeof fetch });
  return { client, store, calls, onSessionEnd };
}

describe("ApiClient refresh", () => {
  it("sends the access token and returns the body", async () => {
    const { client, calls } = setup(() => json(200, { success: true, data: { n: 1 } }));
    await expect(client.get("/api/v1/auth/me")).resolves.toEqual({ success: true, data: { n: 1 } });
    expect(calls).toHaveLength(1);
    expect(calls[0]?.auth).toBe("Bearer access-0");
  });

  it("refreshes on 401 and retries once with the new token", async () => {
    const { client, store, calls, onSessionEnd } = setup((url, init) => {
      if (url.endsWith("/auth/refresh")) return json(200, pair(1));
      const auth = (init.headers as Record<string, string>)["authorization"];
      return auth === "Bearer access-1" ? json(200, { ok: true }) : envelopeError(401, "AUTH_TOKEN_EXPIRED");
    });
    await expect(client.get("/api/v1/cameras")).resolves.toEqual({ ok: true });
    expect(calls.map((c) => c.url)).toEqual(["/api/v1/cameras", "/api/v1/auth/refresh", "/api/v1/cameras"]);
    expect(calls[1]?.body).toEqual({ refreshToken: "refresh-0" });
    expect(calls[1]?.auth).toBeUndefined();
    expect(store.get()).toEqual({ accessToken: "access-1", refreshToken: "refresh-1" });
    expect(onSessionEnd).not.toHaveBeenCalled();
  });

  it("shares one refresh between concurrent 401s (refresh tokens are single-use)", async () => {
    let refreshes = 0;
    const { client } = setup(async (url, init) => {
      if (url.endsWith("/auth/refresh")) {
        refreshes += 1;
        await new Promise((r) => setTimeout(r, 5));
        return json(200, pair(refreshes));
      }
      const auth = (init.headers as Record<string, string>)["authorization"];
      return auth === "Bearer access-1" ? json(200, { url }) : envelopeError(401, "AUTH_TOKEN_EXPIRED");
    });
    const results = await Promise.all([
      client.get("/api/v1/cameras"),
      client.get("/api/v1/tokens"),
      client.get("/api/v1/auth/me"),
    ]);
    expect(results).toHaveLength(3);
    expect(refreshes).toBe(1);
  });

  it("ends the session when the refresh is refused", async () => {
    const { client, store, calls, onSessionEnd } = setup((url) =>
      url.endsWith("/auth/refresh") ? envelopeError(401, "AUTH_TOKEN_REVOKED") : envelopeError(401, "AUTH_TOKEN_EXPIRED"),
    );
    const err = await client.get("/api/v1/cameras").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(401);
    expect(calls).toHaveLength(2);
    expect(store.get()).toBeNull();
    expect(onSessionEnd).toHaveBeenCalledTimes(1);
  });

  it("retries only once: a second 401 ends the session", async () => {
    const { client, calls, store, onSessionEnd } = setup((url) =>
      url.endsWith("/auth/refresh") ? json(200, pair(1)) : envelopeError(401, "AUTH_TOKEN_INVALID"),
    );
    await expect(client.get("/api/v1/cameras")).rejects.toMatchObject({ status: 401, code: "AUTH_TOKEN_INVALID" });
    expect(calls).toHaveLength(3);
    expect(store.get()).toBeNull();
    expect(onSessionEnd).toHaveBeenCalledTimes(1);
  });

  it("does not refresh for a 403 or for login", async () => {
    const { client, calls } = setup(() => envelopeError(403, "AUTH_INSUFFICIENT_PERMISSIONS"));
    await expect(client.get("/api/v1/users")).rejects.toMatchObject({ status: 403 });
    await expect(client.login("admin", "wrong")).rejects.toMatchObject({ status: 403 });
    expect(calls).toHaveLength(2);
  });

  it("keeps the session when the refresh cannot reach the server", async () => {
    const { client, store, onSessionEnd } = setup((url) => {
      if (url.endsWith("/auth/refresh")) throw new TypeError("fetch failed");
      return envelopeError(401, "AUTH_TOKEN_EXPIRED");
    });
    await expect(client.get("/api/v1/cameras")).rejects.toMatchObject({ status: 401 });
    expect(store.get()).not.toBeNull();
    expect(onSessionEnd).not.toHaveBeenCalled();
  });

  it("login stores the session; logout forgets it even if the server fails", async () => {
    const { client, store } = setup((url) => (url.endsWith("/auth/login") ? json(200, pair(7)) : json(500, {})), null as never);
    await client.login("admin", "pw");
    expect(store.get()).toEqual({ accessToken: "access-7", refreshToken: "refresh-7" });
    await client.logout();
    expect(store.get()).toBeNull();
  });
});

describe("ApiError", () => {
  it("reads the envelope and its field messages", async () => {
    const { client } = setup(() =>
      envelopeError(400, "VALIDATION_FAILED", "bad", { fields: [{ field: "name", message: "must not be blank" }] }),
    );
    const err = (await client.post("/api/v1/cameras", { body: {} }).catch((e: unknown) => e)) as ApiError;
    expect(err.code).toBe("VALIDATION_FAILED");
    expect(err.fields).toEqual({ name: "must not be blank" });
    expect(err.requestId).toBe("r1");
  });

  it("describes a non-envelope answer by its status", async () => {
    const { client } = setup(() => new Response("<html>bad gateway</html>", { status: 502 }));
    await expect(client.get("/api/v1/cameras")).rejects.toMatchObject({ status: 502, code: "UNEXPECTED_RESPONSE" });
  });
});

describe("buildUrl", () => {
  it("fills and encodes path parameters and skips empty query values", () => {
    expect(buildUrl("", "/api/v1/cameras/{id}", { id: "a b/c" }, { page: 2, search: "", status: undefined })).toBe(
      "/api/v1/cameras/a%20b%2Fc?page=2",
    );
    expect(() => buildUrl("", "/api/v1/cameras/{id}")).toThrow(/missing path parameter id/);
  });
});
