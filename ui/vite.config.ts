import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// The desktop shell loads ui/dist; vitest runs the unit tests against the mock backend.
export default defineConfig({
  plugins: [svelte()],
  clearScreen: false,
  build: { target: "es2021", outDir: "dist", emptyOutDir: true },
  test: { environment: "jsdom", globals: true, include: ["src/**/*.test.ts"] },
  resolve: process.env.VITEST ? { conditions: ["browser"] } : undefined,
});
