// The conversation's Durable Object on the harness. workerd (through miniflare) hosts a small
// JavaScript object under the real class name; it owns everything that is the runtime's: the
// SQLite-backed `ctx.storage`, alarms, and the hibernatable WebSockets. Each event it receives
// (fetch, alarm, webSocketMessage/Close/Error) is handed over loopback HTTP to the project's Python
// class (durable_objects/cloudflare.py) running in the harness's Pyodide, whose `ctx` calls back into
// the object for storage and sockets (miniflare's RPC stubs).
//
// Compensations, by necessity of the split (see docs/DESIGN.md):
// - `ctx.getWebSockets()` is synchronous in workerd; Node keeps a mirror of the object's accepted
//   sockets (their tags), updated by the object's events.
// - A socket's `send` from Python crosses by RPC; sends to one socket are queued so they keep order.
// - Storage calls cross one by one, so workerd's output gate does not group an event's writes.
// - Python code runs in one Node process for every object: a hibernated object comes back as a new
//   Python instance only when the harness resets.
import { clock, invocation, WebSocket, waitUntilFor } from "./runtime.mjs";

export const objectHost = `
import { DurableObject } from "cloudflare:workers";
const toBase64 = (buffer) => { let s = ""; for (const b of new Uint8Array(buffer)) s += String.fromCharCode(b); return btoa(s); };
const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
export class ConversationSession extends DurableObject {
  async #event(body) {
    return fetch(this.env.HARNESS + "/__edge_harness/object", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ object: this.ctx.id.name, ...body }),
    });
  }
  async fetch(request) {
    const headers = [...request.headers].filter(([name]) => name !== "x-edge-harness-object");
    const body = request.method === "GET" || request.method === "HEAD" ? null : toBase64(await request.arrayBuffer());
    let client = null, tag = null;
    if ((request.headers.get("upgrade") || "").toLowerCase() === "websocket") {
      const [a, b] = Object.values(new WebSocketPair());
      client = a; tag = crypto.randomUUID();
      this.ctx.acceptWebSocket(b, [tag]);
    }
    const answer = await this.#event({ event: "fetch", socket: tag, request: { url: request.url, method: request.method, headers, body } });
    if (client && answer.headers.get("x-edge-harness-upgraded")) return new Response(null, { status: 101, webSocket: client });
    if (client) for (const ws of this.ctx.getWebSockets(tag)) ws.close(1011, "not accepted");
    return new Response(answer.status === 204 ? null : answer.body, { status: answer.status, headers: answer.headers });
  }
  async alarm(info) {
    const answer = await this.#event({ event: "alarm", info: info ?? null });
    if (!answer.ok) throw new Error("alarm failed: " + (await answer.text()));
  }
  async webSocketMessage(ws, message) {
    const data = typeof message === "string" ? message : { $bytes: toBase64(message) };
    await (await this.#event({ event: "message", socket: this.ctx.getTags(ws)[0], message: data })).arrayBuffer();
  }
  async webSocketClose(ws, code, reason, wasClean) {
    await (await this.#event({ event: "close", socket: this.ctx.getTags(ws)[0], code, reason, wasClean })).arrayBuffer();
  }
  async webSocketError(ws, error) {
    await (await this.#event({ event: "error", socket: this.ctx.getTags(ws)[0], error: String(error) })).arrayBuffer();
  }
  // Called from Node (RPC): the object's storage and sockets.
  async storage(method, args) {
    const result = await this.ctx.storage[method](...args);
    return result instanceof Map ? { $map: [...result] } : result;
  }
  async send(tag, data) { for (const ws of this.ctx.getWebSockets(tag)) ws.send(typeof data === "string" ? data : fromBase64(data.$bytes)); }
  async close(tag, code, reason) { for (const ws of this.ctx.getWebSockets(tag)) ws.close(code, reason); }
  async attach(tag, value) { for (const ws of this.ctx.getWebSockets(tag)) ws.serializeAttachment(value); }
}
// D1 statements sent by the harness (see d1.mjs): run by workerd's D1, results as D1 gives them.
const decodeParam = (v) => (v && typeof v === "object" && "$bytes" in v ? fromBase64(v.$bytes) : v);
async function d1(request, env) {
  const { op, statements, column } = await request.json();
  const prepared = op === "exec" ? [] : statements.map(([sql, params]) => env.DB.prepare(sql).bind(...params.map(decodeParam)));
  try {
    if (op === "batch") return Response.json({ result: await env.DB.batch(prepared) });
    if (op === "exec") return Response.json({ result: await env.DB.exec(statements[0][0]) });
    const statement = prepared[0];
    const result = op === "first" ? (column === undefined ? await statement.first() : await statement.first(column))
      : op === "raw" ? await statement.raw(column === undefined ? undefined : column) : await statement[op]();
    return Response.json({ result: result === undefined ? null : result });
  } catch (error) {
    return Response.json({ error: String(error && error.message || error) });
  }
}
// Storage and socket calls from the Python side in Node, made on the object by RPC inside workerd.
async function objectCall(request, env) {
  const { object, method, args } = await request.json();
  const stub = env.CONVERSATIONS.get(env.CONVERSATIONS.idFromName(object));
  try {
    return Response.json({ result: (await stub[method](...args)) ?? null });
  } catch (error) {
    return Response.json({ error: String(error && error.message || error) });
  }
}
// R2 and KV calls for the test process's own Platform: results as plain JSON (R2 objects with their
// body, dates and bytes tagged).
const r2Object = (o) => ({ key: o.key, size: o.size, etag: o.etag, uploaded: { $date: o.uploaded.getTime() },
  customMetadata: o.customMetadata, httpMetadata: o.httpMetadata });
async function plain(result) {
  if (result === null || result === undefined) return null;
  if (Array.isArray(result.objects)) return { ...result, objects: result.objects.map(r2Object) };
  if (typeof result.etag === "string" && result.uploaded instanceof Date) {
    const object = r2Object(result);
    if (typeof result.arrayBuffer === "function") object.bodyBytes = { $bytes: toBase64(await result.arrayBuffer()) };
    return object;
  }
  return result;
}
async function bindingCall(request, env) {
  const { binding, method, args } = await request.json();
  const decode = (v) => (Array.isArray(v) ? v.map(decode) : v && typeof v === "object"
    ? ("$bytes" in v ? fromBase64(v.$bytes) : Object.fromEntries(Object.entries(v).map(([k, x]) => [k, decode(x)]))) : v);
  try {
    return Response.json({ result: await plain(await env[binding][method](...decode(args))) });
  } catch (error) {
    return Response.json({ error: String(error && error.message || error) });
  }
}
// Empties the bucket and the namespace (the harness's reset between tests).
async function wipe(env) {
  for (let listing = await env.BLOBS.list({ limit: 1000 }); listing.objects.length; listing = await env.BLOBS.list({ limit: 1000 })) {
    await env.BLOBS.delete(listing.objects.map((o) => o.key));
  }
  for (let listing = await env.CACHE.list(); listing.keys.length; listing = await env.CACHE.list()) {
    await Promise.all(listing.keys.map((k) => env.CACHE.delete(k.name)));
  }
  return Response.json({ result: true });
}
export default {
  async fetch(request, env) {
    if (request.headers.get("x-edge-harness-d1")) return d1(request, env);
    if (request.headers.get("x-edge-harness-wipe")) return wipe(env);
    if (request.headers.get("x-edge-harness-binding")) return bindingCall(request, env);
    if (request.headers.get("x-edge-harness-call")) return objectCall(request, env);
    const name = request.headers.get("x-edge-harness-object");
    return env.CONVERSATIONS.get(env.CONVERSATIONS.idFromName(name)).fetch(request);
  },
};
`;

