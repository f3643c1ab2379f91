// The Internet as the Worker's `fetch` sees it, for the hosts a test names: public DNS names that
// resolve to public addresses and are served over HTTPS with a certificate the test issued. This is
// a compensation (docs/DESIGN.md, "What the edge harness does not prove"): on Cloudflare the
// Worker's `fetch` reaches a public host through Cloudflare's network; here the host is a loopback
// HTTPS server of the test, reached by its name (TLS checks the name against the certificate, as on
// the Internet) through a connection the harness routes to the loopback port.
//
// What the Worker does is unchanged: its resolver (`platform.cloudflare.http.WorkersFetchClient.
// resolve`) asks DNS over HTTPS at cloudflare-dns.com, answered here from the names the tests
// registered (a name nobody registered does not exist: NXDOMAIN); its SSRF checks judge those
// addresses; its `fetch` of an https URL goes to the named host. Every other request (loopback
// stand-ins the operator configured: model servers, the Cloudflare API, Paddle) is Node's own fetch.
import { Agent, buildConnector, fetch as undiciFetch } from "undici";

const DOH_HOST = "cloudflare-dns.com";
// name → { addresses: [...], port: loopback port serving it (null: nothing answers), ca: PEM, agent }
const names = new Map();

export const network = {
  // A test's host: `name` resolves to `addresses`; its HTTPS is served on 127.0.0.1:`port`, with a
  // certificate issued by `ca` (trusted for this host only).
  register({ name, addresses, port = null, ca = null }) {
    const key = String(name).toLowerCase();
    names.get(key)?.agent?.close().catch(() => {});
    let agent = null;
    if (port) {
      const connect = buildConnector({ ca: ca ? [ca] : undefined });
      // The TCP connection goes to the test's loopback server; TLS still names (SNI) and checks the
      // public host.
      agent = new Agent({ connect: (options, callback) => connect({ ...options, hostname: "127.0.0.1", port: String(port), servername: key }, callback) });
    }
    names.set(key, { addresses: [...addresses], port, agent });
  },
  reset() {
    for (const entry of names.values()) entry.agent?.close().catch(() => {});
    names.clear();
  },
};

const isIPv6 = (address) => address.includes(":");

// A DNS-over-HTTPS JSON answer (application/dns-json), as cloudflare-dns.com gives it.
function dnsAnswer(url) {
  const name = (url.searchParams.get("name") || "").toLowerCase().replace(/\.$/, "");
  const type = String(url.searchParams.get("type") || "A").toUpperCase();
  const code = type === "AAAA" || type === "28" ? 28 : 1;
  const entry = names.get(name);
  const question = [{ name, type: code }];
  if (!entry) return { Status: 3, TC: false, RD: true, RA: true, AD: false, CD: false, Question: question };
  const Answer = entry.addresses.filter((a) => isIPv6(a) === (code === 28)).map((data) => ({ name, type: code, TTL: 60, data }));
  return { Status: 0, TC: false, RD: true, RA: true, AD: false, CD: false, Question: question, ...(Answer.length ? { Answer } : {}) };
}

export function installNetwork() {
  const nodeFetch = globalThis.fetch;
  globalThis.fetch = async (input, init = {}) => {
    const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    if (url.protocol === "https:" && url.hostname === DOH_HOST && url.pathname === "/dns-query") {
      return new Response(JSON.stringify(dnsAnswer(url)), { status: 200, headers: { "content-type": "application/dns-json" } });
    }
    const entry = url.protocol === "https:" ? names.get(url.hostname.toLowerCase()) : undefined;
    if (!entry) return nodeFetch(input, init);
    // A public address where nothing answers: the connection fails, as fetch reports it.
    if (!entry.agent) throw new TypeError("fetch failed", { cause: Object.assign(new Error(`connect ECONNREFUSED ${entry.addresses[0]}:443`), { code: "ECONNREFUSED" }) });
    return undiciFetch(input, { ...init, dispatcher: entry.agent });
  };
}
