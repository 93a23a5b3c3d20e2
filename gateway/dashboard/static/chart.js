// A small line chart of numbers over time on a <canvas>: one line per field.

const COLORS = ["#2456c7", "#c4320a", "#067647", "#9e77ed", "#b54708", "#0e9384"];

// series: {fields: [name], points: [{t, values: {field: number}}]}
export function drawChart(canvas, series) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 300;
  const height = canvas.clientHeight || 140;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  const points = series.points;
  const ink = getComputedStyle(canvas).color;
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = ink;
  if (points.length < 2) {
    g.fillText(points.length ? "one reading so far" : "no readings", 8, height / 2);
    return;
  }
  const fields = moving(series.fields, points);
  const pad = { left: 40, right: 8, top: 8, bottom: 18 };
  const t0 = points[0].t;
  const t1 = points[points.length - 1].t;
  let lo = Infinity;
  let hi = -Infinity;
  for (const p of points) for (const f of fields) if (f in p.values) (lo = Math.min(lo, p.values[f])), (hi = Math.max(hi, p.values[f]));
  if (lo === hi) (lo -= 1), (hi += 1);
  const x = (t) => pad.left + ((t - t0) / (t1 - t0 || 1)) * (width - pad.left - pad.right);
  const y = (v) => pad.top + (1 - (v - lo) / (hi - lo)) * (height - pad.top - pad.bottom);
  g.globalAlpha = 0.3;
  g.strokeStyle = ink;
  g.strokeRect(pad.left, pad.top, width - pad.left - pad.right, height - pad.top - pad.bottom);
  g.globalAlpha = 1;
  g.fillText(short(hi), 2, pad.top + 8);
  g.fillText(short(lo), 2, height - pad.bottom);
  g.fillText(new Date(t0).toLocaleTimeString(), pad.left, height - 4);
  const end = new Date(t1).toLocaleTimeString();
  g.fillText(end, width - pad.right - g.measureText(end).width, height - 4);
  fields.forEach((field, i) => {
    g.strokeStyle = COLORS[i % COLORS.length];
    g.lineWidth = 1.5;
    g.beginPath();
    let started = false;
    for (const p of points) {
      if (!(field in p.values)) continue;
      const [px, py] = [x(p.t), y(p.values[field])];
      if (started) g.lineTo(px, py);
      else g.moveTo(px, py), (started = true);
    }
    g.stroke();
    g.fillStyle = g.strokeStyle;
    g.fillText(field, pad.left + 4 + i * 70, pad.top + 10);
  });
}

// The fields whose value changes (a constant qos or boot says nothing), or all of them.
function moving(fields, points) {
  const changing = fields.filter((f) => new Set(points.map((p) => p.values[f])).size > 1);
  return changing.length ? changing : fields;
}

function short(v) {
  return Math.abs(v) >= 1000 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1);
}
