// Small SVG charts (no library): a sparkline and a two-series line chart.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(name, attrs) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}

// points: [[t, v], ...] -> "x,y x,y" scaled into width x height (with padding).
function scalePoints(points, width, height, bounds, pad) {
  const p = pad || 2;
  const [t0, t1, v0, v1] = bounds;
  const dt = t1 - t0 || 1;
  const dv = v1 - v0 || 1;
  return points.map(([t, v]) => {
    const x = p + ((t - t0) / dt) * (width - 2 * p);
    const y = height - p - ((v - v0) / dv) * (height - 2 * p);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  }).join(" ");
}

function boundsOf(series) {
  let t0 = Infinity, t1 = -Infinity, v0 = 0, v1 = 0;
  for (const points of series) {
    for (const [t, v] of points) {
      t0 = Math.min(t0, t); t1 = Math.max(t1, t);
      v0 = Math.min(v0, v); v1 = Math.max(v1, v);
    }
  }
  if (!isFinite(t0)) { t0 = 0; t1 = 1; }
  return [t0, t1, v0, v1];
}

function sparkline(points, width, height) {
  const svg = svgEl("svg", {viewBox: `0 0 ${width} ${height}`, class: "spark",
                            width: width, height: height, "aria-hidden": "true"});
  if (points.length < 2) return svg;
  const bounds = boundsOf([points]);
  const last = points[points.length - 1][1];
  svg.appendChild(svgEl("line", {x1: 0, x2: width, class: "zero",
    y1: zeroY(bounds, height), y2: zeroY(bounds, height)}));
  svg.appendChild(svgEl("polyline", {points: scalePoints(points, width, height, bounds),
    class: last >= 0 ? "up" : "down"}));
  return svg;
}

function zeroY(bounds, height, pad) {
  const p = pad || 2;
  const [, , v0, v1] = bounds;
  return (height - p - ((0 - v0) / ((v1 - v0) || 1)) * (height - 2 * p)).toFixed(1);
}

// Draws series [{points, cls}] into an existing <svg> with a 600x220 viewBox.
function lineChart(svg, series, format) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const width = 600, height = 220, pad = 24;
  const usable = series.filter((s) => s.points.length > 0);
  if (!usable.length) {
    svg.appendChild(svgEl("text", {x: width / 2, y: height / 2, class: "empty",
      "text-anchor": "middle"})).textContent = "no data yet";
    return;
  }
  const bounds = boundsOf(usable.map((s) => s.points));
  const zy = zeroY(bounds, height, pad);
  svg.appendChild(svgEl("line", {x1: pad, x2: width - pad, y1: zy, y2: zy, class: "zero"}));
  for (const [label, value] of [["max", bounds[3]], ["min", bounds[2]]]) {
    const y = label === "max" ? pad - 8 : height - 6;
    svg.appendChild(svgEl("text", {x: 4, y: y, class: "axis"})).textContent = format(value);
  }
  for (const s of usable) {
    const pts = s.points.length === 1 ? [s.points[0], [s.points[0][0] + 1, s.points[0][1]]]
                                      : s.points;
    svg.appendChild(svgEl("polyline", {points: scalePoints(pts, width, height, bounds, pad),
                                       class: s.cls}));
  }
}

window.LaserCharts = {sparkline, lineChart};
