/* interlock dashboard: the live feed (GET /v1/events, SSE read with fetch so that a
   router key can be sent), totals and charts (GET /v1/stats, polled, and the feed),
   and the route map (GET /v1/table). */
"use strict";
(function () {
  const IL = window.IL, el = IL.el;
  const COLUMNS = ["time", "stage", "surface", "cell", "model", "where", "ms", "tokens", "cost", "saved"];
  const MAX_ROWS = 200, BUCKET_S = 10, KEEP_S = 3600, POLL_MS = 5000;
  const state = {
    rows: new Map(),        // request id -> {tr, data}
    buckets: new Map(),     // bucket start (s) -> [local, cloud]
    latencies: [],          // [t, ms]
    samples: [],            // stats samples: {t, p50, p95, cost, saved}
    cellHits: new Map(),    // cell key -> count since page load
    table: null,
    seenCompleted: new Set(),
  };
  const $ = (id) => document.getElementById(id);
  const now = () => Date.now() / 1000;

  // -- live feed -----------------------------------------------------------------------

  function rowFor(id) {
    let row = state.rows.get(id);
    if (row) return row;
    const empty = $("feed-body").querySelector("tr.empty");
    if (empty) empty.remove();
    const numeric = new Set(["ms", "tokens", "cost", "saved"]);
    const cells = COLUMNS.map((c) => el("td", {className: "c-" + c + (numeric.has(c) ? " num" : "")}));
    const tr = el("tr", {className: "fresh", dataset: {id: id}}, ...cells);
    $("feed-body").prepend(tr);
    row = {tr, data: {}};
    state.rows.set(id, row);
    while (state.rows.size > MAX_ROWS) {
      const [oldest] = state.rows.keys();
      state.rows.get(oldest).tr.remove();
      state.rows.delete(oldest);
    }
    $("feed-count").textContent = state.rows.size + " shown";
    return row;
  }

  function td(row, name) { return row.tr.querySelector("td.c-" + name); }

  function renderRow(row) {
    const d = row.data;
    td(row, "time").textContent = IL.clock(d.ts);
    const stage = td(row, "stage");
    stage.replaceChildren(el("span", {className: "stage " + (d.failed ? "error" : d.stage)}, d.failed ? "error " + (d.status || "") : d.stage));
    td(row, "surface").textContent = d.surface || "";
    const cell = td(row, "cell");
    cell.textContent = d.cell || "";
    cell.title = d.reason ? d.cell + ": " + d.reason : (d.cell || "");
    const model = td(row, "model");
    model.textContent = d.model || "";
    model.title = d.model || "";
    const where = td(row, "where");
    where.replaceChildren();
    if (d.local !== undefined && d.local !== null) {
      where.append(el("span", {className: "where " + (d.local ? "local" : "cloud")}, d.local ? "local" : "cloud"));
    }
    td(row, "ms").textContent = d.latency_ms !== undefined ? IL.ms(d.latency_ms) : "";
    td(row, "tokens").textContent = d.tokens_out !== undefined ? (d.tokens_in + " → " + d.tokens_out) : "";
    td(row, "cost").textContent = d.cost_usd !== undefined ? IL.usd(d.cost_usd) : "";
    td(row, "saved").textContent = d.saved_usd !== undefined ? IL.usd(d.saved_usd) : "";
  }

  /** Fold one event (or a logged record, kind "completed") into the feed and charts. */
  function onEvent(kind, ev) {
    if (!ev || !ev.id) return;
    const row = rowFor(ev.id);
    const d = row.data;
    const order = {started: 0, classified: 1, routed: 2, completed: 3};
    if (d.stage === undefined || order[kind] >= order[d.stage]) d.stage = kind;
    if (ev.ts && (kind === "started" || d.ts === undefined)) d.ts = ev.ts;
    for (const k of ["surface", "cell", "reason", "provider", "latency_ms", "tokens_in", "tokens_out", "cost_usd", "saved_usd", "status"]) {
      if (ev[k] !== undefined && ev[k] !== null) d[k] = ev[k];
    }
    if (ev.model) d.model = ev.model;
    if (kind === "routed" && ev.local !== undefined) d.local = ev.local;
    if (ev.locality) d.local = ev.locality === "local";
    if (kind === "completed") {
      d.failed = ev.status >= 400;
      if (d.failed && !ev.locality) d.local = undefined;
      chartPoint(ev);
    }
    if (kind === "routed" && ev.cell) flashCell(ev.cell);
    renderRow(row);
  }

  function chartPoint(ev) {
    if (state.seenCompleted.has(ev.id)) return;
    state.seenCompleted.add(ev.id);
    const t = ev.ts || now();
    if (ev.status < 400 && ev.locality) {
      const b = Math.floor(t / BUCKET_S) * BUCKET_S;
      const pair = state.buckets.get(b) || [0, 0];
      pair[ev.locality === "local" ? 0 : 1] += 1;
      state.buckets.set(b, pair);
    }
    if (ev.latency_ms !== undefined) state.latencies.push([t, ev.latency_ms]);
    scheduleDraw();
    scheduleStats();
  }

  let lastEventId = null;
  async function follow() {
    let delay = 1000;
    for (;;) {
      try {
        const extra = {accept: "text/event-stream"};
        if (lastEventId !== null) extra["last-event-id"] = lastEventId;  // replay what we missed
        const resp = await fetch("/v1/events", {headers: IL.headers(extra)});
        if (!resp.ok) {
          const body = await resp.json().catch(() => null);
          throw new Error(IL.errorText(resp.status, body));
        }
        IL.setConn("live", "live");
        // the bus only keeps events while someone listens: after a gap, take the
        // requests finished meanwhile from the log (rows are merged by request id)
        if (delay > 1000 || lastEventId !== null) prefill();
        delay = 1000;
        await IL.readSSE(resp, (msg) => {
          if (msg.id !== null) lastEventId = msg.id;
          if (!msg.data) return;
          let data;
          try { data = JSON.parse(msg.data); } catch (e) { return; }
          onEvent(data.event || data.type || msg.event, data);
        });
        IL.setConn("retry", "reconnecting…");
      } catch (err) {
        IL.setConn("retry", "feed: " + err.message);
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  }

  // -- totals and charts -----------------------------------------------------------------

  // the log is written in batches (a fraction of a second behind the feed): poll
  // soon after a request completes, and once more a little later
  let statsTimers = [];
  function scheduleStats() {
    statsTimers.forEach(clearTimeout);
    statsTimers = [setTimeout(pollStats, 600), setTimeout(pollStats, 2000)];
  }

  const num = (v) => (typeof v === "number" ? v : undefined);

  /** GET /v1/stats (the whole log): the totals and one sample for the charts. */
  async function pollStats() {
    let s;
    try { s = await IL.api("/v1/stats"); } catch (err) { $("k-requests").title = err.message; return; }
    const lat = s.latency_ms || {};
    $("k-requests").textContent = IL.num(num(s.requests));
    $("k-local").textContent = IL.pct(num(s.local_share));
    $("k-local").title = (s.local || 0) + " local, " + (s.cloud || 0) + " cloud";
    $("k-latency").textContent = IL.ms(num(lat.p50)) + " / " + IL.ms(num(lat.p95)) + " ms";
    $("k-tps").textContent = IL.num(num(s.tokens_per_s));
    $("k-cost").textContent = IL.usd(num(s.cost_usd));
    $("k-saved").textContent = IL.usd(num(s.saved_usd));
    $("k-saved").title = "a cloud-only baseline would have cost " + IL.usd(num(s.baseline_usd));
    $("k-fails").textContent = (s.fallen_back || 0) + " / " + (s.escalated || 0) + " / " + (s.errors || 0);
    state.samples.push({t: now(), p50: num(lat.p50), p95: num(lat.p95),
                        cost: num(s.cost_usd) || 0, saved: num(s.saved_usd) || 0});
    if (state.samples.length > 720) state.samples.shift();
    scheduleDraw();
  }

  let drawPending = false;
  function scheduleDraw() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => { drawPending = false; draw(); });
  }

  function draw() {
    const cutoff = now() - KEEP_S;
    for (const b of [...state.buckets.keys()]) if (b < cutoff) state.buckets.delete(b);
    state.latencies = state.latencies.filter((p) => p[0] >= cutoff);
    const css = getComputedStyle(document.documentElement);
    const c = (name) => css.getPropertyValue(name).trim();
    const buckets = [...state.buckets.entries()].sort((a, b) => a[0] - b[0])
      .map(([t, v]) => [t + BUCKET_S, v[0], v[1]]);
    Charts.draw($("chart-share"), {
      series: [{type: "stack", colors: [c("--local"), c("--cloud")], data: buckets, width: BUCKET_S}],
      yFmt: (v) => String(Math.round(v)), integer: true, empty: "no answered requests yet",
    });
    const samples = state.samples;
    Charts.draw($("chart-latency"), {
      series: [
        {type: "dots", color: "#7a8591", data: state.latencies},
        {type: "line", color: c("--accent"), data: samples.filter((s) => s.p50 !== undefined).map((s) => [s.t, s.p50])},
        {type: "line", color: c("--warn"), data: samples.filter((s) => s.p95 !== undefined).map((s) => [s.t, s.p95])},
      ],
      yFmt: IL.tick, empty: "no requests yet",
    });
    Charts.draw($("chart-savings"), {
      series: [
        {type: "line", color: c("--local"), data: samples.map((s) => [s.t, s.saved])},
        {type: "line", color: c("--cloud"), data: samples.map((s) => [s.t, s.cost])},
      ],
      yFmt: IL.usdTick, empty: "no stats yet",
    });
  }

  // -- route map -------------------------------------------------------------------------

  function chip(table, entry) {
    const [key, role, local, score] = entry;
    const name = IL.shortModel(key);
    return el("span", {
      className: "chip " + (local ? "local " : "cloud ") + role,
      title: key + " · " + table.roles[role] + " · score " + score,
    }, el("b", null, role.toUpperCase()), name);
  }

  function renderMap(table) {
    const ax = table.axes;
    const cols = [];
    for (const s of ax.sensitivity) for (const m of ax.modality) cols.push([s, m]);
    const head1 = el("tr", null, el("th", {colSpan: 2, rowSpan: 2}, "task · complexity"),
      ...ax.sensitivity.map((s) => el("th", {colSpan: ax.modality.length}, s)));
    const head2 = el("tr", null, ...cols.map(([, m]) => el("th", null, m)));
    const body = [];
    let filled = 0;
    for (const task of ax.task) {
      ax.complexity.forEach((cx, i) => {
        const tr = el("tr", null);
        if (i === 0) tr.append(el("th", {className: "task", rowSpan: ax.complexity.length}, task));
        tr.append(el("th", {className: "cx"}, cx));
        for (const [s, m] of cols) {
          const key = [task, cx, s, m].join(".");
          const cell = table.cells[key];
          const tdc = el("td", {className: "cell " + s, dataset: {cell: key}});
          if (!cell) {
            tdc.textContent = "—";
          } else if (!cell.chain.length) {
            tdc.classList.add("refused");
            tdc.textContent = s === "private" ? "refused: no local model" : "no model";
          } else {
            filled += 1;
            cell.chain.forEach((e) => tdc.append(chip(table, e)));
          }
          const bits = [key, "strategy " + (cell ? cell.strategy : "?")];
          if (cell && !cell.cloud) bits.push("cloud not allowed");
          if (cell && cell.rules) bits.push("rules: " + cell.rules.join(", "));
          if (cell && cell.baseline) bits.push("cloud-only baseline: " + cell.baseline);
          tdc.title = bits.join("\n");
          tr.append(tdc);
        }
        body.push(tr);
      });
    }
    $("routemap").replaceChildren(el("thead", null, head1, head2), el("tbody", null, ...body));
    $("map-note").textContent = Object.keys(table.cells).length + " cells, " + filled +
      " with a chain · models: " + Object.keys(table.models).length +
      " · a cell lights up when a request is routed to it";
  }

  function flashCell(key) {
    const tdc = document.querySelector('#routemap td[data-cell="' + CSS.escape(key) + '"]');
    if (!tdc) return;
    const n = (state.cellHits.get(key) || 0) + 1;
    state.cellHits.set(key, n);
    let hits = tdc.querySelector(".hits");
    if (!hits) { hits = el("span", {className: "hits"}); tdc.prepend(hits); }
    hits.textContent = "×" + n;
    tdc.classList.add("hit");
    setTimeout(() => tdc.classList.remove("hit"), 1500);
  }

  // -- start -----------------------------------------------------------------------------

  async function prefill() {
    try {
      const logs = await IL.api("/v1/logs?limit=100");
      const records = (logs && (logs.data || logs.records)) || [];
      records.slice().reverse().forEach((r) => onEvent("completed", r));
    } catch (err) { /* the log is optional: the live feed still works */ }
  }

  async function start() {
    IL.table().then((t) => { state.table = t; renderMap(t); })
      .catch((err) => { $("routemap").replaceChildren(el("tbody", null, el("tr", null, el("td", null, "cannot load the table: " + err.message)))); });
    await prefill();
    pollStats();
    setInterval(pollStats, POLL_MS);
    window.addEventListener("resize", scheduleDraw);
    follow();
  }
  document.addEventListener("DOMContentLoaded", start);
})();
