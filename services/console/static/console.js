// Vigil operator console: plain JavaScript, no framework, nothing from a CDN.
// Views (by URL hash): #/live (camera tiles), #/incidents (queue), #/incident/<id> (one incident).
// One WebSocket (/api/live/ws) brings frames (binary: header length, JSON header, JPEG) and events (JSON text).
"use strict";

const CLASS_NAMES = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck"};
const CLASS_COLORS = {0: "#ffa657", 1: "#d2a8ff", 2: "#39c5cf", 3: "#7ee787", 5: "#ff7b72", 7: "#f2cc60"};
const STALE_MS = 10000;

const state = {
  me: null, ws: null, wsRetry: 500, cameras: new Map(), tiles: new Map(), visible: new Set(),
  view: null, incidentId: null, incident: null, queue: new Map(), drawn: [], acks: 0, rafPending: false,
  reloadTimer: null, noisiestTimer: null, filtersLoaded: false, subscription: null,
};
window.vigil = {state};  // for the browser test and the load script

// ---------- helpers
const $ = (id) => document.getElementById(id);
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  return node;
}
function fmtTime(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  return d.toLocaleDateString(undefined, {month: "short", day: "numeric"}) + " " +
    d.toLocaleTimeString(undefined, {hour12: false});
}
function fmtAge(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s} s` : s < 3600 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
}
function showError(text) {
  const banner = $("error");
  banner.textContent = text;
  banner.classList.toggle("show", Boolean(text));
}
function showInfo(text) {
  const banner = $("info");
  banner.textContent = text;
  banner.classList.toggle("show", Boolean(text));
  if (text) setTimeout(() => { if (banner.textContent === text) showInfo(""); }, 4000);
}
async function api(path, {method = "GET", body} = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.me) headers["X-CSRF-Token"] = state.me.csrf;
  const response = await fetch(path, {method, headers, credentials: "same-origin",
                                      body: body === undefined ? undefined : JSON.stringify(body)});
  if (response.status === 401) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.hash);
    throw new Error("signed out");
  }
  const data = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const error = new Error((data && data.detail) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return data;
}
const mayAct = () => state.me && (state.me.role === "operator" || state.me.role === "admin");

// ---------- live connection
function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/live/ws");
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.onopen = () => { $("conn").className = "conn up"; $("conn").textContent = "live"; state.wsRetry = 500; sendSubscription(true); };
  ws.onclose = (event) => {
    $("conn").className = "conn down";
    $("conn").textContent = "reconnecting";
    if (event.code === 4401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.hash); return; }
    api("/api/auth/me").catch(() => {});  // a handshake refused for an ended session: back to sign-in
    setTimeout(connect, state.wsRetry);
    state.wsRetry = Math.min(state.wsRetry * 2, 10000);
  };
  ws.onmessage = (event) => {
    if (typeof event.data === "string") onEvent(JSON.parse(event.data));
    else onFrame(event.data);
  };
}
function sendSubscription(force = false) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  const wanted = state.view === "live" ? {t: "subscribe", frames: true, cameras: [...state.visible]}
                                       : {t: "subscribe", frames: false};
  const key = JSON.stringify(wanted);
  if (!force && key === state.subscription) return;
  state.subscription = key;
  state.ws.send(key);
}
setInterval(() => {  // what was drawn: the console measures capture → tile delay from it
  if (state.drawn.length && state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({t: "drawn", samples: state.drawn.splice(0, 1000)}));
  }
  for (const tile of state.tiles.values()) updateAge(tile);
}, 1000);

function onEvent(event) {
  switch (event.t) {
    case "hello":
      for (const camera of event.cameras) upsertCamera(camera);
      break;
    case "camera":
      upsertCamera(event);
      break;
    case "status": {
      const camera = state.cameras.get(event.camera_id) || upsertCamera({camera_id: event.camera_id});
      camera.status = event.status;
      camera.moved = event.moved;
      renderBadge(state.tiles.get(event.camera_id));
      break;
    }
    case "incident":
      onIncident(event);
      break;
    case "verdict":
      onVerdict(event);
      break;
  }
}

// ---------- tiles
function upsertCamera(summary) {
  let camera = state.cameras.get(summary.camera_id);
  if (!camera) {
    camera = {camera_id: summary.camera_id};
    state.cameras.set(summary.camera_id, camera);
  }
  for (const key of ["geometry", "status", "moved", "last_frame_wall_ms"]) if (summary[key] !== undefined) camera[key] = summary[key];
  ensureTile(camera);
  return camera;
}
const observer = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    const id = entry.target.dataset.camera;
    if (entry.isIntersecting) state.visible.add(id); else state.visible.delete(id);
  }
  sendSubscription();
}, {rootMargin: "200px"});

function ensureTile(camera) {
  if (state.tiles.has(camera.camera_id)) return state.tiles.get(camera.camera_id);
  const canvas = el("canvas", {width: "768", height: "432"});
  const tile = {
    camera, canvas, ctx: canvas.getContext("2d"), bitmap: null, header: null, pending: null, frames: 0,
    node: el("div", {class: "tile", dataset: {camera: camera.camera_id, frames: "0"}}),
    badge: el("span", {class: "badge UNKNOWN"}, "UNKNOWN"), age: el("span", {class: "age"}, "no frame yet"),
    info: el("span", {class: "info"}), waiting: el("div", {class: "waiting"}, "waiting for frames…"),
  };
  const name = el("span", {class: "name", title: "enlarge"}, camera.camera_id);
  name.addEventListener("click", () => tile.node.classList.toggle("focus"));
  tile.node.append(el("div", {class: "head"}, name, tile.badge),
                   el("div", {class: "view"}, canvas, tile.waiting),
                   el("div", {class: "foot"}, tile.age, tile.info));
  state.tiles.set(camera.camera_id, tile);
  const grid = $("grid");
  const after = [...grid.children].find((node) => node.dataset.camera > camera.camera_id);
  grid.insertBefore(tile.node, after || null);
  observer.observe(tile.node);
  $("camera-count").textContent = `${state.tiles.size} cameras`;
  renderBadge(tile);
  return tile;
}
function renderBadge(tile) {
  if (!tile) return;
  const camera = tile.camera;
  const health = camera.status ? camera.status.state : "UNKNOWN";
  const shown = camera.moved ? "MOVED" : health;
  tile.badge.className = "badge " + shown;
  tile.badge.textContent = camera.moved ? `MOVED · ${health}` : health;
  tile.badge.title = camera.status && camera.status.message ? camera.status.message : "";
  tile.node.dataset.health = shown;
  const fps = camera.status && camera.status.actual_fps != null ? `${camera.status.actual_fps.toFixed(1)} fps` : "";
  tile.info.textContent = fps;
}
function updateAge(tile) {
  if (!tile.header) return;
  const age = Date.now() - tile.header.capture_ts_ms;
  tile.age.textContent = `frame ${fmtAge(age)} old`;
  tile.age.classList.toggle("stale", age > STALE_MS);
}
async function onFrame(buffer) {
  const view = new DataView(buffer);
  const length = view.getUint32(0);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
  const tile = state.tiles.get(header.camera_id) || ensureTile(upsertCamera({camera_id: header.camera_id}));
  let bitmap;
  try {
    const [resizeWidth, resizeHeight] = tileSize(tile, header);
    bitmap = await createImageBitmap(new Blob([new Uint8Array(buffer, 4 + length)], {type: "image/jpeg"}),
                                     {resizeWidth, resizeHeight, resizeQuality: "medium"});
  } catch (exc) {
    sendAcks(1);  // a frame that does not decode: keep the last one
    return;
  }
  state.acks += 1;  // decoded: acknowledged with the next drawing (flow control, see live.py)
  if (tile.pending) tile.pending.bitmap.close();
  tile.pending = {header, bitmap};
  if (!state.rafPending) {
    state.rafPending = true;
    requestAnimationFrame(drawPending);
  }
}
function sendAcks(extra = 0) {
  const n = state.acks + extra;
  state.acks = 0;
  if (n && state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(`{"t":"ack","n":${n}}`);
}
function drawPending() {
  state.rafPending = false;
  const now = Date.now();
  for (const tile of state.tiles.values()) {
    if (!tile.pending) continue;
    const {header, bitmap} = tile.pending;
    tile.pending = null;
    if (tile.bitmap) tile.bitmap.close();
    tile.bitmap = bitmap;
    tile.header = header;
    drawTile(tile);
    tile.frames += 1;
    tile.node.dataset.frames = String(tile.frames);
    tile.node.dataset.frameId = header.frame_id;
    tile.node.dataset.captureTs = String(header.capture_ts_ms);
    tile.waiting.hidden = true;
    state.drawn.push([header.capture_ts_ms, header.pushed_ms, now]);
    updateAge(tile);
  }
  sendAcks();
}
function tileSize(tile, header) {
  // the canvas at its size on screen (not the frame's): a 16-camera grid decodes and draws far fewer pixels
  const dpr = window.devicePixelRatio || 1;
  const width = Math.max(16, Math.min(header.width, Math.round((tile.canvas.clientWidth || header.width) * dpr)));
  return [width, Math.max(9, Math.round(width * header.height / header.width))];
}
function drawTile(tile) {
  const {canvas, ctx, bitmap, header} = tile;
  if (!bitmap || !header) return;
  const [width, height] = tileSize(tile, header);
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.drawImage(bitmap, 0, 0, width, height);
  const s = width / header.width;
  ctx.setTransform(s, 0, 0, s, 0, 0);  // draw in frame pixels
  const scale = pixelScale(canvas) / s;
  if ($("show-zones").checked) drawGeometry(ctx, tile.camera.geometry, scale);
  if ($("show-boxes").checked) drawBoxes(ctx, header, scale);
}
function polygon(ctx, points) {
  ctx.beginPath();
  points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  ctx.closePath();
}
function arrow(ctx, points, direction, scale) {
  if (!direction) return;
  const cx = points.reduce((s, p) => s + p[0], 0) / points.length;
  const cy = points.reduce((s, p) => s + p[1], 0) / points.length;
  const n = Math.hypot(direction[0], direction[1]) || 1;
  const dx = direction[0] / n * 30 * scale, dy = direction[1] / n * 30 * scale;
  ctx.beginPath();
  ctx.moveTo(cx - dx, cy - dy);
  ctx.lineTo(cx + dx, cy + dy);
  ctx.lineTo(cx + dx - (dx * 0.35 - dy * 0.25), cy + dy - (dy * 0.35 + dx * 0.25));
  ctx.moveTo(cx + dx, cy + dy);
  ctx.lineTo(cx + dx - (dx * 0.35 + dy * 0.25), cy + dy - (dy * 0.35 - dx * 0.25));
  ctx.stroke();
}
// canvas pixels per CSS pixel: labels and lines keep their size on screen whatever the tile's size
function pixelScale(canvas) { return Math.max(1, canvas.width / Math.max(1, canvas.clientWidth || canvas.width)); }
function drawGeometry(ctx, geometry, scale) {
  if (!geometry) return;
  ctx.save();
  ctx.lineWidth = 1.5 * scale;
  ctx.font = `${11 * scale}px sans-serif`;
  for (const lane of geometry.lanes || []) {
    ctx.strokeStyle = "rgba(88,166,255,.8)";
    ctx.fillStyle = "rgba(88,166,255,.08)";
    polygon(ctx, lane.polygon); ctx.fill(); ctx.stroke();
    arrow(ctx, lane.polygon, lane.direction, scale);
    ctx.fillStyle = "rgba(88,166,255,.95)";
    ctx.fillText(lane.name, lane.polygon[0][0] + 4, lane.polygon[0][1] + 13 * scale);
  }
  for (const zone of geometry.zones || []) {
    const color = zone.kind === "traffic" ? "255,166,87" : zone.kind === "pedestrian" ? "126,231,135" : "248,81,73";
    ctx.strokeStyle = `rgba(${color},.85)`;
    ctx.fillStyle = `rgba(${color},.10)`;
    ctx.setLineDash([6 * scale, 4 * scale]);
    polygon(ctx, zone.polygon); ctx.fill(); ctx.stroke();
    ctx.setLineDash([]);
    arrow(ctx, zone.polygon, zone.direction, scale);
    ctx.fillStyle = `rgba(${color},1)`;
    const [x, y] = zone.polygon[0];
    ctx.fillText(`${zone.name} (${zone.kind})`, x + 4, y + 26 * scale);
  }
  ctx.strokeStyle = "rgba(242,204,96,.9)";
  ctx.setLineDash([4 * scale, 3 * scale]);
  for (const line of geometry.count_lines || []) {
    ctx.beginPath(); ctx.moveTo(...line.start); ctx.lineTo(...line.end); ctx.stroke();
  }
  ctx.restore();
}
function drawBoxes(ctx, header, scale) {
  ctx.save();
  ctx.lineWidth = 2 * scale;
  ctx.font = `bold ${12 * scale}px sans-serif`;
  header.boxes.forEach(([x1, y1, x2, y2], i) => {
    const cls = header.classes[i], track = header.tracks[i];
    const color = CLASS_COLORS[cls] || "#e6edf3";
    ctx.strokeStyle = color;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const text = `${CLASS_NAMES[cls] || "class " + cls}${track >= 0 ? " #" + track : ""}`;
    const w = ctx.measureText(text).width + 6 * scale, h = 15 * scale;
    const top = y1 - h >= 0 ? y1 - h : y1;
    ctx.fillStyle = color;
    ctx.fillRect(x1, top, w, h);
    ctx.fillStyle = "#111";
    ctx.fillText(text, x1 + 3 * scale, top + h - 4 * scale);
  });
  ctx.restore();
}
$("show-zones").addEventListener("change", () => state.tiles.forEach(drawTile));
$("show-boxes").addEventListener("change", () => state.tiles.forEach(drawTile));
$("columns").addEventListener("change", (event) => {
  $("grid").className = "grid" + (event.target.value === "auto" ? "" : " cols-" + event.target.value);
  localStorage.setItem("vigil.columns", event.target.value);
});

// ---------- incident queue
function severityChip(severity) { return el("span", {class: "sev " + severity}, severity); }
function verdictChip(verdict) { return verdict ? el("span", {class: "verdict " + verdict}, verdict) : el("span", {class: "muted"}, "new"); }
function queueRow(row) {
  const tr = el("tr", {class: "row" + (row.cleared_ms ? " state-cleared" : ""), dataset: {incident: row.incident_id}},
    el("td", {}, severityChip(row.severity)), el("td", {}, row.kind), el("td", {}, row.camera_id),
    el("td", {}, (row.zones || []).join(", ")), el("td", {}, fmtTime(row.opened_ms)),
    el("td", {class: "state"}, row.state), el("td", {class: "verdict-cell"}, verdictChip(row.verdict)));
  tr.addEventListener("click", () => { location.hash = "#/incident/" + encodeURIComponent(row.incident_id); });
  return tr;
}
async function loadFilters() {
  try {
    const filters = await api("/api/incidents/filters");
    for (const [id, values] of [["f-camera", filters.cameras], ["f-kind", filters.kinds], ["f-state", filters.states]]) {
      const select = $(id), current = select.value;
      select.replaceChildren(el("option", {value: ""}, "all"), ...values.map((v) => el("option", {value: v}, v)));
      select.value = current;
    }
    state.filtersLoaded = true;
  } catch (exc) { showError(`filters: ${exc.message}`); }
}
async function loadQueue() {
  const params = new URLSearchParams();
  for (const [key, id] of [["camera", "f-camera"], ["kind", "f-kind"], ["state", "f-state"]]) if ($(id).value) params.set(key, $(id).value);
  try {
    const rows = await api("/api/incidents?" + params);
    state.queue = new Map(rows.map((row) => [row.incident_id, row]));
    $("queue").tBodies[0].replaceChildren(...rows.map(queueRow));
    if (!rows.length) $("queue").tBodies[0].append(el("tr", {}, el("td", {colspan: "7", class: "muted"}, "no incidents")));
    $("open-count").textContent = String(rows.filter((r) => !r.cleared_ms && !r.verdict).length || "");
    showError("");
  } catch (exc) { showError(`incident queue: ${exc.message}`); }
}
async function loadNoisiest() {
  try {
    const rows = await api("/api/incidents/noisiest");
    $("noisiest").querySelector("tbody").replaceChildren(...(rows.length ? rows.map((r) => el("tr", {},
      el("td", {}, r.kind), el("td", {}, r.camera_id), el("td", {}, r.zone || "—"), el("td", {}, String(r.rejected)),
      el("td", {class: "small"}, r.reasons.join("; ")))) : [el("tr", {}, el("td", {colspan: "5", class: "muted"}, "no rejections yet"))]));
  } catch (exc) { /* the queue shows the store error */ }
}
function scheduleQueueReload(delay = 400) {
  clearTimeout(state.reloadTimer);
  state.reloadTimer = setTimeout(() => { if (state.view === "incidents") loadQueue(); }, delay);
}
function scheduleNoisiest() {
  clearTimeout(state.noisiestTimer);
  state.noisiestTimer = setTimeout(() => { if (state.view === "incidents") loadNoisiest(); }, 1500);  // after the sink stored it
}
for (const id of ["f-camera", "f-kind", "f-state"]) $(id).addEventListener("change", loadQueue);

function onIncident(event) {
  const row = state.queue.get(event.incident_id);
  if (row) {
    Object.assign(row, {state: event.state, severity: event.severity, cleared_ms: event.cleared_ms, zones: event.zones});
    const tr = document.querySelector(`tr[data-incident="${CSS.escape(event.incident_id)}"]`);
    if (tr) { const fresh = queueRow(row); fresh.classList.add("flash"); tr.replaceWith(fresh); }
  } else if (state.view === "incidents") {
    scheduleQueueReload();
  }
  if (state.view === "incident" && state.incidentId === event.incident_id) {
    Object.assign(state.incident, {state: event.state, severity: event.severity, cleared_ms: event.cleared_ms});
    renderIncidentFacts();
  }
}
function onVerdict(event) {
  const row = state.queue.get(event.incident_id);
  if (row) {
    row.verdict = event.verdict;
    const tr = document.querySelector(`tr[data-incident="${CSS.escape(event.incident_id)}"]`);
    if (tr) { const fresh = queueRow(row); fresh.classList.add("flash"); tr.replaceWith(fresh); }
  }
  if (state.view === "incidents") scheduleNoisiest();
  if (state.view === "incident" && state.incidentId === event.incident_id) applyVerdict(event);
}

// ---------- one incident
function applyVerdict(event) {
  const incident = state.incident;
  if (incident.verdict_decided_ms && event.decided_ms < incident.verdict_decided_ms) return;
  Object.assign(incident, {verdict: event.verdict, verdict_reason: event.reason, verdict_actor: event.actor,
                           verdict_decided_ms: event.decided_ms});
  if (!incident.verdicts.some((v) => v.decided_ms === event.decided_ms && v.actor === event.actor)) {
    incident.verdicts.unshift({verdict: event.verdict, reason: event.reason, actor: event.actor, decided_ms: event.decided_ms});
  }
  renderIncidentFacts();
}
function renderIncidentFacts() {
  const i = state.incident;
  if (!i) return;
  $("incident-title").replaceChildren(severityChip(i.severity), " ", `${i.kind} on ${i.camera_id}`);
  const facts = [
    ["Incident", i.incident_id], ["State", i.state], ["Verdict", verdictChip(i.verdict)],
    ["Reason", i.verdict_reason || "—"], ["By", i.verdict_actor ? `${i.verdict_actor}, ${fmtTime(i.verdict_decided_ms)}` : "—"],
    ["Opened", fmtTime(i.opened_ms)], ["Cleared", i.cleared_ms ? fmtTime(i.cleared_ms) : "not yet"],
    ["Zones", i.zones.join(", ") || "—"], ["Tracks", i.track_ids.join(", ") || "—"],
    ["Score", i.score != null ? `${i.score.toFixed(2)} (threshold ${i.threshold})` : "—"], ["Revision", String(i.revision)],
  ];
  if (i.detection_suspended) facts.push(["Note", "lane rules suspended (camera moved or bad video)"]);
  const dl = $("incident-facts");
  dl.replaceChildren();
  for (const [key, value] of facts) dl.append(el("dt", {}, key), el("dd", {dataset: {fact: key.toLowerCase()}}, value));
  $("verdicts").replaceChildren(...(i.verdicts.length ? i.verdicts.map((v) => el("li", {},
    `${fmtTime(v.decided_ms)} — ${v.verdict} by ${v.actor}${v.reason ? ": " + v.reason : ""}`)) : [el("li", {class: "muted"}, "none yet")]));
  $("revisions").replaceChildren(...i.revisions.map((r) => el("li", {},
    `#${r.revision} ${r.state}, ${r.severity}, evidence until ${fmtTime(r.updated_ms)}`)));
  const allowed = mayAct();
  for (const button of document.querySelectorAll("#actions button")) button.hidden = !allowed;
  $("reason").hidden = !allowed;
  $("viewer-note").hidden = allowed;
}
async function act(verdict, reason) {
  reason = reason ?? $("reason").value;
  try {
    const event = await api(`/api/incidents/${encodeURIComponent(state.incidentId)}/verdict`,
                            {method: "POST", body: {verdict, reason: reason || null}});
    applyVerdict(event);
    showInfo(`${verdict}: recorded`);
    showError("");
    return {ok: true};
  } catch (exc) {
    showError(`${verdict} refused: ${exc.message}`);
    return {ok: false, status: exc.status, message: exc.message};
  }
}
window.vigil.act = act;
for (const button of document.querySelectorAll("#actions button")) {
  button.addEventListener("click", () => act(button.dataset.verdict));
}

