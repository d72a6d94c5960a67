// rollbridge.js — the four-process Velocious layout: the production example
// of the original Rollbridge documentation (indentation restored). A broker
// and a job coordinator as services, per-release job workers, and the
// proxied web process.
export default {
  application: "tensorbuzz",
  control: {path: "/tmp/rollbridge-tensorbuzz.sock"},

  proxy: {
    host: "127.0.0.1",
    port: 4500, // the stable port Nginx points at
    healthPath: "/ping",
    healthTimeoutMs: 30000,
    drainTimeoutMs: 60000,
    forceStopTimeoutMs: 10000
  },

  processes: [
    // Shared broker — one daemon-wide instance on a stable port.
    {
      id: "beacon",
      policy: "service",
      cwd: "{{releasePath}}/backend",
      env: {NODE_ENV: "production", VELOCIOUS_BEACON_PORT: "{{port}}"},
      command: "npx velocious beacon",
      port: 7330
    },

    // Job coordinator — waits for Beacon, stable port other jobs processes use.
    {
      id: "background-jobs-main",
      policy: "service",
      cwd: "{{releasePath}}/backend",
      env: {
        NODE_ENV: "production",
        VELOCIOUS_BEACON_PORT: "{{ports.beacon}}",
        VELOCIOUS_BACKGROUND_JOBS_PORT: "{{port}}"
      },
      command: "wait-for-it 127.0.0.1:{{ports.beacon}} --strict -- npx velocious background-jobs-main",
      port: 7331
    },

    // Workers — one set per release; raise gracefulStopMs to let in-flight
    // jobs finish during a deploy.
    {
      id: "background-jobs-worker",
      policy: "companion",
      cwd: "{{releasePath}}/backend",
      env: {
        NODE_ENV: "production",
        VELOCIOUS_BEACON_PORT: "{{ports.beacon}}",
        VELOCIOUS_BACKGROUND_JOBS_PORT: "{{ports.background-jobs-main}}"
      },
      command: "wait-for-it 127.0.0.1:{{ports.beacon}} --strict -- wait-for-it 127.0.0.1:{{ports.background-jobs-main}} --strict -- npx velocious background-jobs-worker",
      gracefulStopMs: 60000
    },

    // Web/API — the one proxied process.
    {
      id: "web",
      policy: "proxied",
      cwd: "{{releasePath}}/backend",
      env: {
        NODE_ENV: "production",
        VELOCIOUS_BEACON_PORT: "{{ports.beacon}}",
        VELOCIOUS_BACKGROUND_JOBS_PORT: "{{ports.background-jobs-main}}"
      },
      command: "wait-for-it 127.0.0.1:{{ports.beacon}} --strict -- wait-for-it 127.0.0.1:{{ports.background-jobs-main}} --strict -- npx velocious server --host 127.0.0.1 --port {{port}}",
      port: {from: 14500, to: 14599},
      health: {path: "/ping", timeoutMs: 30000, intervalMs: 500}
    }
  ]
}
