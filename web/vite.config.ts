import { fileURLToPath, URL } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// `npm run dev` proxies the planes to a running `camstream serve` (CAMSTREAM_URL, default
// http://127.0.0.1:8080), so the dashboard reloads on save while talking to the real API.
const target = process.env.CAMSTREAM_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  resolve: { alias: { "@": fileURLToPath(new URL("./src", import.meta.url)) } },
  server: {
    proxy: Object.fromEntries(["/api", "/hls", "/vod", "/whep"].map((p) => [p, { target, changeOrigin: false }])),
  },
  build: { outDir: "dist", assetsDir: "assets", sourcemap: false, chunkSizeWarningLimit: 700 },
  test: { environment: "node", include: ["src/**/*.test.ts", "src/**/*.test.tsx"] },
});
