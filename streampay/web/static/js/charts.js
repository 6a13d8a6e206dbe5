// SVG charts drawn from data: bars (earnings by day) and a line (retention). No library, no canvas.
const NS = "http://www.w3.org/2000/svg";
const W = 640, H = 240, PAD = { left: 84, right: 16, top: 16, bottom: 40 };

function el(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text != null) node.textContent = text;
  return node;
}

function frame(title, description) {
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart" });
  svg.append(el("title", {}, title), el("desc", {}, description));
  return svg;
}

function axes(svg, maxY, formatY) {
  const plotH = H - PAD.top - PAD.bottom;
  for (let i = 0; i <= 4; i++) {
    const y = PAD.top + plotH - (plotH * i) / 4;
    svg.append(el("line", { x1: PAD.left, x2: W - PAD.right, y1: y, y2: y, class: "grid" }));
    svg.append(el("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end", class: "tick" }, formatY((maxY * i) / 4)));
  }
}

// points: [{label, value}] with numeric values; formatY renders an axis value.
export function barChart(title, points, formatY = String) {
  const description = points.map((p) => `${p.label}: ${formatY(p.value)}`).join("; ") || "No data.";
  const svg = frame(title, description);
  const maxY = Math.max(...points.map((p) => p.value), 0) || 1;
  axes(svg, maxY, formatY);
  const plotW = W - PAD.left - PAD.right, plotH = H - PAD.top - PAD.bottom;
  const step = plotW / Math.max(points.length, 1);
  points.forEach((p, i) => {
    const barH = (p.value / maxY) * plotH;
    const x = PAD.left + i * step + step * 0.15;
    const bar = el("rect", { x, y: PAD.top + plotH - barH, width: step * 0.7, height: barH, class: "bar" });
    bar.append(el("title", {}, `${p.label}: ${formatY(p.value)}`));
    svg.append(bar);
    if (points.length <= 14 || i % Math.ceil(points.length / 14) === 0) {
      svg.append(el("text", { x: x + step * 0.35, y: H - PAD.bottom + 16, "text-anchor": "middle", class: "tick" }, p.label));
    }
  });
  return svg;
}

// points: [{x, y}] with x and y in 0..1 (share of the duration, share of sessions still watching).
export function lineChart(title, points) {
  const pct = (v) => `${Math.round(v * 100)}%`;
  const svg = frame(title, points.map((p) => `${pct(p.x)} of the way: ${pct(p.y)} still watching`).join("; ") || "No data.");
  axes(svg, 1, pct);
  const plotW = W - PAD.left - PAD.right, plotH = H - PAD.top - PAD.bottom;
  const at = (p) => `${PAD.left + p.x * plotW},${PAD.top + plotH - p.y * plotH}`;
  if (points.length) svg.append(el("polyline", { points: points.map(at).join(" "), class: "line" }));
  for (const x of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(el("text", { x: PAD.left + x * plotW, y: H - PAD.bottom + 16, "text-anchor": "middle", class: "tick" }, pct(x)));
  }
  return svg;
}
