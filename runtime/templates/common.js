/* interlock pages: shared helpers (no framework, no build step).
   Everything that shows data builds DOM nodes and sets their text (no HTML strings). */
"use strict";
(function () {
  const KEY = "interlock.apiKey";
  const IL = {};

  /** Create an element: IL.el("td", {className: "x", title: "y"}, "text", childNode). */
  IL.el = function (tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null) continue;
        if (k === "dataset") Object.assign(node.dataset, v);
        else node[k] = v;
      }
    }
    for (const child of children) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  };

  IL.apiKey = () => localStorage.getItem(KEY) || "";

  /** Request headers: JSON plus the router key when one is set. */
  IL.headers = function (extra) {
    const h = Object.assign({"content-type": "application/json"}, extra || {});
    const key = IL.apiKey();
    if (key) h.authorization = "Bearer " + key;
    return h;
  };

  /** The message of an error body in any of the router's shapes. */
  IL.errorText = function (status, body) {
    if (body && typeof body === "object") {
      const e = body.error;
      if (e && typeof e === "object" && e.message) return e.message;
      if (typeof e === "string") return e;
      if (body.message) return body.message;
    }
    return "HTTP " + status;
  };

  /** fetch + JSON; throws an Error carrying the router's message and status. */
  IL.api = async function (path, options) {
    const opts = Object.assign({}, options || {});
    opts.headers = IL.headers(opts.headers);
    if (opts.json !== undefined) {
      opts.body = JSON.stringify(opts.json);
      delete opts.json;
    }
    const resp = await fetch(path, opts);
    let body = null;
    const text = await resp.text();
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
    if (!resp.ok) {
      const err = new Error(IL.errorText(resp.status, body) || text);
      err.status = resp.status;
      throw err;
    }
    return body;
  };

  IL.usd = function (x) {
    if (x === undefined || x === null || isNaN(x)) return "–";
    const v = Number(x);
    const a = Math.abs(v);
    if (a < 1e-9) return "$0";  // float noise of a difference, not money
    if (a >= 100) return "$" + v.toFixed(0);
    if (a >= 1) return "$" + v.toFixed(2);
    if (a >= 0.01) return "$" + v.toFixed(4);
    return "$" + v.toPrecision(2);
  };
  /** Axis labels: few significant digits, no float noise. */
  IL.tick = (v) => (v === 0 ? "0" : Math.abs(v) >= 100 ? String(Math.round(v)) : String(Number(v.toPrecision(2))));
  IL.usdTick = (v) => (v === 0 ? "$0" : "$" + IL.tick(v));
  IL.ms = (x) => (x === undefined || x === null || isNaN(x)) ? "–" : (x >= 10000 ? (x / 1000).toFixed(1) + " s" : Math.round(x) + "");
  IL.pct = (x) => (x === undefined || x === null || isNaN(x)) ? "–" : Math.round(x * 100) + "%";
  IL.num = (x) => (x === undefined || x === null || isNaN(x)) ? "–" : (x >= 1e6 ? (x / 1e6).toFixed(1) + "M" : x >= 1e4 ? (x / 1e3).toFixed(1) + "k" : String(Math.round(x * 10) / 10));
  IL.clock = function (t) {
    const d = t ? new Date(t * 1000) : new Date();
    return d.toTimeString().slice(0, 8);
  };
  IL.shortModel = (key) => key ? String(key).replace(/^[^/]+\//, "") : "";

  /** The loaded decision table (GET /v1/table), fetched once per page. */
  let tablePromise = null;
  IL.table = function () {
    if (!tablePromise) {
      tablePromise = IL.api("/v1/table").then((t) => {
        const info = document.getElementById("table-info");
        if (info) info.textContent = "profile " + t.profile + " · table " + String(t.hash).replace(/^sha256:/, "").slice(0, 12);
        return t;
      });
      tablePromise.catch(() => { tablePromise = null; });
    }
    return tablePromise;
  };

  /** Is a model key local, per the table (undefined if unknown). */
  IL.isLocal = function (table, key) {
    const m = table && table.models && table.models[key];
    return m ? m.local : undefined;
  };

  /** USD for usage on a model, from the table's prices (per million tokens). */
  IL.costOf = function (table, key, usage) {
    const m = table && table.models && table.models[key];
    if (!m || !usage) return null;
    const inTok = usage.prompt_tokens ?? usage.input_tokens ?? 0;
    const outTok = usage.completion_tokens ?? usage.output_tokens ?? 0;
    return (inTok * m.price[0] + outTok * m.price[1]) / 1e6;
  };

  /** Read a text/event-stream response: onEvent({event, data, id}) per message. */
  IL.readSSE = async function (resp, onEvent) {
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buf += dec.decode(value, {stream: true}).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const msg = {event: "message", data: "", id: null, comment: null};
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) { msg.comment = line.slice(1).trim(); continue; }
          const i = line.indexOf(":");
          const field = i < 0 ? line : line.slice(0, i);
          let val = i < 0 ? "" : line.slice(i + 1);
          if (val.startsWith(" ")) val = val.slice(1);
          if (field === "data") data.push(val);
          else if (field === "event") msg.event = val;
          else if (field === "id") msg.id = val;
        }
        msg.data = data.join("\n");
        if (data.length || msg.comment !== null) onEvent(msg);
      }
    }
  };

  /** Show the live-connection state in the header badge. */
  IL.setConn = function (state, text) {
    const c = document.getElementById("conn");
    if (c) { c.dataset.state = state; c.textContent = text; }
  };

  function initKeyForm() {
    const form = document.getElementById("key-form");
    const input = document.getElementById("api-key");
    if (!form || !input) return;
    input.value = IL.apiKey();
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (input.value) localStorage.setItem(KEY, input.value); else localStorage.removeItem(KEY);
      location.reload();
    });
  }
  document.addEventListener("DOMContentLoaded", initKeyForm);
  window.IL = IL;
})();
