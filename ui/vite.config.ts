import { defineConfig } from "vite";

// Tauri serves the built files from ui/dist; the dev server port matches tauri.conf.json.
export default defineConfig({
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: { outDir: "dist", emptyOutDir: true, target: "es2022" },
});
