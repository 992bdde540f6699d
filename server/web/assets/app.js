// CropShield Serve web page: upload a leaf photo, show the diagnosis and its Grad-CAM overlay
// (POST /v1/predict, POST /v1/explain), and the server's live statistics (GET /v1/stats).
// Plain JavaScript, same-origin requests only.
"use strict";

const TOP_K = 5;
const STATS_PERIOD_MS = 3000;
const STAGES = ["decode", "preprocess", "queue", "inference", "explain", "encode", "total"];
const TYPES_BY_EXTENSION = { jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp" };
const METHOD_NAMES = {
  grad_cam: "Grad-CAM", grad_cam_plus_plus: "Grad-CAM++", hires_cam: "HiResCAM", layer_cam: "LayerCAM",
};

const state = {
  photo: null,         // { blob, type, name }
  targetIndex: null,   // class explained; null = the top-1 class
  predictSeq: 0,
  explainSeq: 0,
  explainAbort: null,
  overlayUrl: null,
  timing: { predict: null, explain: null },
  cached: { predict: null, explain: null },
  statsTimer: 0,
  statsGeneration: 0,
};

const $ = (id) => document.getElementById(id);

// ---- helpers ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(message, code, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function num(value) {
  const n = Number(value);  // int64 fields may arrive as strings
  return Number.isFinite(n) ? n : 0;
}

function ms(us) {
  return `${(num(us) / 1000).toFixed(1)} ms`;
}

function percent(p, digits = 1) {
  return `${(num(p) * 100).toFixed(digits)}%`;
}

function bytes(n) {
  n = num(n);
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

async function readError(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && body.error) {
      return new ApiError(`${body.error} (${body.code || "ERROR"}, HTTP ${response.status})`,
                          body.code, response.status);
    }
  } catch (ignored) { /* not JSON */ }
  const plain = text.replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim().slice(0, 200);
  return new ApiError(`HTTP ${response.status} ${response.statusText}: ${plain}`, "",
                      response.status);
}

