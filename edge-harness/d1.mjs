// The D1 binding as the Worker sees it (`D1Database`, `D1PreparedStatement`: prepare, bind, first,
// all, run, raw, batch), each statement run by workerd's D1 in one request to the harness's worker.
// miniflare's own Node proxy for D1 makes `prepare` and `bind` synchronous round trips to workerd
// (about 20 ms per query here); this keeps workerd's D1 engine, errors and result shapes with one
// round trip per statement or batch. Statements are plain data until they run.
const encodeParam = (v) => {
  if (v instanceof ArrayBuffer) v = new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return { $bytes: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") };
  return v === undefined ? null : v;
};

export class D1PreparedStatement {
  constructor(send, sql, params = []) { this.send = send; this.sql = sql; this.params = params; }
  bind(...params) { return new D1PreparedStatement(this.send, this.sql, params); }
  first(column) { return this.send("first", [this], column); }
  all() { return this.send("all", [this]); }
  run() { return this.send("run", [this]); }
  raw(options) { return this.send("raw", [this], options); }
}

export class D1Database {
  constructor(dispatch) {
    this.send = async (op, statements, column) => {
      const response = await dispatch("http://d1.internal/", {
        method: "POST", headers: { "x-edge-harness-d1": "1", "content-type": "application/json" },
        body: JSON.stringify({ op, column, statements: statements.map((s) => [s.sql, s.params.map(encodeParam)]) }),
      });
      const answer = await response.json();
      if (answer.error !== undefined) throw new Error(answer.error);
      return answer.result;
    };
  }
  prepare(sql) { return new D1PreparedStatement(this.send, sql); }
  batch(statements) { return this.send("batch", statements); }
  exec(sql) { return this.send("exec", [{ sql, params: [] }]); }
}
