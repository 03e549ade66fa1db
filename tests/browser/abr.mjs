// Plays a camera's multivariant playlist with hls.js in headless Chromium and throttles the
// network through Chrome DevTools (Network.emulateNetworkConditions) to see hls.js switch
// down to the lowest rendition, then lifts it to see it switch back up. Prints one JSON line:
// the switches (time, level, height), stalls with their durations, when the throttle went
// on and off, and hls.js errors.
//
// Usage: node abr.mjs <master playlist URL> <throttle kbit/s> <timeout seconds>
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { firstTab, launchChromium, servePages } from "./chromium.mjs";

const [src, kbpsArg, timeoutArg] = process.argv.slice(2);
const kbps = Number(kbpsArg ?? 700);
const deadline = Date.now() + Number(timeoutArg ?? 120) * 1000;
const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const server = await servePages({
  "/": ["text/html", readFileSync(join(here, "page.html"))],
  "/hls.min.js": ["text/javascript", readFileSync(require.resolve("hls.js/dist/hls.min.js"))],
});

const result = { ok: false, phase: "start", console: [] };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let browser;
try {
  browser = await launchChromium(["--disable-quic"]);
  const tab = await firstTab(browser.context, result.console);
  const cdp = await browser.context.newCDPSession(tab);
  await cdp.send("Network.enable");
  const throttle = (on) =>
    cdp.send("Network.emulateNetworkConditions", {
      offline: false,
      latency: on ? 20 : 0,
      downloadThroughput: on ? (kbps * 1000) / 8 : -1,
      uploadThroughput: -1,
    });
  await tab.goto(`${server.origin}/?src=${encodeURIComponent(src)}`);
  const look = () =>
    tab.evaluate(() => ({
      now: performance.now() | 0,
      playing: window.state.playing,
      levels: window.hls ? window.hls.levels.map((l) => l.height) : [],
      height: window.hls && window.hls.levels[window.hls.currentLevel] ? window.hls.levels[window.hls.currentLevel].height : null,
      fatal: window.state.fatal,
    }));
  // Waits until `pred(look())` holds; the phase names what it waited for.
  const until = async (phase, pred) => {
    result.phase = phase;
    for (;;) {
      const s = await look();
      if (s.fatal) throw new Error(`hls.js fatal error: ${JSON.stringify(s.fatal)}`);
      if (pred(s)) return s;
      if (Date.now() > deadline) throw new Error(`timed out: ${phase} (${JSON.stringify(s)})`);
      await sleep(250);
    }
  };
  const top = (s) => s.levels.length > 0 && s.height === Math.max(...s.levels);
  const low = (s) => s.levels.length > 0 && s.height === Math.min(...s.levels);
  const start = await until("playing on the top rendition", (s) => s.playing && top(s));
  result.levels = start.levels;
  await sleep(3000);
  result.throttledAt = (await look()).now;
  await throttle(true);
  result.down = (await until("switched down to the lowest rendition", low)).now;
  await sleep(3000);
  result.liftedAt = (await look()).now;
  await throttle(false);
  result.up = (await until("switched up again", (s) => !low(s))).now;
  await sleep(3000);
  const state = await tab.evaluate(() => window.state);
  result.switches = state.switches;
  result.stalls = state.stalls;
  result.errors = state.errors;
  result.ok = true;
} catch (e) {
  result.exception = String(e?.stack ?? e);
  try {
    const state = await browser?.context.pages()[0]?.evaluate(() => window.state);
    result.switches = state?.switches;
    result.stalls = state?.stalls;
    result.errors = state?.errors;
  } catch {
    // Best effort.
  }
} finally {
  await browser?.close();
  server.close();
}
console.log(JSON.stringify(result));
