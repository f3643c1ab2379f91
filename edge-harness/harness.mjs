// The edge harness: the Worker (src/entry.py) under Pyodide in Node, with miniflare's workerd-backed
// D1, R2, KV, rate-limit binding and Durable Object storage as its env, served over HTTP on a
// loopback port by calling `Default.fetch` once per request.
//
//   node edge-harness/harness.mjs [--port 8788] [--state DIR]
//
// It builds the Worker as a deploy does (durable_objects/_vendor.py, then src/ and python_modules/
// on sys.path), applies the D1 migrations with `wrangler d1 migrations apply --local`, and prints
// `edge harness listening on http://127.0.0.1:PORT` when ready. Python packages come from `.edge/`
// (edge-harness/fetch.py fills it); nothing is downloaded here.
//
// Where the harness stands in for workerd, a comment says so (and docs/DESIGN.md, "What the edge
// harness does not prove"). Tests reach it through tests/edge_runtime.py; `/__edge_harness/…` paths
// are the harness's own (reset, settings, storage access for the tests), never the Worker's.
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { loadPyodide } from "pyodide";
import { Miniflare } from "miniflare";
import { WebSocketServer } from "ws";
import { D1Database } from "./d1.mjs";
import { objectHost, ObjectSide } from "./objects.mjs";
import { installRuntimeGlobals, clock, invocation, upgradeOf, waitUntilFor } from "./runtime.mjs";
import { installNetwork, network } from "./network.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..");
const DEPS = path.join(ROOT, ".edge");
const args = process.argv.slice(2);
const option = (name, fallback) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : fallback; };
const PORT = Number(option("--port", process.env.FASTEST_EDGE_PORT || "8788"));
const STATE = option("--state", fs.mkdtempSync(path.join(os.tmpdir(), "fastest-edge-")));
const log = (...parts) => console.error("[edge]", ...parts);
const started = Date.now();

if (!fs.existsSync(path.join(DEPS, "wheels"))) {
  console.error("edge harness: .edge/wheels is missing: run `.venv/bin/python edge-harness/fetch.py` first");
  process.exit(2);
}

// --- The Worker as wrangler uploads it ------------------------------------------------------------
const python = process.env.PYTHON || (fs.existsSync(path.join(ROOT, ".venv/bin/python")) ? path.join(ROOT, ".venv/bin/python") : "python3");
const run = (command, argv) => {
  const done = spawnSync(command, argv, { cwd: ROOT, encoding: "utf8" });
  if (done.status !== 0) { console.error(done.stdout, done.stderr); throw new Error(`${command} ${argv.join(" ")} failed`); }
};
run(python, ["durable_objects/_vendor.py"]);
// The migrations the way a deploy applies them (wrangler's own d1_migrations bookkeeping).
run(path.join(ROOT, "node_modules/.bin/wrangler"), ["d1", "migrations", "apply", "fastest", "--local", "--persist-to", STATE]);
log("vendored and migrated in", Date.now() - started, "ms");

// wrangler.toml's [vars]: the Worker's settings as strings, as workerd hands them over.
const VARS = {};
for (const line of fs.readFileSync(path.join(ROOT, "wrangler.toml"), "utf8").split("\n")) {
  const found = line.match(/^(FASTEST_[A-Z0-9_]+)\s*=\s*"([^"]*)"/);
  if (found) VARS[found[1]] = found[2];
}