async function postPhoto(path, params, signal) {
  const query = new URLSearchParams(params).toString();
  const response = await fetch(`${path}?${query}`, {
    method: "POST",
    headers: { "Content-Type": state.photo.type, Accept: "application/json" },
    body: state.photo.blob,
    signal,
  });
  if (!response.ok) throw await readError(response);
  return response.json();
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function setStatus(message) {
  $("status").textContent = message;
}

// ---- tabs ------------------------------------------------------------------------------------

function selectTab(tab, focus) {
  for (const other of document.querySelectorAll('[role="tab"]')) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
  if (focus) tab.focus();
  if (tab.id === "tab-stats") startStats();
  else stopStats();
}

function setupTabs() {
  const tabs = Array.from(document.querySelectorAll('[role="tab"]'));
  for (const tab of tabs) tab.addEventListener("click", () => selectTab(tab, false));
  document.querySelector('[role="tablist"]').addEventListener("keydown", (event) => {
    const index = tabs.indexOf(document.activeElement);
    if (index < 0) return;
    const moves = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    selectTab(tabs[(moves[event.key] + tabs.length) % tabs.length], true);
  });
  if (location.hash === "#stats") selectTab($("tab-stats"), false);
}

// ---- photo input -----------------------------------------------------------------------------

function photoType(file) {
  if (Object.values(TYPES_BY_EXTENSION).includes(file.type)) return file.type;
  const extension = (file.name.split(".").pop() || "").toLowerCase();
  return TYPES_BY_EXTENSION[extension] || "";
}

function acceptFile(file) {
  if (!file) return;
  const type = photoType(file);
  if (!type) {
    showError(`${file.name} is not a JPEG, PNG or WebP photo.`);
    return;
  }
  state.photo = { blob: file, type, name: file.name };
  state.targetIndex = null;
  diagnose();
}

function setupUpload() {
  const zone = $("drop-zone");
  $("photo").addEventListener("change", (event) => acceptFile(event.target.files[0]));
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  zone.addEventListener("dragleave", (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove("dragging");
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    acceptFile(event.dataTransfer.files[0]);
  });
  // A photo dropped beside the zone must not replace the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
}

function setupControls() {
  for (const id of ["method", "colormap", "alpha"]) {
    $(id).addEventListener("change", () => { if (state.photo) explain(); });
  }
  $("alpha").addEventListener("input", () => {
    $("alpha-value").textContent = num($("alpha").value).toFixed(2);
  });
}

// ---- diagnosis -------------------------------------------------------------------------------

async function diagnose() {
  const seq = ++state.predictSeq;
  showError("");
  setStatus(`Classifying ${state.photo.name}…`);
  state.timing = { predict: null, explain: null };
  state.cached = { predict: null, explain: null };
  try {
    const answer = await postPhoto("/v1/predict", { top_k: TOP_K });
    if (seq !== state.predictSeq) return;
    state.timing.predict = answer.timing;
    state.cached.predict = Boolean(answer.cached);
    renderPrediction(answer);
    explain();
  } catch (error) {
    if (seq !== state.predictSeq) return;
    setStatus("");
    showError(`Diagnosis failed: ${error.message}`);
  }
}

function renderPrediction(answer) {
  const predictions = answer.predictions || [];
  const top = predictions[0] || { label: "(none)", probability: 0 };
  $("top-label").textContent = top.label;
  $("top-probability").textContent = percent(top.probability);
  const model = answer.model || {};
  $("model").textContent = `Model ${model.name || "?"} v${model.version || "?"}; photo ` +
    `${answer.image_width}×${answer.image_height} px.`;
  const list = $("predictions");
  list.replaceChildren(...predictions.map(predictionItem));
  markTarget();
  renderMeta();
  $("result").hidden = false;
}

function predictionItem(prediction) {
  const fill = el("span");
  fill.style.width = `${Math.max(0, Math.min(100, num(prediction.probability) * 100))}%`;
  const button = el("button", {
    type: "button", class: "pred", "data-class-index": String(num(prediction.class_index)),
    "aria-pressed": "false",
  },
  el("span", { class: "pred-row" },
     el("span", { class: "pred-label", text: prediction.label }),
     el("span", { class: "pred-pct", text: percent(prediction.probability) })),
  el("span", { class: "bar", "aria-hidden": "true" }, fill));
  button.addEventListener("click", () => {
    state.targetIndex = num(prediction.class_index);
    markTarget();
    explain();
  });
  return el("li", {}, button);
}

function markTarget() {
  const buttons = $("predictions").querySelectorAll(".pred");
  buttons.forEach((button, i) => {
    const pressed = state.targetIndex === null ? i === 0
      : num(button.dataset.classIndex) === state.targetIndex;
    button.setAttribute("aria-pressed", String(pressed));
  });
}

async function explain() {
  if (state.explainAbort) state.explainAbort.abort();
  const abort = new AbortController();
  state.explainAbort = abort;
  const seq = ++state.explainSeq;
  const params = {
    method: $("method").value, colormap: $("colormap").value,
    alpha: num($("alpha").value).toFixed(2), overlay: "png", top_k: TOP_K,
  };
  if (state.targetIndex !== null) params.class_index = state.targetIndex;
  showError("");
  setStatus(`Explaining with ${METHOD_NAMES[params.method]}…`);
  $("overlay-caption").textContent = "Explanation loading…";
  try {
    const answer = await postPhoto("/v1/explain", params, abort.signal);
    if (seq !== state.explainSeq) return;
    state.timing.explain = answer.timing;
    state.cached.explain = Boolean(answer.cached);
    renderExplanation(answer, params);
  } catch (error) {
    if (seq !== state.explainSeq || error.name === "AbortError") return;
    setStatus("");
    $("overlay-caption").textContent = "No explanation.";
    showError(`Explanation failed: ${error.message}`);
  }
}

function base64Blob(base64, type) {
  const raw = atob(base64);
  const data = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) data[i] = raw.charCodeAt(i);
  return new Blob([data], { type });
}

function renderExplanation(answer, params) {
  const target = answer.target || {};
  const overlay = answer.overlay || {};
  const img = $("overlay");
  const url = URL.createObjectURL(base64Blob(overlay.base64 || "", overlay.content_type || "image/png"));
  const method = METHOD_NAMES[answer.method] || METHOD_NAMES[params.method];
  img.onload = () => {
    if (state.overlayUrl && state.overlayUrl !== url) URL.revokeObjectURL(state.overlayUrl);
    state.overlayUrl = url;
    img.dataset.method = params.method;
    img.dataset.colormap = params.colormap;
    img.dataset.alpha = params.alpha;
    img.dataset.state = "loaded";
  };
  img.onerror = () => showError("The explanation image could not be decoded.");
  img.dataset.state = "loading";
  img.alt = `${method} overlay for ${target.label} (${percent(target.probability)}): warmer ` +
    `colours (${params.colormap}) mark the parts of the photo that drove this class.`;
  img.src = url;
  img.hidden = false;
  const box = answer.crop_box;
  $("overlay-caption").textContent = `${method} for ${target.label}, colour map ` +
    `${params.colormap}, opacity ${params.alpha}` +
    (box ? `; the model saw the ${Math.round(num(box.width))}×${Math.round(num(box.height))} px ` +
           `region at (${Math.round(num(box.x))}, ${Math.round(num(box.y))}).` : ".");
  renderMeta();
  setStatus(`Diagnosis: ${$("top-label").textContent}; ${method} explanation of ` +
            `${target.label} ready.`);
}

function renderMeta() {
  const word = (cached) => (cached === null ? "—" : cached ? "cached" : "computed");
  const cached = $("cached");
  cached.textContent = `Predict: ${word(state.cached.predict)} · Explain: ` +
    `${word(state.cached.explain)}`;
  cached.dataset.predict = String(state.cached.predict);
  cached.dataset.explain = String(state.cached.explain);
  renderTiming();
}

