/* interlock chat page: try the router.  Messages go to POST /v1/chat/completions
   (streamed, read with fetch + ReadableStream); where each answer ran comes from the
   X-Router-* response headers, its cost and savings from the usage chunk and the
   table's prices (GET /v1/table); conversations live in the router's SQLite store
   (/v1/conversations). */
"use strict";
(function () {
  const IL = window.IL, el = IL.el;
  const $ = (id) => document.getElementById(id);
  const state = {convId: null, messages: [], table: null, busy: false};

  // -- money: the same rule as the request log (interlock.runtime.record) ---------------

  function money(table, key, cell, usage) {
    const cost = IL.costOf(table, key, usage);
    if (cost === null) return {cost: null, saved: null, baseline: null};
    const c = table.cells[cell] || (table.embeddings || {})[cell];
    const base = c && c.baseline;
    if (!base) return {cost, saved: 0, baseline: null};
    const baseCost = IL.costOf(table, base, usage);
    return {cost, saved: baseCost - cost, baseline: base};
  }

  // -- rendering -------------------------------------------------------------------------

  function routeLine(meta) {
    const parts = [];
    if (meta.model && meta.model !== "none") {
      parts.push(el("span", {className: "where " + (meta.local ? "local" : "cloud")}, meta.local ? "local" : "cloud"));
      parts.push(el("span", null, "ran on ", el("code", {className: "ran-on"}, meta.model)));
    } else {
      parts.push(el("span", null, "not answered"));
    }
    const privateCell = /\.private\./.test(meta.cell || "");
    if (meta.private || privateCell) {
      parts.push(el("span", {className: "where local private-badge",
        title: meta.private ? "you ticked private" : "the classifier found private data"},
        meta.private ? "private" : "private (detected)"));
    }
    if (meta.cell && meta.cell !== "none") parts.push(el("span", null, "cell ", el("code", {className: "cell"}, meta.cell)));
    if (meta.cost !== undefined && meta.cost !== null) parts.push(el("span", {className: "cost"}, "cost " + IL.usd(meta.cost)));
    if (meta.saved !== undefined && meta.saved !== null) {
      parts.push(el("span", {className: "saved", title: meta.baseline ? "vs the cloud-only baseline " + meta.baseline : "no cloud baseline"},
        "saved " + IL.usd(meta.saved) + (meta.baseline ? " vs " + IL.shortModel(meta.baseline) : "")));
    }
    if (meta.latency_ms !== undefined) parts.push(el("span", null, IL.ms(meta.latency_ms) + " ms"));
    if (meta.usage) {
      const u = meta.usage;
      parts.push(el("span", null, (u.prompt_tokens ?? 0) + " → " + (u.completion_tokens ?? 0) + " tokens"));
    }
    if (meta.reason && meta.reason !== "none") parts.push(el("span", {className: "why"}, "why: " + meta.reason));
    return el("div", {className: "route"}, ...parts);
  }

  function addMessage(msg) {
    $("hint").hidden = true;
    const meta = msg.meta || {};
    const cls = "msg " + msg.role + (meta.error ? " error" : "");
    const body = el("div", {className: "body"}, msg.content);
    const node = el("div", {className: cls}, body);
    if (msg.role === "assistant") node.append(routeLine(meta));
    $("messages").append(node);
    $("messages").scrollTop = $("messages").scrollHeight;
    return node;
  }

  function showConversation(conv) {
    state.convId = conv ? conv.id : null;
    state.messages = conv ? conv.messages : [];
    $("messages").replaceChildren($("hint"));
    $("hint").hidden = state.messages.length > 0;
    state.messages.forEach(addMessage);
    markCurrent();
  }

  function markCurrent() {
    for (const li of $("conv-list").children) li.classList.toggle("current", li.dataset.id === state.convId);
  }

  async function refreshList() {
    const list = await IL.api("/v1/conversations");
    const items = list.data.map((c) => {
      const li = el("li", {dataset: {id: c.id}, title: c.title},
        c.title, el("span", {className: "when"}, new Date(c.updated * 1000).toLocaleString() + " · " + c.message_count + " messages"));
      li.addEventListener("click", () => open(c.id));
      return li;
    });
    $("conv-list").replaceChildren(...items);
    markCurrent();
  }

  async function open(id) {
    if (state.busy) return;
    try {
      showConversation(await IL.api("/v1/conversations/" + encodeURIComponent(id)));
    } catch (err) { status("cannot open the conversation: " + err.message); }
  }

  function status(text) { $("status").textContent = text || ""; }

  // -- sending ---------------------------------------------------------------------------

  async function save(role, content, meta) {
    const msg = await IL.api("/v1/conversations/" + encodeURIComponent(state.convId) + "/messages",
      {method: "POST", json: {role, content, meta}});
    state.messages.push(msg);
    return msg;
  }

  async function send(ev) {
    ev.preventDefault();
    const text = $("prompt").value.trim();
    if (!text || state.busy) return;
    state.busy = true;
    $("send").disabled = true;
    status("sending…");
    const model = $("model").value;
    const priv = $("private").checked;
    try {
      if (!state.convId) {
        const conv = await IL.api("/v1/conversations", {method: "POST", json: {}});
        state.convId = conv.id;
        state.messages = [];
      }
      const history = state.messages.filter((m) => !(m.meta && m.meta.error))
        .map((m) => ({role: m.role, content: m.content}));
      addMessage(await save("user", text, {model, private: priv}));
      $("prompt").value = "";
      history.push({role: "user", content: text});
      const {content, meta} = await complete(model, priv, history);
      await save("assistant", content, meta);
      await refreshList();
      status("");
    } catch (err) {
      status("error: " + err.message);
    } finally {
      state.busy = false;
      $("send").disabled = false;
      $("prompt").focus();
    }
  }

  /** One streamed completion; renders as it arrives; returns the text and its meta. */
  async function complete(model, priv, history) {
    const table = state.table || await IL.table();
    const body = {model, messages: history, stream: true, stream_options: {include_usage: true}};
    if (priv) body.private = true;
    const t0 = performance.now();
    const node = addMessage({role: "assistant", content: "", meta: {}});
    const textNode = node.querySelector(".body");
    node.classList.add("pending");
    const resp = await fetch("/v1/chat/completions", {method: "POST", headers: IL.headers(), body: JSON.stringify(body)});
    const h = (name) => resp.headers.get("x-router-" + name) || undefined;
    const meta = {requested: model, private: priv, provider: h("provider"), model: h("model"),
                  cell: h("cell"), reason: h("reason"), attempts: Number(h("attempts") || 0)};
    meta.local = IL.isLocal(table, meta.model);
    let content = "";
    if (!resp.ok) {
      const err = await resp.json().catch(() => null);
      content = IL.errorText(resp.status, err);
      meta.error = true;
      meta.status = resp.status;
    } else {
      await IL.readSSE(resp, (msg) => {
        if (!msg.data || msg.data === "[DONE]") return;
        let chunk;
        try { chunk = JSON.parse(msg.data); } catch (e) { return; }
        if (chunk.error) {
          meta.error = true;
          content += (content ? "\n\n" : "") + "[error] " + IL.errorText(0, chunk);
        }
        for (const choice of chunk.choices || []) {
          const piece = choice.delta && choice.delta.content;
          if (piece) content += piece;
        }
        if (chunk.usage) meta.usage = chunk.usage;
        textNode.textContent = content;
      });
    }
    meta.latency_ms = Math.round(performance.now() - t0);
    if (!meta.error) Object.assign(meta, money(table, meta.model, meta.cell, meta.usage));
    node.classList.remove("pending");
    node.classList.toggle("error", !!meta.error);
    textNode.textContent = content;
    node.querySelector(".route").replaceWith(routeLine(meta));
    return {content, meta};
  }

  // -- start -----------------------------------------------------------------------------

  async function start() {
    $("composer").addEventListener("submit", send);
    $("prompt").addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); $("composer").requestSubmit(); }
    });
    $("new-conv").addEventListener("click", () => { if (!state.busy) { showConversation(null); $("prompt").focus(); } });
    try {
      state.table = await IL.table();
      const models = await IL.api("/v1/models");
      const select = $("model");
      for (const m of models.data) {
        if (m.id === "auto" || m.id === "route-auto") continue;
        const local = IL.isLocal(state.table, m.id);
        select.append(el("option", {value: m.id}, m.id + (local === undefined ? "" : local ? "  (local)" : "  (cloud)")));
      }
      IL.setConn("live", "ready");
      await refreshList();
    } catch (err) {
      IL.setConn("retry", err.message);
    }
  }
  document.addEventListener("DOMContentLoaded", start);
})();
