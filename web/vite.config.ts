/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";
import tailwindcss from "@tailwindcss/vite";

// In development the hub runs on :8080 (`make run`); Vite serves the app and passes the API
// and the socket through, so the browser sees one origin as it does in production.
const hub = process.env.CP_HUB_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react(), tailwindcss()],
  server: {
    host: "127.0.0.1",
    proxy: {
      "/api": { target: hub, ws: true, changeOrigin: false },
    },
  },
  build: {
    outDir: "dist",
    // Hashed file names under /assets/: the hub serves them as immutable.
    assetsDir: "assets",
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