function renderTiming() {
  const { predict, explain: explainTiming } = state.timing;
  const cell = (timing, stage) => el("td", { text: timing ? ms(timing[`${stage}_us`]) : "—" });
  const rows = STAGES.map((stage) => el("tr", {}, el("th", { scope: "row", text: stage }),
                                        cell(predict, stage), cell(explainTiming, stage)));
  $("timing").replaceChildren(
    el("caption", { text: "Server time per stage" }),
    el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "stage" }),
                       el("th", { scope: "col", text: "Predict" }),
                       el("th", { scope: "col", text: "Explain" }))),
    el("tbody", {}, ...rows));
}

// ---- stats -----------------------------------------------------------------------------------

function startStats() {
  stopStats();
  refreshStats(state.statsGeneration);
}

function stopStats() {
  clearTimeout(state.statsTimer);
  state.statsGeneration++;  // a refresh in flight from before stops after its answer
}

async function refreshStats(generation) {
  try {
    const response = await fetch("/v1/stats", { headers: { Accept: "application/json" } });
    if (!response.ok) throw await readError(response);
    const stats = await response.json();
    if (generation !== state.statsGeneration) return;
    renderStats(stats);
    $("stats-error").hidden = true;
    $("stats-updated").textContent = `Updated ${new Date().toLocaleTimeString()}.`;
  } catch (error) {
    if (generation !== state.statsGeneration) return;
    $("stats-error").textContent = `Stats unavailable: ${error.message}`;
    $("stats-error").hidden = false;
  }
  state.statsTimer = setTimeout(() => refreshStats(generation), STATS_PERIOD_MS);
}

function table(caption, headers, rows) {
  return el("div", { class: "table-wrap" }, el("table", {},
    el("caption", { text: caption }),
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...rows)));
}

function row(attrs, cells) {
  return el("tr", attrs, ...cells.map(([text, cls], i) =>
    el(i === 0 ? "th" : "td", i === 0 ? { scope: "row", text } : { text, class: cls || "" })));
}

function latencyCells(summary) {
  return summary ? [[ms(summary.p50_us), "p50"], [ms(summary.p90_us), "p90"], [ms(summary.p99_us), "p99"]]
    : [["—"], ["—"], ["—"]];
}

function renderStats(stats) {
  const latency = new Map((stats.rpc_latency || []).map((s) => [s.name, s]));
  const errors = (rpc) => Object.values(rpc.errors_by_code || {}).reduce((a, b) => a + num(b), 0);
  const rpcRows = (stats.rpcs || []).map((rpc) => row({ "data-rpc": rpc.rpc },
    [[rpc.rpc], [String(num(rpc.total)), "total"], [String(errors(rpc)), "errors"],
     ...latencyCells(latency.get(rpc.rpc))]));
  const stageRows = (stats.stage_latency || []).map((s) => row({ "data-stage": s.name },
    [[s.name], [String(num(s.count)), "count"], ...latencyCells(s)]));
  const modelRows = (stats.models || []).map((m) => row({}, [[m.name], [String(num(m.version))],
    [m.device || ""], [m.precision || ""], [String((m.labels || []).length)]]));
  const cacheRow = (name, c) => row({ "data-cache": name }, [[name], [String(num(c.entries))],
    [`${bytes(c.bytes)} / ${bytes(c.capacity_bytes)}`], [String(num(c.hits))],
    [String(num(c.misses))], [String(num(c.evictions))], [percent(c.hit_ratio), "hit-ratio"]]);
  const card = (label, value, id) => el("div", { class: "stat-card", id },
    el("strong", { text: value }), el("span", { text: label }));
  $("stats").replaceChildren(
    el("div", { class: "stat-cards" },
       card("uptime", `${Math.round(num(stats.uptime_seconds))} s`, "stat-uptime"),
       card("calls in flight", String(num(stats.in_flight)), "stat-in-flight"),
       card("explain cache hit ratio", percent((stats.explain_cache || {}).hit_ratio), "stat-explain-hits"),
       card("predict cache hit ratio", percent((stats.predict_cache || {}).hit_ratio), "stat-predict-hits")),
    table("Calls", ["RPC", "calls", "errors", "p50", "p90", "p99"], rpcRows),
    table("Stages", ["stage", "count", "p50", "p90", "p99"], stageRows),
    table("Caches", ["cache", "entries", "bytes", "hits", "misses", "evictions", "hit ratio"],
          [cacheRow("explain", stats.explain_cache || {}), cacheRow("predict", stats.predict_cache || {})]),
    table("Models", ["name", "version", "device", "precision", "classes"], modelRows));
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) stopStats();
  else if ($("tab-stats").getAttribute("aria-selected") === "true") startStats();
});

setupTabs();
setupUpload();
setupControls();