let trackData = null;
function trackColor(index) { return ["#ff7b72", "#39c5cf", "#f2cc60", "#7ee787", "#d2a8ff", "#ffa657"][index % 6]; }
function drawTracks(canvas, width, height, atMs) {
  // atMs null (the snapshot): every involved track's whole path, start dot to labelled end;
  // atMs set (the clip): the path so far and the box where the track is at that moment of the clip
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, width, height);
  if (!trackData) return;
  const scale = pixelScale(canvas);
  ctx.lineWidth = 2.5 * scale;
  ctx.font = `bold ${12 * scale}px sans-serif`;
  trackData.tracks.forEach((track, index) => {
    const color = trackColor(index);
    const points = atMs == null ? track.points : track.points.filter((p) => p[0] <= atMs);
    if (!points.length) return;
    const anchor = ([, x1, y1, x2, y2]) => [(x1 + x2) / 2, (y1 + y2) / 2];
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.beginPath();
    points.forEach((p, i) => { const [x, y] = anchor(p); i ? ctx.lineTo(x, y) : ctx.moveTo(x, y); });
    ctx.stroke();
    const [sx, sy] = anchor(points[0]);
    ctx.beginPath(); ctx.arc(sx, sy, 4 * scale, 0, 2 * Math.PI); ctx.fill();
    const last = points[points.length - 1];
    const text = `${CLASS_NAMES[track.class_id] || "class " + track.class_id} #${track.track_id}`;
    let [lx, ly] = anchor(last);
    if (atMs != null) {
      if (atMs - last[0] > 400) return;  // not in view at this moment of the clip
      const [, x1, y1, x2, y2] = last;
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      [lx, ly] = [x1, y1];
    } else {
      ctx.beginPath(); ctx.arc(lx, ly, 6 * scale, 0, 2 * Math.PI); ctx.stroke();
    }
    const w = ctx.measureText(text).width + 6 * scale, h = 16 * scale;
    const top = Math.min(Math.max(0, ly - h), height - h), left = Math.min(Math.max(0, lx), width - w);
    ctx.fillRect(left, top, w, h);
    ctx.fillStyle = "#111";
    ctx.fillText(text, left + 3 * scale, top + 12 * scale);
  });
}
function frameSize(media) {
  const size = trackData && trackData.frame_size;
  return size ? size : [media.naturalWidth || media.videoWidth || 768, media.naturalHeight || media.videoHeight || 432];
}
function redrawSnapshotTracks() {
  const img = $("snapshot");
  if (img.complete && img.naturalWidth) drawTracks($("snapshot-tracks"), ...frameSize(img), null);
}
function clipOverlay() {
  const video = $("clip");
  if (!trackData || !video.videoWidth) return;
  drawTracks($("clip-tracks"), ...frameSize(video), trackData.clip_start_ms + video.currentTime * 1000);
}
(function watchClip() {
  const video = $("clip");
  const tick = () => { clipOverlay(); if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(tick); };
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(tick);
  for (const name of ["seeked", "timeupdate", "loadeddata"]) video.addEventListener(name, clipOverlay);
})();
$("snapshot").addEventListener("load", () => { $("snapshot-stack").hidden = false; redrawSnapshotTracks(); });