// --- workerd (through miniflare): the storage engines and the Durable Object's host ----------------
// The HTTP server listens first: the object host in workerd calls back to it.
let markReady; const ready = new Promise((resolve) => { markReady = resolve; });
// Cloudflare's edge takes a request head of up to 16 KB of URL and 128 KB of headers (Node's own
// default is 16 KB in all, answered with a 431 the Worker never sees); its 16 KB URL limit the
// harness does not enforce.
const REQUEST_HEAD_BYTES = (16 + 128) * 1024;
const server = http.createServer({ maxHeaderSize: REQUEST_HEAD_BYTES }, async (req, res) => { await ready; serve(req, res); });
await new Promise((resolve) => server.listen(PORT, "127.0.0.1", resolve));
const harnessOrigin = `http://127.0.0.1:${server.address().port}`;
const mf = new Miniflare({
  modules: true,
  script: objectHost,
  compatibilityDate: "2026-04-21",
  bindings: { HARNESS: harnessOrigin },
  d1Databases: { DB: "00000000-0000-0000-0000-000000000000" }, d1Persist: path.join(STATE, "v3/d1"),
  kvNamespaces: { CACHE: "00000000000000000000000000000000" }, kvPersist: path.join(STATE, "v3/kv"),
  r2Buckets: { BLOBS: "fastest-blobs" }, r2Persist: path.join(STATE, "v3/r2"),
  durableObjects: { CONVERSATIONS: { className: "ConversationSession", useSQLite: true } },
  durableObjectsPersist: path.join(STATE, "v3/do"),
  ratelimits: { RATE_LIMITER: { simple: { limit: 600, period: 60 } } },
});
await mf.ready;

// The Workers SDK recognises a binding by its JS class name and only then converts Python arguments
// for it; miniflare's Node proxies have other names. Present them under the real ones.
const named = (name, raw) => {
  const C = { [name]: class {} }[name];
  return new Proxy(new C(), {
    get(_, key) { if (key === "constructor") return C; const value = raw[key]; return typeof value === "function" ? value.bind(raw) : value; },
  });
};
// Across miniflare's Node proxy a request-body stream loses its known length, which R2's `put`
// requires; in workerd the body of a request with Content-Length is a known-length stream. Such a
// body is read into bytes before it crosses; a body of unknown length (chunked) is refused as
// workerd refuses it.
const knownLengthBodies = new WeakSet();
const r2 = (raw) => new Proxy(raw, {
  get(target, key) {
    if (key !== "put") { const value = target[key]; return typeof value === "function" ? value.bind(target) : value; }
    return async (objectKey, value, options) => {
      if (value && typeof value.getReader === "function") {
        if (!knownLengthBodies.has(value)) throw new TypeError("Provided readable stream must have a known length (request/response body or readable half of FixedLengthStream)");
        value = new Uint8Array(await new Response(value).arrayBuffer());
      }
      return target.put(objectKey, value, options);
    };
  },
});
const bindings = {
  DB: new D1Database((url, init) => mf.dispatchFetch(url, init)),
  CACHE: named("KvNamespace", await mf.getKVNamespace("CACHE")),
  BLOBS: named("R2Bucket", r2(await mf.getR2Bucket("BLOBS"))),
  RATE_LIMITER: named("Ratelimit", await mf.getBindings().then((b) => b.RATE_LIMITER)),
};
const objects = new ObjectSide((url, init) => mf.dispatchFetch(url, init));
bindings.CONVERSATIONS = objects.namespace;

// Per-test settings and secrets (POST /__edge_harness/configure), over wrangler.toml's [vars].
let configured = {};
const env = () => ({ ...VARS, ...configured, ...bindings });

// --- Pyodide with the Worker's packages -----------------------------------------------------------
installRuntimeGlobals();
installNetwork();
const py = await loadPyodide({ indexURL: path.join(ROOT, "node_modules/pyodide") + "/", stdout: (s) => log("[py]", s), stderr: (s) => log("[py!]", s) });
const site = py.runPython("import site; site.getsitepackages()[0]");
for (const wheel of fs.readdirSync(path.join(DEPS, "wheels")).filter((f) => f.endsWith(".whl"))) {
  py.unpackArchive(new Uint8Array(fs.readFileSync(path.join(DEPS, "wheels", wheel))), "wheel", { extractDir: site });
}
for (const [at, dir] of [["/app/src", path.join(ROOT, "src")], ["/app/python_modules", path.join(ROOT, "python_modules")],
                         ["/app/stubs", path.join(HERE, "stubs")], ["/app/pure", path.join(DEPS, "pure")]]) {
  py.FS.mkdirTree(at); py.mountNodeFS(at, dir);
}
py.runPython(`import sys; sys.path[0:0] = ["/app/src", "/app/python_modules", "/app/stubs", "/app/pure"]`);
log("pyodide", py.version, "ready in", Date.now() - started, "ms");
const importStarted = Date.now();
await py.runPythonAsync("import entry");
const importMs = Date.now() - importStarted;
log("imported src/entry.py in", importMs, "ms");

