/* interlock pages: a very small time-series chart on <canvas> (our own, no library).
   Charts.draw(canvas, {series, yFmt, yMax, integer, empty}) where each series is
     {type: "line" | "dots" | "stack", color, data: [[t, y], ...]}          (line, dots)
     {type: "stack", colors: [c0, c1], data: [[t, y0, y1], ...], width: s}  (stacked bars)
   t is in seconds (epoch); the x axis spans the data of all series. */
"use strict";
(function () {
  const Charts = {};
  const PAD = {l: 64, r: 10, t: 8, b: 20};

  /** A round tick step (1, 2 or 5 times a power of ten) near raw. */
  function niceStep(raw) {
    if (!(raw > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5]) if (m * p >= raw) return m * p;
    return 10 * p;
  }

  function setup(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || canvas.width;
    const h = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "11px system-ui, sans-serif";
    return {ctx, w, h};
  }

  Charts.draw = function (canvas, spec) {
    const {ctx, w, h} = setup(canvas);
    const series = spec.series || [];
    let tMin = Infinity, tMax = -Infinity, yMax = 0;
    for (const s of series) {
      for (const p of s.data) {
        tMin = Math.min(tMin, p[0] - (s.width || 0));
        tMax = Math.max(tMax, p[0]);
        const y = s.type === "stack" ? p.slice(1).reduce((a, b) => a + b, 0) : p[1];
        if (isFinite(y)) yMax = Math.max(yMax, y);
      }
    }
    const fmt = spec.yFmt || ((v) => String(v));
    const x0 = PAD.l, x1 = w - PAD.r, y0 = h - PAD.b, y1 = PAD.t;
    if (!isFinite(tMin)) {
      ctx.fillStyle = "#66707c";
      ctx.textAlign = "center";
      ctx.fillText(spec.empty || "no data yet", w / 2, h / 2);
      return;
    }
    if (tMax - tMin < 60) tMin = tMax - 60;  // at least a minute wide
    // about four round steps above the data (whole numbers for counts)
    const want = spec.yMax !== undefined ? spec.yMax : yMax * 1.1;
    let step = niceStep(want / 4);
    if (spec.integer) step = Math.max(1, Math.ceil(step));
    const top = Math.max(step, step * Math.ceil(want / step - 1e-9));
    const X = (t) => x0 + (x1 - x0) * (t - tMin) / (tMax - tMin);
    const Y = (v) => y0 - (y0 - y1) * Math.min(v, top) / top;

    // grid and y labels
    ctx.strokeStyle = "#e6e9ed"; ctx.fillStyle = "#66707c"; ctx.lineWidth = 1;
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (let i = 0; i * step <= top * (1 + 1e-9); i++) {
      const v = i * step, y = Math.round(Y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x0, y); ctx.lineTo(x1, y); ctx.stroke();
      ctx.fillText(fmt(v), x0 - 4, y);
    }
    // x labels: start, middle, end as clock times
    ctx.textBaseline = "top";
    [[tMin, "left"], [(tMin + tMax) / 2, "center"], [tMax, "right"]].forEach(([t, align]) => {
      ctx.textAlign = align;
      ctx.fillText(new Date(t * 1000).toTimeString().slice(0, 8), X(t), y0 + 4);
    });

    for (const s of series) {
      if (s.type === "stack") {
        const bw = Math.max(2, (X(tMin + (s.width || 10)) - X(tMin)) - 2);
        for (const p of s.data) {
          let base = 0;
          p.slice(1).forEach((v, i) => {
            if (!(v > 0)) return;
            ctx.fillStyle = s.colors[i];
            ctx.fillRect(X(p[0]) - bw, Y(base + v), bw, Y(base) - Y(base + v));
            base += v;
          });
        }
      } else if (s.type === "dots") {
        ctx.fillStyle = s.color;
        for (const p of s.data) {
          ctx.beginPath(); ctx.arc(X(p[0]), Y(p[1]), 2.5, 0, 2 * Math.PI); ctx.fill();
        }
      } else {
        ctx.strokeStyle = s.color; ctx.lineWidth = 2; ctx.beginPath();
        s.data.forEach((p, i) => (i ? ctx.lineTo(X(p[0]), Y(p[1])) : ctx.moveTo(X(p[0]), Y(p[1]))));
        ctx.stroke();
        if (s.data.length === 1) {
          ctx.fillStyle = s.color; ctx.beginPath();
          ctx.arc(X(s.data[0][0]), Y(s.data[0][1]), 3, 0, 2 * Math.PI); ctx.fill();
        }
      }
    }
    ctx.strokeStyle = "#b8c0c9";
    ctx.beginPath(); ctx.moveTo(x0 + 0.5, y1); ctx.lineTo(x0 + 0.5, y0 + 0.5); ctx.lineTo(x1, y0 + 0.5); ctx.stroke();
  };

  window.Charts = Charts;
})();