let evidenceRetry = null;
async function loadIncident(id) {
  clearTimeout(evidenceRetry);
  state.incidentId = id;
  try {
    state.incident = await api("/api/incidents/" + encodeURIComponent(id));
  } catch (exc) {
    showError(`incident ${id}: ${exc.message}`);
    return;
  }
  showError("");
  renderIncidentFacts();
  trackData = null;
  state.tracks = null;
  api(`/api/incidents/${encodeURIComponent(id)}/tracks`).then((data) => {
    trackData = data; state.tracks = data; redrawSnapshotTracks(); clipOverlay();
  }).catch((exc) => showError(`tracks: ${exc.message}`));
  showEvidence();
}
function showEvidence() {
  const i = state.incident;
  const img = $("snapshot"), video = $("clip");
  $("snapshot-stack").hidden = !i.has_snapshot;
  $("snapshot-missing").hidden = i.has_snapshot;
  $("snapshot-missing").textContent = "The snapshot is not written yet (the evidence service writes it once the post-roll is recorded); retrying…";
  if (i.has_snapshot && !img.src.endsWith(i.snapshot_url)) img.src = i.snapshot_url;
  $("clip-stack").hidden = !i.has_clip;
  $("clip-missing").hidden = i.has_clip;
  $("clip-missing").textContent = "The clip is not written yet; retrying…";
  if (i.has_clip && video.getAttribute("src") !== i.clip_url) video.src = i.clip_url;
  if (!i.has_clip || !i.has_snapshot) {
    evidenceRetry = setTimeout(async () => {
      if (state.view !== "incident" || state.incidentId !== i.incident_id) return;
      try {
        const fresh = await api("/api/incidents/" + encodeURIComponent(i.incident_id));
        Object.assign(state.incident, {has_clip: fresh.has_clip, has_snapshot: fresh.has_snapshot});
      } catch (exc) { /* keep trying */ }
      showEvidence();
    }, 5000);
  }
}