const named = (name, fields) => { const C = { [name]: class {} }[name]; return Object.assign(new C(), fields); };

export class ObjectSide {
  constructor(dispatch) {
    this.dispatch = dispatch;       // mf.dispatchFetch: requests to an object through workerd
    this.instances = new Map();     // object name → the Python ConversationSession
    this.sockets = new Map();       // object name → Map(tag → socket end in Node)
    this.queues = new Map();        // tag → the promise of its last send
    this.pending = new Set();
    this.origin = null;
    const side = this;
    // The CONVERSATIONS binding as the Worker sees it: idFromName → get → stub.fetch.
    this.namespace = named("DurableObjectNamespace", {
      idFromName: (name) => named("DurableObjectId", { name, toString: () => Buffer.from(name).toString("hex"), equals: (o) => o?.name === name }),
      get: (id) => named("DurableObject", {
        id,
        fetch: async (input, init) => {
          const request = new Request(input, init);
          const headers = new Headers(request.headers);
          headers.set("x-edge-harness-object", id.name);
          const body = request.method === "GET" || request.method === "HEAD" ? undefined : new Uint8Array(await request.arrayBuffer());
          return side.dispatch(new URL(request.url).href, { method: request.method, headers: [...headers], body, redirect: "manual" })
            .then((response) => side.translate(response));
        },
      }),
    });
  }

