// End-to-end run of the dashboard against a real `camstream serve` (started by
// tests/dashboard/main.rs): log in, create a camera (and see the API's field error on a
// duplicate serial), see it in the fleet table, open its page and the live grid, create and
// revoke an API token, check a viewer sees no edit controls, log out. Screenshots of each
// screen go to SHOTS_DIR. playwright-core drives Debian's /usr/bin/chromium; it downloads
// nothing.
//
// Env: CAMSTREAM_URL (http://127.0.0.1:PORT), ADMIN_PASSWORD, SHOTS_DIR, CLIP (an FLV file
// ffmpeg publishes in a loop, `-c copy`, to the RTMP URL the UI shows; its H.264 has
// B-frames), CLIP_WEBRTC (the same without B-frames: the second camera, played over WebRTC).
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const axePath = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

const base = process.env.CAMSTREAM_URL;
const adminPassword = process.env.ADMIN_PASSWORD;
const shots = process.env.SHOTS_DIR ?? "shots";
const clip = process.env.CLIP;
const clipWebrtc = process.env.CLIP_WEBRTC;
let publisher = null;
let publisher2 = null;
if (!base || !adminPassword || !clip || !clipWebrtc) throw new Error("CAMSTREAM_URL, ADMIN_PASSWORD, CLIP and CLIP_WEBRTC are required");
mkdirSync(shots, { recursive: true });
rmSync(join(shots, "failure.png"), { force: true });

const TIMEOUT = 15_000;
const problems = [];
const steps = [];
const step = (s) => {
  steps.push(s);
  console.log(`step: ${s}`);
};

function expect(cond, what) {
  if (!cond) throw new Error(`expected: ${what}`);
}

// Playwright bounds its waits, not `evaluate` or closing the browser: those get a deadline.
function within(ms, what, promise) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

// Mean brightness (0–255) of what a <video> shows (run in the page).
function meanBrightness(v) {
  const c = document.createElement("canvas");
  c.width = 64;
  c.height = 36;
  const g = c.getContext("2d");
  g.drawImage(v, 0, 0, c.width, c.height);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let sum = 0;
  for (let k = 0; k < d.length; k += 4) sum += d[k] + d[k + 1] + d[k + 2];
  return sum / (d.length / 4) / 3;
}

// The server's open WebRTC sessions (the data plane's gauge in /metrics).
async function webrtcSessions() {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("camstream_webrtc_sessions "));
  return line ? Number(line.split(" ")[1]) : 0;
}

