// What workerd provides to a Worker and Node lacks, stood in for in the harness's Node process: each
// is a compensation, listed in docs/DESIGN.md ("What the edge harness does not prove").

import { AsyncLocalStorage } from "node:async_hooks";

// `waitUntil` as workerd's Python glue patches it (`patchWaitUntil`): a Python awaitable passed to
// JavaScript is a borrowed proxy, destroyed when the call returns, so it is copied before the call
// returns and released once settled. `track` receives the resulting promise.
export function waitUntilFor(track) {
  return (value) => {
    const owned = typeof value?.copy === "function" ? value.copy() : value;
    track((async () => { try { await owned; } finally { owned?.destroy?.(); } })());
  };
}

// The invocation being served (its ExecutionContext and env), for the `cloudflare:workers` module's
// `waitUntil` and `env`, which workerd resolves to the current request. Pyodide's event loop does
// not carry Node's async context everywhere; there the latest invocation stands in (the same one
// when requests come one at a time, as in the tests).
const store = new AsyncLocalStorage();
let latest = null;
export const invocation = { run(value, fn) { latest = value; return store.run(value, fn); } };
const current = () => store.getStore() ?? latest;
export const cloudflareWorkers = {
  waitUntil(value) { const ctx = current()?.ctx; if (!ctx) throw new Error("waitUntil outside a request"); ctx.waitUntil(value); },
  get env() { return current()?.env; },
};

// The test's clock: a request may carry `x-edge-harness-now` (epoch ms, the test's manual clock);
// from then on the Worker's time (Python's datetime.now reads JS Date.now) stands at that instant
// until the next such request, as a manual clock does (on Workers, too, time does not move during
// computation, only across I/O). workerd's own time (D1's datetime('now'), KV expiry, when alarms
// fire) stays real; alarm times are translated between the two.
const realNow = Date.now.bind(Date);
let frozen = null;
export const clock = {
  set(ms) { frozen = ms === null || Number.isNaN(ms) ? null : ms; },
  now() { return frozen ?? realNow(); },
  toReal(ms) { return realNow() + (ms - clock.now()); },
  fromReal(ms) { return clock.now() + (ms - realNow()); },
};

// A socket end made in Node by `new WebSocketPair()` (workerd's API: the Worker refuses a stream by
// accepting and closing one end; the Durable Object accepts the other). `peer` is the other end.
export class WebSocket extends EventTarget {
  constructor() { super(); this.peer = null; this.sent = []; this.closed = null; this.joined = null; this.relay = null; this.attachment = null; }
  accept() {}
  // The hibernation API's attachment: a Durable Object's accepted socket keeps it in workerd (the
  // relay), so it outlives hibernation; `deserializeAttachment` is synchronous there, hence the copy.
  serializeAttachment(value) { this.attachment = value; if (this.relay?.attach) this.relay.attach(value); }
  deserializeAttachment() { return this.attachment; }
  send(data) { if (this.relay) this.relay.send(data); else if (this.peer?.joined) this.peer.joined.send(data); else this.sent.push(data); }
  close(code = 1000, reason = "") {
    this.closed = { code, reason };
    if (this.relay) this.relay.close(code, reason);
    else if (this.peer?.joined) this.peer.joined.close(code, reason);
  }
}
class WebSocketPair {
  constructor() { const a = new WebSocket(), b = new WebSocket(); a.peer = b; b.peer = a; this[0] = a; this[1] = b; }
}

// Node's Response refuses status 101; workerd's takes it with the client end of a WebSocketPair.
const NodeResponse = globalThis.Response;
const upgrades = new WeakMap();
class Response extends NodeResponse {
  constructor(body, init = {}) {
    if (init && Number(init.status) === 101) {
      super(null, { ...init, status: 200 });
      upgrades.set(this, init.webSocket ?? null);
    } else super(body, init);
  }
  get status() { return upgrades.has(this) ? 101 : super.status; }
  get webSocket() { return upgrades.get(this) ?? null; }
}

export function installRuntimeGlobals() {
  Date.now = () => clock.now();
  globalThis.WebSocketPair = WebSocketPair;
  globalThis.__edge_harness_cloudflare_workers = cloudflareWorkers;
  globalThis.Response = Response;
}

// The WebSocket behind a 101 answer, as something the harness joins to the client's connection:
// either an end made in Node (a refusal: its peer was closed with a code) or miniflare's socket to
// the Durable Object in workerd.
export function upgradeOf(response) {
  const socket = response.webSocket;
  if (!socket) return null;
  if (socket instanceof WebSocket) {
    return {
      join(client) {
        const server = socket.peer;
        socket.joined = client;
        for (const data of server.sent) client.send(data);
        if (server.closed) client.close(server.closed.code, server.closed.reason);
      },
    };
  }
  return {
    join(client) {
      socket.accept();
      socket.addEventListener("message", (event) => client.send(event.data));
      socket.addEventListener("close", (event) => { try { client.close(event.code === 1005 ? 1000 : event.code, event.reason); } catch { client.terminate(); } });
      client.on("message", (data, binary) => socket.send(binary ? data : data.toString()));
      client.on("close", (code, reason) => { try { socket.close(code === 1005 ? 1000 : code, reason.toString()); } catch {} });
    },
  };
}
