// A loopback stand-in for the Ollama server's documented endpoints (ollama's docs/api.md), recording every request.
// Prints its port on the first stdout line; exits after GET /_shutdown or 120 s.
//   HEAD/POST /api/blobs/sha256:<hex>  200 / 404; POST checks the digest of the body (400 on mismatch), 201
//   POST /api/create                    400 for a bad name or unknown blob digests; NDJSON status lines;
//                                        a model name containing "midstream-fail" gets an error inside the stream
//   POST /api/push                      400 without a namespace; NDJSON; "unauthorized" in the name -> error line
//   GET  /api/version, GET /_requests (the record as JSON)
import { createServer } from "node:http";
import { createHash } from "node:crypto";

const blobs = new Map();   // digest -> size
const requests = [];
const digestRe = /^sha256[:-]([0-9a-fA-F]{64})$/;

function send(res, status, obj) {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify(obj));
}
function stream(res, lines) {
  res.writeHead(200, { "Content-Type": "application/x-ndjson" });
  for (const l of lines) res.write(JSON.stringify(l) + "\n");
  res.end();
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const url = new URL(req.url, "http://x");
    const rec = { method: req.method, path: url.pathname };
    if (url.pathname === "/_requests") return send(res, 200, requests);
    if (url.pathname === "/_shutdown") { send(res, 200, {}); server.close(); return setImmediate(() => process.exit(0)); }
    requests.push(rec);
    if (url.pathname === "/api/version") return send(res, 200, { version: "0.33.0" });

    if (url.pathname.startsWith("/api/blobs/")) {
      const d = decodeURIComponent(url.pathname.slice("/api/blobs/".length));
      const m = digestRe.exec(d);
      if (!m) return send(res, 400, { error: "invalid digest format" });
      const key = "sha256:" + m[1].toLowerCase();
      if (req.method === "HEAD") { res.writeHead(blobs.has(key) ? 200 : 404); return res.end(); }
      if (req.method !== "POST") return send(res, 405, { error: "method not allowed" });
      const got = "sha256:" + createHash("sha256").update(body).digest("hex");
      rec.size = body.length;
      rec.body_digest = got;
      if (got !== key) return send(res, 400, { error: `digest mismatch, expected ${key}, got ${got}` });
      const existed = blobs.has(key);
      blobs.set(key, body.length);
      res.writeHead(existed ? 200 : 201); return res.end();
    }

    let j;
    try { j = JSON.parse(body.toString("utf8")); } catch { return send(res, 400, { error: "invalid JSON body" }); }
    rec.json = j;
    if (url.pathname === "/api/create" && req.method === "POST") {
      const name = j.model ?? j.name;
      if (!name || /[^A-Za-z0-9_.:\/-]/.test(name)) return send(res, 400, { error: "invalid model name" });
      if (!j.files && !j.from) return send(res, 400, { error: "neither 'from' or 'files' was specified" });
      for (const [f, d] of Object.entries({ ...(j.files || {}), ...(j.adapters || {}) }))
        if (!blobs.has(d)) return send(res, 400, { error: `blob ${d} for ${f} not found` });
      const lines = [{ status: "parsing GGUF" }];
      for (const d of Object.values(j.files || {})) lines.push({ status: `using existing layer ${d}` });
      if (name.includes("midstream-fail")) lines.push({ error: "unsupported architecture \"tinyllama\"" });
      else lines.push({ status: "writing manifest" }, { status: "success" });
      return stream(res, lines);
    }
    if (url.pathname === "/api/push" && req.method === "POST") {
      if (!j.model || !j.model.includes("/")) return send(res, 400, { error: "a namespace is required to push" });
      if (j.model.includes("unauthorized"))
        return stream(res, [{ status: "retrieving manifest" }, { error: "unauthorized: your ollama key is not registered" }]);
      return stream(res, [{ status: "retrieving manifest" }, { status: "starting upload", digest: "sha256:00", total: 3 },
        { status: "pushing manifest" }, { status: "success" }]);
    }
    send(res, 404, { error: "404 page not found" });
  });
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
setTimeout(() => process.exit(0), 120000).unref();