// workerd hands Python Workers a `workers.Request` (the SDK's wrapper around the JS Request).
const pyCall = py.runPython(`
import js
from workers import Request
from entry import Default, ConversationSession

def worker_fetch(ctx, env, request):
    return Default(ctx, env).fetch(Request(request))

def worker_scheduled(ctx, env, controller):
    return Default(ctx, env).scheduled(controller, env, ctx)

def new_object(ctx, env):
    return ConversationSession(ctx, env)

def reset_isolate():
    # A new isolate: the per-isolate platform cache (settings, in-isolate rate windows) starts empty.
    from fastest.platform.cloudflare import ISOLATE_PLATFORMS
    ISOLATE_PLATFORMS.clear()

{"fetch": worker_fetch, "scheduled": worker_scheduled, "new_object": new_object, "reset": reset_isolate}
`).toJs({ dict_converter: Object.fromEntries });

// An ExecutionContext: waitUntil keeps the work's promise (a test can wait for it to settle).
const pending = new Set();
const executionContext = () => {
  const C = class ExecutionContext {};
  const ctx = new C();
  ctx.waitUntil = waitUntilFor((promise) => { const p = promise.catch((e) => log("waitUntil failed:", e?.stack || e)).finally(() => pending.delete(p)); pending.add(p); });
  ctx.passThroughOnException = () => {};
  return ctx;
};
objects.attach({ py, newObject: pyCall.new_object, env, log });

// --- Storage access for the tests (the test process's own Platform uses the same D1/R2/KV) ---------
async function storageCall({ binding, method, args }) {
  if (binding === "DB") {
    if (method === "batch") {
      const statements = args[0].map(([sql, params]) => bindings.DB.prepare(sql).bind(...decode(params)));
      return encode(await bindings.DB.batch(statements));
    }
    const [sql, params, extra] = args;
    const statement = bindings.DB.prepare(sql).bind(...decode(params));
    return encode(await (extra === undefined ? statement[method]() : statement[method](extra)));
  }
  if (binding === "BLOBS" || binding === "CACHE") {
    const response = await mf.dispatchFetch("http://bindings.internal/", {
      method: "POST", headers: { "x-edge-harness-binding": "1", "content-type": "application/json" },
      body: JSON.stringify({ binding, method, args }),
    });
    const answer = await response.json();
    if (answer.error !== undefined) throw new Error(answer.error);
    return answer.result;
  }
  throw new Error(`unknown binding ${binding}`);
}
// JSON with tagged bytes and dates.
function encode(value) {
  if (value instanceof Uint8Array || value instanceof ArrayBuffer) return { $bytes: Buffer.from(value instanceof ArrayBuffer ? new Uint8Array(value) : value).toString("base64") };
  if (value instanceof Date) return { $date: value.getTime() };
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [k, encode(v)]));
  if (Array.isArray(value)) return value.map(encode);
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, encode(v)]));
  return value;
}
function decode(value) {
  if (Array.isArray(value)) return value.map(decode);
  if (value && typeof value === "object") {
    if ("$bytes" in value) return new Uint8Array(Buffer.from(value.$bytes, "base64"));
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decode(v)]));
  }
  return value;
}

// A fresh start for each test: empty D1 tables (the schema stays), empty bucket and namespace, a new
// isolate and new object instances.
async function reset() {
  const tables = (await bindings.DB.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all()).results;
  const virtual = tables.filter((t) => /^CREATE VIRTUAL TABLE/i.test(t.sql || "")).map((t) => t.name);
  const wiped = tables.map((t) => t.name).filter((name) => name !== "d1_migrations" && !name.startsWith("_cf_") && !name.startsWith("sqlite_")
    && !virtual.some((v) => name.startsWith(v + "_")));
  await bindings.DB.batch([bindings.DB.prepare("PRAGMA defer_foreign_keys = on"), ...wiped.map((name) => bindings.DB.prepare(`DELETE FROM "${name}"`))]);
  await (await mf.dispatchFetch("http://wipe.internal/", { method: "POST", headers: { "x-edge-harness-wipe": "1" } })).arrayBuffer();
  pyCall.reset();
  objects.reset();
  network.reset();
  clock.set(null);
}

