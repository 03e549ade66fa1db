// What the browser runners share: a small HTTP server giving the test page its own origin
// (so playback depends on camstream's CORS headers, as a player on another site would), and
// headless Debian Chromium launched with the flags this machine's closed network needs.
import { createServer } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

// Serves `routes` (path → [content type, body]) on a free loopback port; "/favicon.ico" is
// an empty 204, anything else 404. Resolves to { origin, close }.
export async function servePages(routes) {
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    const hit = routes[path];
    if (hit) {
      res.writeHead(200, { "content-type": hit[0] }).end(hit[1]);
    } else if (path === "/favicon.ico") {
      res.writeHead(204).end();
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return { origin: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

// Headless Chromium in a fresh profile, with `extraArgs` after the common flags. The
// returned `close` ends the browser and removes the profile.
export async function launchChromium(extraArgs = []) {
  const userDataDir = mkdtempSync(join(tmpdir(), "camstream-chromium-"));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: "/usr/bin/chromium",
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        ...extraArgs,
      ],
    });
  } catch (e) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw e;
  }
  const close = async () => {
    await context.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  };
  return { context, close };
}

// The first tab of `context`, with console errors/warnings and page errors pushed to `log`.
export async function firstTab(context, log) {
  const tab = context.pages()[0] ?? (await context.newPage());
  tab.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") log.push(m.text());
  });
  tab.on("pageerror", (e) => log.push(`pageerror: ${e.message}`));
  return tab;
}
