// WHEP playback in headless Debian Chromium: opens N recvonly RTCPeerConnections against a
// camstream WHEP endpoint from a page on its own origin, measures time to first decoded
// frame, samples inbound-rtp framesDecoded every second for S seconds, DELETEs every
// session and watches the server's camstream_webrtc_sessions gauge drop. Prints one JSON
// line.
//
// Usage: node whep.mjs <WHEP URL> <sessions> <seconds> <metrics URL> [bearer token]
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const [url, nArg, secondsArg, metricsUrl, auth] = process.argv.slice(2);
const n = Number(nArg ?? 1);
const seconds = Number(secondsArg ?? 20);
const here = dirname(fileURLToPath(import.meta.url));
const page = readFileSync(join(here, "whep.html"));

const server = createServer((req, res) => {
  if (new URL(req.url, "http://x").pathname === "/") {
    res.writeHead(200, { "content-type": "text/html" }).end(page);
  } else {
    res.writeHead(404).end();
  }
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const origin = `http://127.0.0.1:${server.address().port}`;

async function gauge() {
  const text = await (await fetch(metricsUrl)).text();
  const line = text.split("\n").find((l) => l.startsWith("camstream_webrtc_sessions "));
  return line ? Number(line.split(" ")[1]) : null;
}

const userDataDir = mkdtempSync(join(tmpdir(), "camstream-chromium-"));
const result = { sessions: [], samples: [], console: [] };
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
      // Host candidates with real addresses, not mDNS names (the server is on loopback).
      "--disable-features=WebRtcHideLocalIpsWithMdns",
    ],
  });
  const tab = context.pages()[0] ?? (await context.newPage());
  tab.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") result.console.push(m.text());
  });
  tab.on("pageerror", (e) => result.console.push(`pageerror: ${e.message}`));
  await tab.goto(`${origin}/`);
  const started = Date.now();
  result.sessions = await tab.evaluate(
    ([u, k, a, poll]) => window.start(u, k, a, poll),
    [url, n, auth ?? null, n > 1 ? 100 : 10],
  );
  result.startedAfter = (Date.now() - started) / 1000;
  for (let t = 0; t < seconds; t++) {
    await new Promise((r) => setTimeout(r, 1000));
    result.samples.push({ t: (Date.now() - started) / 1000, s: await tab.evaluate(() => window.sample()) });
  }
  result.gaugeBefore = await gauge();
  result.deleteStatus = await tab.evaluate(() => window.remove());
  const deleted = Date.now();
  result.gaugeAfter = null;
  while (Date.now() - deleted < 3000) {
    result.gaugeAfter = await gauge();
    if (result.gaugeAfter === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  result.gaugeZeroAfter = (Date.now() - deleted) / 1000;
  await tab.evaluate(() => window.closeAll());
} catch (e) {
  result.exception = String(e && e.stack ? e.stack : e);
} finally {
  if (context) await context.close();
  server.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