// --- HTTP ----------------------------------------------------------------------------------------
const readBody = (req) => new Promise((resolve, reject) => {
  const chunks = []; req.on("data", (c) => chunks.push(c)); req.on("end", () => resolve(Buffer.concat(chunks))); req.on("error", reject);
});
const json = (res, status, body) => { res.writeHead(status, { "content-type": "application/json" }); res.end(JSON.stringify(body)); };

const NODE_FORBIDDEN_METHODS = new Set(["CONNECT", "TRACE", "TRACK"]);

// A Node request as the JS Request workerd would hand the Worker.
function toRequest(req, body) {
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i].toLowerCase();
    if (name === "x-edge-harness-now" || name === "connection" || name === "keep-alive" || name === "transfer-encoding") continue;
    headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
  }
  // Cloudflare's edge tells the Worker who is calling.
  headers.set("cf-connecting-ip", req.socket.remoteAddress?.replace(/^::ffff:/, "") || "127.0.0.1");
  // Node's fetch refuses to build a request with a method browsers may not send (TRACE, TRACK,
  // CONNECT); workerd hands the Worker whatever method arrived. Such a request is built as a POST and
  // carries the method that arrived.
  const forbidden = NODE_FORBIDDEN_METHODS.has(req.method);
  const init = { method: forbidden ? "POST" : req.method, headers };
  if (body !== null && req.method !== "GET" && req.method !== "HEAD") { init.body = body; init.duplex = "half"; }
  const request = new Request(`http://${req.headers.host || `127.0.0.1:${PORT}`}${req.url}`, init);
  if (forbidden) Object.defineProperty(request, "method", { value: req.method });
  if (request.body && req.headers["content-length"] !== undefined) knownLengthBodies.add(request.body);
  return request;
}

async function callWorker(request) {
  const ctx = executionContext(), bound = env();
  const response = await invocation.run({ ctx, env: bound }, () => pyCall.fetch(ctx, bound, request));
  return response.js_object ?? response;
}

async function writeResponse(res, response) {
  const headers = {};
  for (const [name, value] of response.headers) { if (name !== "set-cookie") headers[name] = value; }
  const cookies = response.headers.getSetCookie?.() ?? [];
  if (cookies.length) headers["set-cookie"] = cookies;
  res.writeHead(response.status, headers);
  if (!response.body) { res.end(); return; }
  const reader = response.body.getReader();
  // A client that goes away cancels the body with an Error, as workerd does (Pyodide cannot turn a
  // bare `undefined` rejection into a Python exception).
  res.on("close", () => reader.cancel(new Error("the client went away")).catch(() => {}));
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      res.write(value);
    }
  } catch (error) { log("response body failed:", error?.message); }
  res.end();
}

async function control(req, res, url) {
  try { return await controlCall(req, res, url); } catch (error) {
    log("harness call failed:", url.pathname, error?.stack || error);
    if (!res.headersSent) json(res, 500, { error: String(error?.message || error) }); else res.end();
  }
}

