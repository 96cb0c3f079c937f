// lasersell-bot dashboard: one EventSource, one state object, render on change.
"use strict";

const API = "/api/v1";
const LAMPORTS = 1e9;
let state = null;
let selected = null;
let renderQueued = false;

const $ = (id) => document.getElementById(id);

function sol(lamports, sign) {
  if (lamports === null || lamports === undefined) return "-";
  const text = (lamports / LAMPORTS).toFixed(4);
  return sign && lamports > 0 ? "+" + text : text;
}
function pct(value) {
  if (value === null || value === undefined) return "-";
  return (value > 0 ? "+" : "") + value.toFixed(1) + "%";
}
function ms(value) {
  return value === null || value === undefined ? "-" : value.toFixed(value < 10 ? 1 : 0) + " ms";
}
function short(text) {
  if (!text) return "-";
  return text.length > 11 ? text.slice(0, 4) + "…" + text.slice(-4) : text;
}
function clock(tms) {
  return new Date(tms).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit",
                                               second: "2-digit"});
}
function esc(text) {
  return String(text === null || text === undefined ? "" : text).replace(/[&<>"']/g,
    (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function signClass(value) {
  return value === null || value === undefined ? "" : value >= 0 ? "up" : "down";
}

function toast(text, bad) {
  const el = $("toast");
  el.textContent = text;
  el.className = bad ? "show bad" : "show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.className = ""; }, 5000);
}

function queueRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}

// --------------------------------------------------------------------- events

function upsert(list, item, key) {
  const index = list.findIndex((x) => x[key] === item[key]);
  if (index >= 0) list[index] = item; else list.unshift(item);
}

const handlers = {
  state(data) { state = data; },
  position(data) {
    if (!state) return;
    const index = state.positions.findIndex((p) => p.id === data.id);
    if (index >= 0) state.positions[index] = data; else state.positions.push(data);
  },
  pnl(data) {
    if (!state) return;
    const p = state.positions.find((x) => x.id === data.id);
    if (!p) return;
    for (const key of ["tokens", "profit_units", "proceeds_units", "profit_pct", "status",
                       "liquidity", "levels_done"]) p[key] = data[key];
    if (data.profit_units === null) return;
    const history = p.pnl_history;
    const last = history[history.length - 1];
    if (last && data.t - last[0] < 1000) last[1] = data.profit_units;
    else history.push([data.t, data.profit_units]);
    if (history.length > 300) history.splice(0, history.length - 300);
  },
  position_closed(data) {
    if (!state) return;
    state.positions = state.positions.filter((p) => p.id !== data.id);
    if (selected === data.id) selected = null;
  },
  trade(data) {
    if (!state) return;
    upsert(state.recent_trades, data, "signal_id");
    state.recent_trades.sort((a, b) => b.signal_id - a.signal_id);
    state.recent_trades = state.recent_trades.slice(0, 20);
    if (data.guard_reason && data.state === "refused") upsert(state.refusals, data, "signal_id");
  },
  summary(data) {
    if (!state) return;
    state.realized = {total_lamports: data.realized_lamports, series: data.realized_series};
    state.executor = data.executor;
  },
  wallets(data) { if (state) state.wallets = data.wallets; },
  mirror(data) {
    if (!state) return;
    if (data.kind) state.mirror.recent.unshift(data);
    if (data.kind === undefined) state.mirror.paused = data.paused;
  },
  notice(data) { toast(data.text, data.kind !== "exit_landed" && data.kind !== "mirror_buy"); },
  action() {},
};

function connect() {
  const source = new EventSource(API + "/events");
  source.onopen = () => { $("live").textContent = "●"; $("live").title = "live"; };
  source.onerror = () => { $("live").textContent = "○"; $("live").title = "reconnecting"; };
  for (const name of Object.keys(handlers)) {
    source.addEventListener(name, (event) => {
      handlers[name](JSON.parse(event.data));
      queueRender();
    });
  }
}

// --------------------------------------------------------------------- render

function render() {
  if (!state) return;
  renderHeader();
  renderSummary();
  renderPositions();
  renderChart();
  renderBands();
  renderTrades();
  renderRefusals();
  renderMirror();
}

function renderMirror() {
  const mirror = state.mirror;
  $("mirror-section").hidden = !mirror.enabled;
  if (mirror.recent.length > 20) mirror.recent.length = 20;
  $("mirror-recent").innerHTML = mirror.recent.map((m) =>
    `<li><span class="state">${esc(m.kind.replace(/_/g, " "))}</span> ` +
    `${esc(short(m.mint))} <span class="muted">from ${esc(short(m.watched_wallet))} · ` +
    `${clock(m.t)}${m.reason ? " · " + esc(m.reason) : ""}</span></li>`).join("") ||
    '<li class="muted">None yet.</li>';
}

function renderHeader() {
  const health = state.health;
  const badge = $("health");
  badge.textContent = health.status;
  badge.className = "badge " + health.status;
  const s = state.session;
  $("session").textContent = s.connected
    ? `session ${s.session_id}` + (s.rtt_ms !== null ? ` · rtt ${s.rtt_ms.toFixed(0)} ms` : "")
    : "stream disconnected";
  const list = $("health-detail");
  const reasons = health.reasons && health.reasons.length ? health.reasons : ["all good"];
  list.innerHTML = reasons.map((r) => `<li>${esc(r)}</li>`).join("") +
    `<li class="muted">loop lag ${ms(health.loop_lag_ms)} · reconnects ${s.reconnects}` +
    (state.executor.dry_run ? " · DRY RUN" : "") + "</li>";
}

function renderSummary() {
  const realized = state.realized.total_lamports;
  $("realized").innerHTML = `<span class="${signClass(realized)}">${sol(realized, true)}</span>`;
  const open = state.positions.reduce((sum, p) => sum + (p.profit_units || 0), 0);
  $("open-pnl").innerHTML = `<span class="${signClass(open)}">${sol(open, true)}</span>`;
  const ex = state.executor;
  $("in-flight").textContent = ex.in_flight;
  $("wire").textContent = `${ms(ex.signal_to_wire_ms.p50)} / ${ms(ex.signal_to_wire_ms.p99)}`;
  const landing = ex.landing || {};
  const land = landing.time_to_land_ms || {};
  const rate = landing.landing_rate;
  $("land").textContent = `${ms(land.p50)} · ${rate === null || rate === undefined
    ? "-" : Math.round(rate * 100) + "%"}`;
  $("wallets").innerHTML = state.wallets.map((w) =>
    `<div><span class="mono">${esc(short(w.pubkey))}</span> ${sol(w.sol_lamports)}</div>`)
    .join("") || "-";
  $("strategy").textContent = strategyText(state.strategy);
  const mirror = state.mirror;
  $("mirror-state").textContent = !mirror.enabled ? "off" : mirror.paused ? "paused" : "on";
  const toggle = $("mirror-toggle");
  toggle.hidden = !mirror.enabled;
  toggle.textContent = mirror.paused ? "Resume" : "Pause";
}

function strategyText(strategy) {
  const s = strategy.effective;
  const parts = [];
  if (s.take_profit_levels && s.take_profit_levels.length) {
    parts.push(`ladder ${s.take_profit_levels.map((l) => "+" + l.profit_pct + "%").join(" ")}`);
  } else if (s.target_profit_pct) parts.push(`TP +${s.target_profit_pct}%`);
  if (s.stop_loss_pct) parts.push(`SL -${s.stop_loss_pct}%`);
  if (s.trailing_stop_pct) parts.push(`trail ${s.trailing_stop_pct}%`);
  if (s.deadline_timeout_sec) parts.push(`deadline ${s.deadline_timeout_sec}s`);
  return (parts.join(" · ") || "-") + (strategy.differs_from_config ? " (changed at run time)" : "");
}

function renderPositions() {
  const box = $("positions");
  if (!state.positions.length) {
    box.innerHTML = '<p class="muted">No open positions.</p>';
    return;
  }
  if (selected === null || !state.positions.some((p) => p.id === selected)) {
    selected = state.positions[0].id;
  }
  box.innerHTML = "";
  for (const p of state.positions) {
    const row = document.createElement("div");
    row.className = "position" + (p.id === selected ? " selected" : "");
    row.dataset.positionId = p.id;
    const busy = p.status !== "open";
    row.innerHTML = `
      <div class="who"><strong>#${p.id}</strong> ${esc(p.symbol || short(p.mint))}
        <div class="muted mono">${esc(short(p.mint))} · ${p.tokens.toLocaleString()} tokens</div></div>
      <div class="pnl ${signClass(p.profit_units)}"><span class="pnl-sol">${sol(p.profit_units, true)}</span>
        <span class="pnl-pct">${pct(p.profit_pct)}</span></div>
      <div class="sparkbox"></div>
      <div><span class="status ${esc(p.status)}">${esc(p.status.replace("_", " "))}</span>
        ${p.levels_done.length ? `<div class="muted">levels ${p.levels_done.join(", ")}</div>` : ""}</div>
      <div class="actions">
        <button class="sell danger" ${busy ? "disabled" : ""}>Sell</button>
        <button class="close">Close</button></div>`;
    row.querySelector(".sparkbox").appendChild(
      window.LaserCharts.sparkline(p.pnl_history, 120, 32));
    box.appendChild(row);
  }
}

function renderChart() {
  const p = state.positions.find((x) => x.id === selected);
  $("chart-title").textContent = p ? `#${p.id} ${p.symbol || short(p.mint)}` : "";
  const own = p ? p.pnl_history : [];
  window.LaserCharts.lineChart($("chart"), [
    {points: own, cls: "pos"},
    {points: realisedSteps(state.realized.series, own, Date.now()), cls: "real"},
  ], (v) => sol(v, true));
}

// The realised total as steps: 0 before the first landed exit, flat up to now.
function realisedSteps(series, other, now) {
  if (!series.length) return [];
  const start = Math.min(series[0][0], other.length ? other[0][0] : series[0][0]);
  const steps = [[start, 0]];
  let last = 0;
  for (const [t, v] of series) { steps.push([t, last], [t, v]); last = v; }
  steps.push([Math.max(now, series[series.length - 1][0]), last]);
  return steps;
}

function renderBands() {
  const p = state.positions.find((x) => x.id === selected);
  const body = $("bands");
  if (!p) {
    body.innerHTML = '<tr><td colspan="3" class="muted">Select a position.</td></tr>';
    $("liq-title").textContent = "";
    return;
  }
  $("liq-title").textContent = `#${p.id}` + (p.liquidity.trend ? ` · ${p.liquidity.trend}` : "");
  body.innerHTML = p.liquidity.bands.map((b) =>
    `<tr><td>${(b.slippage_bps / 100).toFixed(1)}%</td><td>${b.max_tokens.toLocaleString()}</td>` +
    `<td>${b.coverage_pct.toFixed(0)}%</td></tr>`).join("") ||
    '<tr><td colspan="3" class="muted">No liquidity snapshot yet.</td></tr>';
}

function renderTrades() {
  const body = $("trades").querySelector("tbody");
  body.innerHTML = state.recent_trades.map((t) => `
    <tr data-signal-id="${t.signal_id}"><td>${clock(t.received_at_ms)}</td><td>${esc(t.kind)}</td>
      <td>${t.position_id === null ? "-" : "#" + t.position_id}</td><td>${esc(t.reason)}</td>
      <td><span class="state ${esc(t.state)}">${esc(t.state)}</span></td>
      <td>${ms(t.first_submit_ms)}</td><td>${ms(t.time_to_land_ms)}</td>
      <td class="${signClass(t.pnl_lamports)}">${sol(t.pnl_lamports, true)}</td></tr>`).join("") ||
    '<tr><td colspan="8" class="muted">No trades yet.</td></tr>';
}

function renderRefusals() {
  const list = $("refusals");
  list.innerHTML = state.refusals.map((t) =>
    `<li><span class="state refused">${esc(t.guard_reason)}</span> ${esc(t.kind)} ` +
    `${t.position_id === null ? esc(short(t.mint)) : "#" + t.position_id} ` +
    `<span class="muted">${clock(t.received_at_ms)}</span></li>`).join("") ||
    '<li class="muted">None.</li>';
}

// --------------------------------------------------------------------- actions

async function post(path, body) {
  const response = await fetch(API + path, {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-Lasersell-Request": "1"},
    body: JSON.stringify(body || {}),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((answer.error && answer.error.message) || response.status);
  return answer;
}

function confirmAction(text, withSlippage) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  $("slippage-row").hidden = !withSlippage;
  $("confirm-slippage").value = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), {once: true});
    dialog.showModal();
  });
}

