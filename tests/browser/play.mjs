// Plays an HLS playlist (LL-HLS live, or VOD) with hls.js in headless Debian Chromium and
// prints one JSON line: how far playback advanced, hls.js's live latency samples, every
// hls.js error, and where playback waited for data once started (a VOD stops at its end).
//
// Usage: node play.mjs <playlist URL> <seconds of playback wanted> <timeout seconds>
// The page is served from its own origin (a small HTTP server here) so that playback
// depends on camstream's CORS headers, as a player on another site would.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { firstTab, launchChromium, servePages } from "./chromium.mjs";

const [src, wantArg, timeoutArg] = process.argv.slice(2);
const want = Number(wantArg ?? 6);
const timeoutMs = Number(timeoutArg ?? 60) * 1000;
const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const hlsJs = readFileSync(require.resolve("hls.js/dist/hls.min.js"));
const page = readFileSync(join(here, "page.html"));

const server = await servePages({
  "/": ["text/html", page],
  "/hls.min.js": ["text/javascript", hlsJs],
});
const origin = server.origin;

const result = { ok: false, samples: [], errors: [], console: [], failedRequests: [], requests: 0 };
let browser;
try {
  browser = await launchChromium(["--disable-quic"]);
  const tab = await firstTab(browser.context, result.console);
  const started = Date.now();
  tab.on("requestfinished", async (req) => {
    result.requests += 1;
    const res = await req.response().catch(() => null);
    if (res && res.status() >= 400) {
      result.failedRequests.push({ t: (Date.now() - started) / 1000, url: req.url(), status: res.status() });
    }
  });
  tab.on("requestfailed", (req) => {
    result.failedRequests.push({ t: (Date.now() - started) / 1000, url: req.url(), failure: req.failure()?.errorText });
  });
  await tab.goto(`${origin}/?src=${encodeURIComponent(src)}`);
  let first = null;
  for (;;) {
    const s = await tab.evaluate(() => {
      const v = document.getElementById("video");
      const h = window.hls;
      return {
        state: window.state,
        currentTime: v.currentTime,
        paused: v.paused,
        readyState: v.readyState,
        latency: h ? h.latency : null,
        // Wall-clock age of the frame on screen, from EXT-X-PROGRAM-DATE-TIME (the server's
        // receive time): ingest-to-display latency on this one machine.
        wallLatency: h && h.playingDate ? (Date.now() - h.playingDate.getTime()) / 1000 : null,
        targetLatency: h ? h.targetLatency : null,
        liveSyncPosition: h ? h.liveSyncPosition : null,
        buffered: v.buffered.length ? v.buffered.end(v.buffered.length - 1) - v.currentTime : 0,
        ranges: Array.from({ length: v.buffered.length }, (_, i) => [v.buffered.start(i), v.buffered.end(i)]),
      };
    });
    const t = (Date.now() - started) / 1000;
    result.state = s.state;
    result.errors = s.state.errors;
    if (s.state.playing && s.currentTime > 0) {
      if (first === null) first = { t, currentTime: s.currentTime };
      result.samples.push({
        t,
        currentTime: s.currentTime,
        latency: s.latency,
        wallLatency: s.wallLatency,
        targetLatency: s.targetLatency,
        liveSyncPosition: s.liveSyncPosition,
        buffered: s.buffered,
      });
      result.ranges = s.ranges;
      result.firstFrameAfter = first.t;
      result.advanced = s.currentTime - first.currentTime;
      result.wall = t - first.t;
    }
    if (s.state.fatal) {
      result.fatal = s.state.fatal;
      break;
    }
    if (result.advanced >= want) {
      result.ok = true;
      break;
    }
    if (s.state.ended) {
      result.ended = true;
      break;
    }
    if (Date.now() - started > timeoutMs) {
      result.timeout = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
} catch (e) {
  result.exception = String(e && e.stack ? e.stack : e);
} finally {
  if (browser) await browser.close();
  server.close();
}
console.log(JSON.stringify(result));