// ---------- routing
function route() {
  showInfo("");
  const hash = location.hash || "#/live";
  const [, view, ...rest] = hash.split("/");
  state.view = view === "incident" ? "incident" : view === "incidents" ? "incidents" : "live";
  for (const name of ["live", "incidents", "incident"]) $("view-" + name).hidden = state.view !== name;
  $("nav-live").classList.toggle("active", state.view === "live");
  $("nav-incidents").classList.toggle("active", state.view !== "live");
  if (state.view !== "incident") { const video = $("clip"); video.pause(); }
  if (state.view === "incidents") {
    if (!state.filtersLoaded) loadFilters();
    loadQueue();
    loadNoisiest();
  } else if (state.view === "incident") {
    loadIncident(decodeURIComponent(rest.join("/")));
  }
  sendSubscription();
}
window.addEventListener("hashchange", route);

$("logout").addEventListener("click", async () => {
  await fetch("/api/auth/logout", {method: "POST", credentials: "same-origin"});
  location.href = "/login";
});

(async function start() {
  try {
    state.me = await api("/api/auth/me");
  } catch (exc) {
    return;  // api() sent the browser to /login
  }
  $("who").replaceChildren(state.me.user, el("span", {class: "role"}, state.me.role));
  $("credit").textContent = state.me.credit;
  const columns = localStorage.getItem("vigil.columns");
  if (columns) { $("columns").value = columns; $("grid").className = "grid" + (columns === "auto" ? "" : " cols-" + columns); }
  setTimeout(() => { if (state.me) location.href = "/login?expired=1"; }, Math.max(0, state.me.expires_ms - Date.now()));
  route();
  connect();
})();