async function controlCall(req, res, url) {
  const raw = (await readBody(req)).toString();
  // SQL for D1 (one statement per line, as `fastest admin token --sql` writes), e.g. a first token.
  if (url.pathname === "/__edge_harness/sql") {
    try { return json(res, 200, { result: await bindings.DB.exec(raw) }); } catch (error) { return json(res, 400, { error: String(error?.message || error) }); }
  }
  const body = JSON.parse(raw || "{}");
  switch (url.pathname) {
    case "/__edge_harness/reset": await reset(); return json(res, 200, { ok: true });
    case "/__edge_harness/configure": configured = body.vars || {}; pyCall.reset(); return json(res, 200, { ok: true });
    case "/__edge_harness/storage":
      // A binding's error goes back as its message (what a JS error carries), for the test's adapter.
      try { return json(res, 200, { result: await storageCall(body) }); } catch (error) { return json(res, 500, { error: String(error?.message || error) }); }
    // A host of the test's on the Internet the Worker's fetch sees (edge-harness/network.mjs).
    case "/__edge_harness/hosts": network.register(body); return json(res, 200, { ok: true });
    case "/__edge_harness/scheduled": {
      // The cron's time is the test's clock when it sends one (as a request's header sets it).
      if (body.now !== undefined) clock.set(Number(body.now));
      const ctx = executionContext();
      const C = class ScheduledController {}; const controller = new C();
      controller.cron = body.cron; controller.scheduledTime = clock.now(); controller.noRetry = () => {};
      const bound = env();
      await invocation.run({ ctx, env: bound }, () => pyCall.scheduled(ctx, bound, controller));
      await Promise.all([...pending]);
      return json(res, 200, { ok: true });
    }
    case "/__edge_harness/settle": await Promise.all([...pending]); await objects.settle(); return json(res, 200, { ok: true });
    case "/__edge_harness/object": return objects.handle(req, res, body, { callWorker, writeResponse, json });
    case "/__edge_harness/session": {
      // The test process's own requests to a conversation's object (its Platform's `sessions`): through
      // the CONVERSATIONS binding, as the Worker's own requests go.
      const stub = objects.namespace.get(objects.namespace.idFromName(body.name));
      const response = await stub.fetch("https://session.internal" + body.path, {
        method: body.method, headers: body.headers || {}, body: body.body ? Buffer.from(body.body, "base64") : undefined,
      });
      const answer = Buffer.from(await response.arrayBuffer()).toString("base64");
      return json(res, 200, { status: response.status, headers: Object.fromEntries(response.headers), body: answer });
    }
    // For bench/edge.py: the import time of src/entry.py, and this process's CPU time so far (the
    // Worker's Python runs here; workerd's D1, R2 and KV work is another process, as on Cloudflare
    // where it is not billed as the Worker's CPU).
    case "/__edge_harness/info": {
      const cpu = process.cpuUsage();
      return json(res, 200, { import_ms: importMs, pyodide: py.version, cpu_ms: (cpu.user + cpu.system) / 1000 });
    }
    default: return json(res, 404, { error: "unknown harness path" });
  }
}

async function serve(req, res) {
  try {
    const url = new URL(req.url, "http://127.0.0.1");
    if (url.pathname.startsWith("/__edge_harness/")) return await control(req, res, url);
    if (req.headers["x-edge-harness-now"]) clock.set(Number(req.headers["x-edge-harness-now"]));
    const body = req.method === "GET" || req.method === "HEAD" ? null : await readBody(req);
    await writeResponse(res, await callWorker(toRequest(req, body)));
  } catch (error) {
    // workerd answers an uncaught exception with a bare 500.
    log("uncaught:", error?.stack || error);
    if (!res.headersSent) { res.writeHead(500, { "content-type": "text/plain" }); res.end("Internal Server Error"); } else res.end();
  }
}

// WebSocket upgrades: the Worker answers 101 with the client end of a pair; the harness joins that
// end to the real connection.
const sockets = new WebSocketServer({ noServer: true });
server.on("upgrade", async (req, socket, head) => {
  await ready;
  try {
    if (req.headers["x-edge-harness-now"]) clock.set(Number(req.headers["x-edge-harness-now"]));
    const response = await callWorker(toRequest(req, null));
    const pair = upgradeOf(response);
    if (response.status !== 101 || !pair) {
      const text = await response.text();
      socket.end(`HTTP/1.1 ${response.status} Refused\r\ncontent-type: ${response.headers.get("content-type") || "text/plain"}\r\ncontent-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
      return;
    }
    sockets.handleUpgrade(req, socket, head, (client) => pair.join(client));
  } catch (error) {
    log("upgrade failed:", error?.stack || error);
    socket.destroy();
  }
});

objects.listen(harnessOrigin);
markReady();
console.log(`edge harness listening on ${harnessOrigin} (pyodide ${py.version}, started in ${Date.now() - started} ms)`);
const stop = async () => { server.close(); await mf.dispose().catch(() => {}); if (!option("--state")) fs.rmSync(STATE, { recursive: true, force: true }); process.exit(0); };
process.on("SIGTERM", stop);
// One failing event must not end the session: log it, as workerd logs an uncaught exception.
process.on("uncaughtException", (error) => log("uncaught exception:", error?.stack || error));
process.on("unhandledRejection", (error) => log("unhandled rejection:", error?.stack || error));
process.on("SIGINT", stop);