const userDataDir = mkdtempSync(join(tmpdir(), "camstream-dashboard-"));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    acceptDownloads: true,
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 800 },
    colorScheme: "light",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  context.setDefaultTimeout(TIMEOUT);
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  // Resolves when the page saved a layout (POST or PUT /api/v1/layouts, 200/201) whose
  // body satisfies `pred`.
  const layoutSaved = (pred, timeout = TIMEOUT) =>
    page.waitForResponse((r) => {
      const q = r.request();
      if (!/\/api\/v1\/layouts/.test(q.url()) || q.method() === "GET" || !r.ok()) return false;
      try {
        return pred(q.postDataJSON());
      } catch {
        return false;
      }
    }, { timeout });
  page.on("console", (m) => {
    // 4xx answers the test provokes on purpose show up as console errors of the network layer.
    if (m.type() === "error" && !/status of 40[0-9]/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  // Each screenshot is also an accessibility check: axe-core must find nothing serious.
  const shot = async (name) => {
    await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
    await page.addScriptTag({ path: axePath });
    const found = await within(30_000, `axe on ${name}`, page.evaluate(async () => {
      const r = await globalThis.axe.run(document, { resultTypes: ["violations"] });
      return r.violations
        .filter((v) => v.impact === "serious" || v.impact === "critical")
        .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | ")}`);
    }));
    for (const v of found) problems.push(`axe on ${name}: ${v}`);
  };

  step("the app redirects to the login page");
  await page.goto(`${base}/cameras`);
  await page.getByRole("heading", { name: "Sign in to camstream" }).waitFor();
  expect(new URL(page.url()).pathname === "/login", `at /login, not ${page.url()}`);
  await shot("01-login");

  step("wrong password is refused with a message");
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel("Password").fill("not-the-password-1");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: /wrong username or password|too many/i }).waitFor();

  step("log in");
  await page.getByLabel("Password").fill(adminPassword);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Fleet" }).waitFor();
  await page.getByText("No cameras match").waitFor();
  await page.getByRole("term").filter({ hasText: "Cameras" }).waitFor();
  await shot("02-fleet-empty");

  step("create a camera; the stream key is shown once");
  await page.getByRole("button", { name: "Add camera" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByLabel("Name").fill("E2E Front door");
  await dialog.getByLabel("Serial number").fill("E2E-SN-1");
  await dialog.getByLabel("Company").fill("acme");
  await dialog.getByRole("button", { name: "Create camera" }).click();
  await page.getByRole("dialog", { name: "Publish to E2E Front door" }).waitFor();
  const key = await page.getByTestId("secret-Stream key").textContent();
  const rtmp = await page.getByTestId("secret-RTMP URL").textContent();
  expect(key && key.length >= 20, `a stream key, got ${key}`);
  expect(rtmp?.startsWith("rtmp://") && rtmp.endsWith(key), `RTMP URL with the key, got ${rtmp}`);
  await shot("03-camera-created-key");
  await page.getByRole("button", { name: "Done" }).click();

  step("the camera is in the fleet table and goes online when ffmpeg publishes to the URL shown");
  const row = page.getByTestId("camera-row").filter({ hasText: "E2E Front door" });
  await row.waitFor();
  expect((await row.textContent()).includes("E2E-SN-1"), "serial in the row");
  publisher = spawn("ffmpeg", ["-hide_banner", "-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i", clip, "-c", "copy", "-f", "flv", rtmp], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  await row.getByText("Online").waitFor({ timeout: 30_000 });
  await row.getByRole("checkbox", { name: "E2E Front door recording" }).check();
  await page.waitForFunction(() => document.querySelector('input[aria-label="E2E Front door recording"]')?.checked === true);
  await shot("04-fleet");

  step("a second camera, published too");
  await page.getByRole("button", { name: "Add camera" }).click();
  await dialog.getByLabel("Name").fill("E2E Back door");
  await dialog.getByLabel("Serial number").fill("E2E-SN-2");
  await dialog.getByLabel("Company").fill("acme");
  await dialog.getByRole("button", { name: "Create camera" }).click();
  await page.getByRole("dialog", { name: "Publish to E2E Back door" }).waitFor();
  const rtmp2 = await page.getByTestId("secret-RTMP URL").textContent();
  await page.getByRole("button", { name: "Done" }).click();
  publisher2 = spawn("ffmpeg", ["-hide_banner", "-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i", clipWebrtc, "-c", "copy", "-f", "flv", rtmp2], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const row2 = page.getByTestId("camera-row").filter({ hasText: "E2E Back door" });
  await row2.getByText("Online").waitFor({ timeout: 30_000 });

  step("the live grid plays both cameras (each tile's time advances, its frame is not black)");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Live" }).click();
  await page.getByRole("heading", { name: "Live" }).waitFor();
  const videos = page.getByTestId("live-video");
  await videos.nth(1).waitFor();
  for (const i of [0, 1]) {
    await page.waitForFunction((n) => (document.querySelectorAll('[data-testid="live-video"]')[n]?.currentTime ?? 0) > 0.5, i, { timeout: 30_000 });
    const t0 = await videos.nth(i).evaluate((v) => v.currentTime);
    await page.waitForFunction(([n, t]) => (document.querySelectorAll('[data-testid="live-video"]')[n]?.currentTime ?? 0) > t + 1.5, [i, t0], { timeout: 15_000 });
    const brightness = await videos.nth(i).evaluate(meanBrightness);
    expect(brightness > 20, `tile ${i}: a frame that is not black (mean ${brightness.toFixed(1)})`);
    console.log(`live tile ${i}: currentTime ${t0.toFixed(2)} s then +1.5 s, mean brightness ${brightness.toFixed(1)}`);
  }
  await shot("04b-live-playing");

  step("switch the Back door tile (no B-frames) to WebRTC: frames are decoded, the choice is saved with the layout");
  const liveTile = (name) => page.getByTestId("live-tile").filter({ has: page.getByRole("link", { name, exact: true }) });
  const back = liveTile("E2E Back door");
  const backVideo = await back.getByTestId("live-video").elementHandle();
  const whepPosts = [];
  const onWhepRequest = (q) => {
    if (/\/whep\//.test(q.url()) && q.method() === "POST") whepPosts.push(q.url());
  };
  page.on("request", onWhepRequest);
  const posted = page.waitForResponse((r) => /\/whep\//.test(r.url()) && r.request().method() === "POST", { timeout: 30_000 });
  const savedWebrtc = layoutSaved((b) => b.tiles.some((t) => t.playback === "webrtc"));
  posted.catch(() => {});
  savedWebrtc.catch(() => {});
  const switched = Date.now();
  await back.getByLabel("Playback of E2E Back door").selectOption("webrtc");
  const answer = await posted;
  expect(answer.status() === 201, `WHEP answered 201, got ${answer.status()}: ${await answer.text().catch(() => "")}`);
  expect(!/token=/.test(answer.headers()["location"] ?? "token="), `a session Location without the token: ${answer.headers()["location"]}`);
  await page.waitForFunction((v) => v.dataset.state === "playing", backVideo, { timeout: 30_000 });
  const firstFrameMs = Date.now() - switched;
  expect((await back.getByTestId("playback-badge").textContent()) === "WebRTC", "the WebRTC badge (no rendition: the camera plays as it is)");
  const quality = () => backVideo.evaluate((v) => ({ frames: v.getVideoPlaybackQuality().totalVideoFrames, t: performance.now() }));
  const q0 = await quality();
  // 60 frames are 2 s of the 30 fps camera; a stalled player fails here.
  await page.waitForFunction(([v, f]) => v.getVideoPlaybackQuality().totalVideoFrames >= f + 60, [backVideo, q0.frames], { timeout: 15_000 });
  const q1 = await quality();
  const fps = ((q1.frames - q0.frames) * 1000) / (q1.t - q0.t);
  const webrtcBrightness = await backVideo.evaluate(meanBrightness);
  expect(webrtcBrightness > 20, `the WebRTC tile shows a frame that is not black (mean ${webrtcBrightness.toFixed(1)})`);
  await savedWebrtc;
  expect((await webrtcSessions()) === 1, "one WebRTC session on the server");
  expect(whepPosts.length === 1, `one offer, got ${whepPosts.length}`);
  console.log(`webrtc tile: first frame ${firstFrameMs} ms after the switch, ${q1.frames - q0.frames} frames in ${((q1.t - q0.t) / 1000).toFixed(2)} s (${fps.toFixed(1)} fps), mean brightness ${webrtcBrightness.toFixed(1)}`);
  await shot("04b1-live-webrtc");

  step("switch it back to LL-HLS: the WebRTC session is DELETEd and the tile plays HLS again");
  const deleted = page.waitForResponse((r) => /\/whep\//.test(r.url()) && r.request().method() === "DELETE", { timeout: 15_000 });
  const savedHls = layoutSaved((b) => !b.tiles.some((t) => t.playback === "webrtc"));
  deleted.catch(() => {});
  savedHls.catch(() => {});
  await back.getByLabel("Playback of E2E Back door").selectOption("hls");
  const del = await deleted;
  expect(del.status() === 200, `DELETE answered 200, got ${del.status()}`);
  let sessions = await webrtcSessions();
  for (const until = Date.now() + 10_000; sessions !== 0 && Date.now() < until; sessions = await webrtcSessions()) {
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(sessions === 0, `no WebRTC session left on the server, ${sessions} open`);
  await savedHls;
  await page.waitForFunction((v) => v.dataset.playback === "hls" && v.srcObject === null && v.currentTime > 0.5, backVideo, { timeout: 30_000 });
  const th = await backVideo.evaluate((v) => v.currentTime);
  await page.waitForFunction(([v, t]) => v.currentTime > t + 1.5, [backVideo, th], { timeout: 15_000 });
  page.off("request", onWhepRequest);

  step("a camera with B-frames and no ABR is refused over WebRTC with the server's reason");
  const front = liveTile("E2E Front door");
  const frontVideo = await front.getByTestId("live-video").elementHandle();
  const refused = page.waitForResponse((r) => /\/whep\//.test(r.url()) && r.request().method() === "POST", { timeout: 30_000 });
  refused.catch(() => {});
  await front.getByLabel("Playback of E2E Front door").selectOption("webrtc");
  expect((await refused).status() === 409, "WHEP answered 409 for the B-frame camera");
  await page.waitForFunction((v) => v.dataset.state === "failed", frontVideo, { timeout: 15_000 });
  const reason = await front.getByTestId("player-state").textContent();
  expect(/B-frames/.test(reason ?? ""), `the tile says why: ${reason}`);
  console.log(`webrtc on a B-frame camera: ${reason}`);
  await shot("04b2-live-webrtc-refused");
  const frontHls = layoutSaved((b) => !b.tiles.some((t) => t.playback === "webrtc"));
  frontHls.catch(() => {});
  await front.getByLabel("Playback of E2E Front door").selectOption("hls");
  await frontHls;

  step("3×3, drag the first tile to an empty slot; the layout survives a reload");
  await page.getByRole("button", { name: "3×3" }).click();
  expect((await page.getByTestId("live-tile").count()) === 9, "nine tiles in 3×3");
  const tiles = page.getByTestId("live-tile");
  const firstName = (await tiles.nth(0).getByRole("link").first().textContent())?.trim();
  expect(firstName?.startsWith("E2E"), `a camera in the first slot, got ${firstName}`);
  // The layout is saved through /api/v1/layouts: wait for the save of the moved grid.
  // A drag that the grid did not take (its pointer sensor missed the start) is tried again:
  // three attempts, each given 5 s to show the move, all within the save's 45 s.
  const moved = layoutSaved((b) => b.columns === 3 && b.tiles.some((t) => t.position === 2) && !b.tiles.some((t) => t.position === 0), 45_000);
  moved.catch(() => {}); // awaited below; an early timeout must not end the runner unhandled
  let dragged = false;
  for (let attempt = 1; attempt <= 3 && !dragged; attempt++) {
    await page.getByTestId("tile-handle").first().dragTo(tiles.nth(2));
    dragged = await tiles
      .nth(2)
      .getByRole("link", { name: firstName })
      .waitFor({ timeout: 5_000 })
      .then(() => true, () => false);
    if (!dragged) console.log(`drag attempt ${attempt}: the tile did not move`);
  }
  expect(dragged, "the first tile moved to the third slot");
  await moved;
  await page.reload();
  await tiles.nth(2).getByRole("link", { name: firstName }).waitFor();
  expect((await tiles.nth(0).getByRole("link").count()) === 0, "the first slot is empty after the move");
  await shot("04c-live-3x3-moved");

  step("save the grid as a second layout, make it the default; a reload shows it");
  await page.getByLabel("Save as a new layout").fill("Night shift");
  await page.getByRole("button", { name: "Save as new" }).click();
  await page.waitForFunction(() => document.querySelector("#layout-pick")?.selectedOptions[0]?.textContent === "Night shift");
  await page.getByRole("button", { name: "Make default" }).click();
  await page.waitForFunction(() => document.querySelector("#layout-pick")?.selectedOptions[0]?.textContent === "Night shift (default)");
  await page.reload();
  await page.waitForFunction(() => document.querySelector("#layout-pick")?.selectedOptions[0]?.textContent === "Night shift (default)");
  expect((await page.locator("#layout-pick option").count()) === 2, "two saved layouts");
  await tiles.nth(2).getByRole("link", { name: firstName }).waitFor();
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Fleet" }).click();
  await row.waitFor();

  step("a duplicate serial number shows the API's message on the field");
  await page.getByRole("button", { name: "Add camera" }).click();
  await dialog.getByLabel("Name").fill("E2E Duplicate");
  await dialog.getByLabel("Serial number").fill("E2E-SN-1");
  await dialog.getByRole("button", { name: "Create camera" }).click();
  const serial = dialog.getByLabel("Serial number");
  await page.waitForFunction(() => document.querySelector('input[name="serialNumber"]')?.getAttribute("aria-invalid") === "true");
  const described = await serial.getAttribute("aria-describedby");
  const msg = await page.locator(`[id="${described}"]`).textContent();
  expect(msg && msg.length > 0, "a message tied to the serial field");
  await shot("05-camera-validation");
  await dialog.getByRole("button", { name: "Cancel" }).click();

  step("camera page");
  await row.getByRole("link", { name: "E2E Front door" }).click();
  await page.getByRole("heading", { name: "E2E Front door" }).waitFor();
  await page.getByRole("heading", { name: /Today/ }).waitFor();
  await page.getByText(/\d+ fps/).first().waitFor();
  // The last hour's health: the camera has streamed for a while, so the charts have a line.
  await page.getByTestId("health-fps").waitFor();
  const line = await page.getByTestId("health-fps").locator("path").getAttribute("d");
  expect(line && line.startsWith("M"), `an fps line, got ${line}`);
  await page.getByText("Adaptive bitrate", { exact: true }).waitFor();
  await shot("06-camera-detail");

  step("recordings: the timeline shows what was recorded; a click plays it at that wall-clock time (± 1 s)");
  const bar = page.getByTestId("timeline-bar");
  await page.waitForFunction(() => (document.querySelector('[data-testid="timeline-bar"]')?.children.length ?? 0) > 0, null, { timeout: 60_000 });
  const box = await bar.locator("div").first().boundingBox();
  await bar.click({ position: { x: box.x - (await bar.boundingBox()).x + box.width * 0.3, y: 10 } });
  const panel = page.locator("[data-seek-target]");
  await page.waitForFunction(() => document.querySelector("[data-position]")?.getAttribute("data-position") !== "", null, { timeout: 30_000 });
  const target = Number(await panel.getAttribute("data-seek-target"));
  const position = Number(await panel.getAttribute("data-position"));
  console.log(`recording: asked ${new Date(target).toISOString()}, playing ${new Date(position).toISOString()} (${position - target} ms)`);
  expect(Math.abs(position - target) <= 1_000, `playback at the chosen time ± 1 s (off by ${position - target} ms)`);
  const vod = page.getByTestId("vod-video");
  const v0 = await vod.evaluate((v) => v.currentTime);
  await page.waitForFunction((t) => (document.querySelector('[data-testid="vod-video"]')?.currentTime ?? 0) > t + 1, v0, { timeout: 15_000 });
  await page.getByLabel("Speed").selectOption("2");
  expect((await vod.evaluate((v) => v.playbackRate)) === 2, "2× speed");
  await shot("06b-camera-recording");

  step("recordings: download the file under the playhead through its signed URL");
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download this recording file" }).click()]);
  const failure = await download.failure();
  expect(failure === null, `the download completes (${failure})`);
  expect(/\.mp4$/.test(download.suggestedFilename()), `an .mp4 file, got ${download.suggestedFilename()}`);

  step("recordings: download a minute from the playhead as one file (signed export URL)");
  const [ranged] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download range as one file" }).click()]);
  expect((await ranged.failure()) === null, "the range download completes");
  const rangedPath = await ranged.path();
  const head = readFileSync(rangedPath).subarray(4, 8).toString("latin1");
  expect(head === "ftyp", `an MP4 (ftyp first), got ${JSON.stringify(head)}`);
  expect(/\.mp4$/.test(ranged.suggestedFilename()), `an .mp4 file, got ${ranged.suggestedFilename()}`);

  step("recordings: bookmark the moment, then jump back to it as the previous event");
  await page.getByLabel("Bookmark this moment").fill("e2e-mark");
  // The bookmark's time is the playhead when the button is pressed: read it from the API's
  // answer (reading the playhead before typing the label raced with playback under load).
  const created = page.waitForResponse((r) => r.url().includes("/api/v1/recordings/bookmarks") && r.request().method() === "POST");
  await page.getByRole("button", { name: "Add bookmark" }).click();
  const markedAt = Date.parse((await (await created).json()).data.at);
  expect(Number.isFinite(markedAt), "the bookmark's time");
  await page.getByText("Bookmark added.").waitFor();
  await bar.locator('[title^="e2e-mark"]').waitFor({ state: "attached" });
  const v1 = await vod.evaluate((v) => v.currentTime);
  await page.waitForFunction((t) => (document.querySelector('[data-testid="vod-video"]')?.currentTime ?? 0) > t + 2.5, v1, { timeout: 15_000 });
  await page.getByRole("button", { name: "◀ Previous event" }).click();
  await page.waitForFunction((t) => Math.abs(Number(document.querySelector("[data-seek-target]")?.getAttribute("data-seek-target")) - t) < 1_500, markedAt, { timeout: 10_000 });

  step("live grid");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Live" }).click();
  await page.getByRole("heading", { name: "Live" }).waitFor();
  await page.getByTestId("live-tile").first().waitFor();
  const single = layoutSaved((b) => b.columns === 1);
  await page.getByRole("button", { name: "1×1" }).click();
  expect((await page.getByTestId("live-tile").count()) === 1, "one tile in 1×1");
  await single;
  await page.reload();
  await page.getByTestId("live-tile").first().waitFor();
  expect((await page.getByTestId("live-tile").count()) === 1, "the 1×1 layout survives a reload");
  await shot("07-live");

  step("create and revoke an API token");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "API tokens" }).click();
  await page.getByRole("heading", { name: "API tokens" }).waitFor();
  await page.getByRole("button", { name: "New token" }).click();
  await dialog.getByLabel("Name").fill("e2e-token");
  await dialog.getByRole("button", { name: "Create token" }).click();
  const secret = await page.getByTestId("secret-Token").textContent();
  expect(secret?.startsWith("cst_"), `a cst_ token, got ${secret}`);
  const me = await fetch(`${base}/api/v1/auth/me`, { headers: { authorization: `Bearer ${secret}` } });
  expect(me.ok, `the new token works (${me.status})`);
  await shot("08-token-created");
  await page.getByRole("button", { name: "Done" }).click();
  const tokenRow = page.getByTestId("token-row").filter({ hasText: "e2e-token" });
  await tokenRow.getByRole("button", { name: "Revoke e2e-token" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Revoke" }).click();
  await tokenRow.getByText(/Revoked/).waitFor();
  const after = await fetch(`${base}/api/v1/auth/me`, { headers: { authorization: `Bearer ${secret}` } });
  expect(after.status === 401, `the revoked token is refused (${after.status})`);
  await shot("09-tokens");

  step("dark theme");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Fleet" }).click();
  await page.getByRole("button", { name: "Switch to dark theme" }).click();
  await row.waitFor();
  await shot("10-fleet-dark");
  await page.getByRole("button", { name: "Switch to light theme" }).click();

  step("an access token the server refuses is refreshed and the request retried");
  await page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem("camstream.session"));
    localStorage.setItem("camstream.session", JSON.stringify({ ...s, accessToken: "expired.or.forged" }));
  });
  await page.reload();
  await row.waitFor();
  const refreshed = await page.evaluate(() => JSON.parse(localStorage.getItem("camstream.session")));
  expect(refreshed.accessToken !== "expired.or.forged", "a new access token after the refresh");

  step("a refused refresh ends the session: back to login with a notice");
  await page.evaluate(() => {
    localStorage.setItem("camstream.session", JSON.stringify({ accessToken: "expired.or.forged", refreshToken: "csr_not-a-real-token" }));
  });
  await page.reload();
  await page.getByText("Your session has ended").waitFor();
  expect((await page.evaluate(() => localStorage.getItem("camstream.session"))) === null, "the session is forgotten");
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel("Password").fill(adminPassword);
  await page.getByRole("button", { name: "Sign in" }).click();
  await row.waitFor();

  step("storage usage");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Storage" }).click();
  await page.getByRole("heading", { name: "Per tier" }).waitFor();
  await shot("12a-storage");

  step("nodes: a single node has no Nodes link, and the page says why");
  expect((await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Nodes" }).count()) === 0, "no Nodes link on a single node");
  await page.goto(`${base}/nodes`);
  await page.getByText("A single node", { exact: true }).waitFor();
  await shot("12b-nodes-single");

  step("alerts: the camera stops publishing → CAMERA_OFFLINE in the bell and on the alerts page; acknowledge it");
  publisher.kill("SIGKILL");
  const bell = (n) => page.getByRole("link", { name: `Alerts: ${n} open` });
  await bell(1).waitFor({ timeout: 60_000 });
  await bell(1).click();
  await page.getByRole("heading", { name: "Alerts" }).waitFor();
  const alertRow = page.getByTestId("alert-row").filter({ hasText: "CAMERA_OFFLINE" });
  await alertRow.waitFor();
  expect((await alertRow.textContent()).includes("E2E Front door"), "the alert names the camera");
  await shot("12c-alerts");
  await alertRow.getByRole("button", { name: /^Acknowledge/ }).click();
  await alertRow.getByText(/acknowledged/).waitFor();
  await bell(0).waitFor();

  step("users: create a viewer in the camera's company (a weak password shows the API's message)");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Users" }).click();
  await page.getByRole("heading", { name: "Users" }).waitFor();
  await page.getByTestId("user-row").filter({ hasText: "(you)" }).waitFor();
  await page.getByRole("button", { name: "Add user" }).click();
  const viewerPassword = "Viewer-Pass-2026!";
  await dialog.getByLabel("Username").fill("e2e-viewer");
  await dialog.getByLabel("Password").fill("short");
  await dialog.getByLabel("Role").selectOption("viewer");
  await dialog.getByLabel("Company").fill("acme");
  await dialog.getByRole("button", { name: "Create user" }).click();
  await page.waitForFunction(() => document.querySelector('input[name="password"]')?.getAttribute("aria-invalid") === "true");
  await shot("12-user-validation");
  await dialog.getByLabel("Password").fill(viewerPassword);
  await dialog.getByRole("button", { name: "Create user" }).click();
  await page.getByTestId("user-row").filter({ hasText: "e2e-viewer" }).waitFor();
  await shot("13-users");

  step("log out");
  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByRole("heading", { name: "Sign in to camstream" }).waitFor();
  await page.goto(`${base}/cameras`);
  await page.getByRole("heading", { name: "Sign in to camstream" }).waitFor();

  step("a viewer sees the camera but no edit controls");
  await page.getByLabel("Username").fill("e2e-viewer");
  await page.getByLabel("Password").fill(viewerPassword);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Fleet" }).waitFor();
  await row.waitFor();
  expect((await page.getByRole("button", { name: "Add camera" }).count()) === 0, "no Add camera for a viewer");
  expect((await page.getByRole("button", { name: /^(Edit|Delete|Rotate)/ }).count()) === 0, "no row actions for a viewer");
  expect((await page.getByRole("checkbox").count()) === 0, "no toggles for a viewer");
  expect((await page.getByRole("link", { name: "API tokens" }).count()) === 0, "no tokens page for a viewer");
  expect((await page.getByRole("link", { name: "Users" }).count()) === 0, "no users page for a viewer");
  await shot("11-fleet-viewer");
  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByRole("heading", { name: "Sign in to camstream" }).waitFor();

  if (problems.length) throw new Error(`browser problems:\n${problems.join("\n")}`);
  console.log(JSON.stringify({ ok: true, steps }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, steps, error: String(e?.stack ?? e), problems }));
  try {
    await context?.pages()[0]?.screenshot({ path: join(shots, "failure.png"), fullPage: true });
  } catch {
    // Best effort.
  }
  process.exitCode = 1;
} finally {
  publisher?.kill("SIGKILL");
  publisher2?.kill("SIGKILL");
  await within(20_000, "closing Chromium", context?.close() ?? Promise.resolve()).catch((e) => {
    console.log(String(e));
    process.exitCode = 1;
  });
  rmSync(userDataDir, { recursive: true, force: true });
}
