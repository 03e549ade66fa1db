// WHEP playback in headless Debian Chromium: opens N recvonly RTCPeerConnections against a
// camstream WHEP endpoint from a page on its own origin, measures time to first decoded
// frame, samples inbound-rtp framesDecoded every second for S seconds, DELETEs every
// session and watches the server's camstream_webrtc_sessions gauge drop. Prints one JSON
// line.
//
// Usage: node whep.mjs <WHEP URL> <sessions> <seconds> <metrics URL or ""> [bearer token]
// With WHEP_G2G_EPOCH_MS set (camstream-bench webrtc: the wall time, ms, its marker clock
// started at), the result also holds `g2g`: glass-to-glass samples in ms (whep.html).
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { firstTab, launchChromium, servePages } from "./chromium.mjs";

const [url, nArg, secondsArg, metricsUrl, auth] = process.argv.slice(2);
const n = Number(nArg ?? 1);
const seconds = Number(secondsArg ?? 20);
const here = dirname(fileURLToPath(import.meta.url));
const page = readFileSync(join(here, "whep.html"));

const server = await servePages({ "/": ["text/html", page] });
const origin = server.origin;

const g2gEpochMs = process.env.WHEP_G2G_EPOCH_MS ? Number(process.env.WHEP_G2G_EPOCH_MS) : null;

async function gauge() {
  if (!metricsUrl) return null;
  const text = await (await fetch(metricsUrl)).text();
  const line = text.split("\n").find((l) => l.startsWith("camstream_webrtc_sessions "));
  return line ? Number(line.split(" ")[1]) : null;
}

const result = { sessions: [], samples: [], console: [] };
let browser;
try {
  // Host candidates with real addresses, not mDNS names (the server is on loopback).
  browser = await launchChromium(["--disable-features=WebRtcHideLocalIpsWithMdns"]);
  const tab = await firstTab(browser.context, result.console);
  await tab.goto(`${origin}/`);
  const started = Date.now();
  result.sessions = await tab.evaluate(
    ([u, k, a, poll, e]) => window.start(u, k, a, poll, e ?? undefined),
    [url, n, auth || null, n > 1 ? 100 : 10, g2gEpochMs],
  );
  result.startedAfter = (Date.now() - started) / 1000;
  for (let t = 0; t < seconds; t++) {
    await new Promise((r) => setTimeout(r, 1000));
    result.samples.push({ t: (Date.now() - started) / 1000, s: await tab.evaluate(() => window.sample()) });
  }
  if (g2gEpochMs !== null) result.g2g = await tab.evaluate(() => window.g2g);
  result.gaugeBefore = await gauge();
  result.deleteStatus = await tab.evaluate(() => window.remove());
  const deleted = Date.now();
  result.gaugeAfter = null;
  while (metricsUrl && Date.now() - deleted < 3000) {
    result.gaugeAfter = await gauge();
    if (result.gaugeAfter === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  result.gaugeZeroAfter = (Date.now() - deleted) / 1000;
  await tab.evaluate(() => window.closeAll());
} catch (e) {
  result.exception = String(e && e.stack ? e.stack : e);
} finally {
  if (browser) await browser.close();
  server.close();
}
console.log(JSON.stringify(result));
