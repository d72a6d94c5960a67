// rollbridge.js — one web process behind the stable proxy port. Point
// Nginx at 127.0.0.1:8182; each deploy gets a port from 18000–18099.
export default {
  application: "plain-web",
  proxy: {host: "127.0.0.1", port: 8182},
  processes: [
    {
      id: "web",
      policy: "proxied",
      command: "node server.js --port {{port}}",
      port: {from: 18000, to: 18099},
      health: {path: "/ping", timeoutMs: 30000}
    }
  ]
}