  // miniflare hands back its own Response class; workerd's stub.fetch gives the runtime's Response
  // (the Workers SDK accepts only that name): the same status, headers, streaming body or socket.
  translate(response) {
    if (response.status === 101) return new Response(null, { status: 101, webSocket: response.webSocket });
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers: response.headers });
  }

  attach({ py, newObject, env, log }) { Object.assign(this, { py, newObject, env, log }); }
  listen(origin) { this.origin = origin; }

  reset() { this.instances.clear(); this.sockets.clear(); this.queues.clear(); }

  async settle() { await Promise.all([...this.pending]); }

  // The object `name` in workerd, as a stub whose methods (storage, send, close) run there by RPC.
  // (One request per call through workerd: miniflare's Node RPC proxies make synchronous round trips.)
  stub(name) {
    const call = async (method, args) => {
      const response = await this.dispatch("http://objects.internal/", {
        method: "POST", headers: { "x-edge-harness-call": "1", "content-type": "application/json" },
        body: JSON.stringify({ object: name, method, args }),
      });
      const answer = await response.json();
      if (answer.error !== undefined) throw new Error(answer.error);
      return answer.result;
    };
    return {
      storage: (method, args) => call("storage", [method, args]),
      send: (tag, data) => call("send", [tag, data]),
      close: (tag, code, reason) => call("close", [tag, code, reason]),
      attach: (tag, value) => call("attach", [tag, value]),
    };
  }

  socketsOf(name) { if (!this.sockets.has(name)) this.sockets.set(name, new Map()); return this.sockets.get(name); }

  // A Node end standing for the object's socket `tag`: what Python sends goes to workerd in order.
  socketEnd(name, tag) {
    const ends = this.socketsOf(name);
    if (ends.has(tag)) return ends.get(tag);
    const end = new WebSocket();
    const side = this;
    end.tag = tag;
    end.relay = {
      send(data) { side.queue(tag, () => side.stub(name).send(tag, typeof data === "string" ? data : { $bytes: Buffer.from(data).toString("base64") })); },
      close(code, reason) { side.queue(tag, () => side.stub(name).close(tag, code, reason)); },
      attach(value) { side.queue(tag, () => side.stub(name).attach(tag, value)); },
    };
    ends.set(tag, end);
    return end;
  }

  queue(tag, call) {
    const next = (this.queues.get(tag) || Promise.resolve()).then(call).catch((e) => this.log("socket call failed:", e?.message));
    this.queues.set(tag, next);
    this.track(next);
  }

  track(promise) { const p = Promise.resolve(promise).catch((e) => this.log("object work failed:", e?.stack || e)).finally(() => this.pending.delete(p)); this.pending.add(p); }

  context(name) {
    const side = this;
    const storage = named("DurableObjectStorage", {});
    for (const method of ["get", "put", "delete", "list", "deleteAll", "getAlarm", "deleteAlarm"]) {
      storage[method] = async (...args) => {
        const result = await side.stub(name).storage(method, args);
        if (method === "getAlarm") return result === null || result === undefined ? null : clock.fromReal(result);
        return result && result.$map ? new Map(result.$map) : result;
      };
    }
    // The test's clock is the Worker's; workerd fires alarms on its own (real) clock.
    storage.setAlarm = (ms, options) => side.stub(name).storage("setAlarm", [clock.toReal(Number(ms)), ...(options ? [options] : [])]);
    return named("DurableObjectState", {
      id: named("DurableObjectId", { name, toString: () => Buffer.from(name).toString("hex") }),
      storage,
      acceptWebSocket(end) {
        // The object accepted its end of the pair in workerd already, under the tag of the event
        // being handled (accepting is the first thing the Python fetch does, before any await).
        const tag = this.event.socket;
        const ends = side.socketsOf(name);
        end.tag = tag;
        const mirror = side.socketEnd(name, tag);
        end.relay = mirror.relay;
        end.attachment = mirror.attachment;
        ends.set(tag, end);
      },
      getWebSockets: () => [...side.socketsOf(name).values()],
      getTags: (end) => [end.tag],
      waitUntil: waitUntilFor((promise) => side.track(promise)),
      blockConcurrencyWhile: async (fn) => fn(),
    });
  }

  instance(name, event) {
    if (!this.instances.has(name)) this.instances.set(name, { ctx: null, object: null });
    const entry = this.instances.get(name);
    if (!entry.object) {
      entry.ctx = this.context(name);
      entry.object = this.newObject(entry.ctx, this.env());
    }
    entry.ctx.event = event;
    return entry;
  }

  // An event from the object in workerd.
  async handle(req, res, body, { writeResponse, json }) {
    const name = body.object;
    const entry = this.instance(name, body);
    const object = entry.object;
    try {
      switch (body.event) {
        case "fetch": {
          const { url, method, headers, body: payload } = body.request;
          const request = new Request(url, { method, headers, body: payload === null ? undefined : Buffer.from(payload, "base64") });
          const wrapped = this.py.pyimport("workers").Request(request);
          let response = await object.fetch(wrapped);
          response = response.js_object ?? response;
          if (response.status === 101) { res.writeHead(200, { "x-edge-harness-upgraded": "1" }); res.end(); return; }
          return await writeResponse(res, response);
        }
        case "alarm": await object.alarm(); return json(res, 200, { ok: true });
        case "message": {
          const message = typeof body.message === "string" ? body.message : this.py.toPy(new Uint8Array(Buffer.from(body.message.$bytes, "base64")));
          await object.webSocketMessage(this.socketEnd(name, body.socket), message);
          return json(res, 200, { ok: true });
        }
        case "close": {
          const end = this.socketEnd(name, body.socket);
          this.socketsOf(name).delete(body.socket);
          await object.webSocketClose(end, body.code, body.reason, body.wasClean);
          return json(res, 200, { ok: true });
        }
        case "error": {
          const end = this.socketEnd(name, body.socket);
          this.socketsOf(name).delete(body.socket);
          await object.webSocketError(end, body.error);
          return json(res, 200, { ok: true });
        }
        default: return json(res, 400, { error: "unknown event" });
      }
    } catch (error) {
      this.log("object event failed:", body.event, error?.stack || error);
      if (!res.headersSent) json(res, 500, { error: String(error?.message || error) }); else res.end();
    }
  }
}