async function onPositionClick(event) {
  const row = event.target.closest(".position");
  if (!row) return;
  const id = Number(row.dataset.positionId);
  const p = state.positions.find((x) => x.id === id);
  if (event.target.classList.contains("sell")) {
    const label = `${p.symbol || short(p.mint)}, ${pct(p.profit_pct)}`;
    if (!await confirmAction(`Sell position #${id} (${label}) now? The exit goes through ` +
                             "the guard like any other.", true)) return;
    const slippage = parseInt($("confirm-slippage").value, 10);
    try {
      await post(`/positions/${id}/sell`, isNaN(slippage) ? {} : {slippage_bps: slippage});
      toast(`Sell of #${id} requested`);
    } catch (error) { toast(`Sell refused: ${error.message}`, true); }
    return;
  }
  if (event.target.classList.contains("close")) {
    if (!await confirmAction(`Stop tracking position #${id} on the server? Nothing is sold.`,
                             false)) return;
    try { await post(`/positions/${id}/close`); toast(`Close of #${id} requested`); }
    catch (error) { toast(`Close refused: ${error.message}`, true); }
    return;
  }
  selected = id;
  queueRender();
}

async function onMirrorToggle() {
  const pause = !state.mirror.paused;
  if (!await confirmAction(pause ? "Pause mirror buys?" : "Resume mirror buys?", false)) return;
  try {
    const answer = await post(pause ? "/mirror/pause" : "/mirror/resume");
    state.mirror.paused = answer.paused;
    queueRender();
  } catch (error) { toast(error.message, true); }
}

$("positions").addEventListener("click", onPositionClick);
$("mirror-toggle").addEventListener("click", onMirrorToggle);
connect();
