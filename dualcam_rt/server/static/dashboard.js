// Dashboard: one /v1/live WebSocket; JSON events update the table and text, binary
// messages are overlay JPEGs shown in #video. No libraries, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const QUIET_DB_SPL = 30;  // below this the loudest pixel is background noise, not a source
let framesShown = 0;
let lastUrl = null;

function classRows(classes) {
  const body = $("classes").tBodies[0];
  body.innerHTML = "";
  for (const name of classes) {
    const row = body.insertRow();
    row.id = "class-" + name;
    row.insertCell().textContent = name;
    const bar = row.insertCell();
    bar.className = "bar";
    bar.appendChild(document.createElement("div")).style.width = "0%";
    const p = row.insertCell();
    p.className = "p";
    p.textContent = "-";
  }
}

const REASONS = {silence: "silence", no_action: "no action"};

function showPrediction(msg) {
  // a null label means nothing is happening: say why instead of naming a class
  $("label").textContent = msg.label === null ? (REASONS[msg.reason] || "no action") : msg.label;
  $("label").dataset.reason = msg.reason || "";
  for (const row of $("classes").tBodies[0].rows) {
    row.classList.remove("top");
    if (msg.reason === "silence") {  // the model did not run: no probabilities to show
      row.querySelector(".bar div").style.width = "0%";
      row.querySelector(".p").textContent = "-";
    }
  }
  for (const [name, p] of Object.entries(msg.probabilities)) {
    const row = $("class-" + name);
    if (!row) continue;
    row.dataset.probability = p.toFixed(4);
    row.querySelector(".bar div").style.width = (100 * p).toFixed(1) + "%";
    row.querySelector(".p").textContent = (100 * p).toFixed(1) + " %";
    row.classList.toggle("top", name === msg.label);
  }
  $("latency").textContent = msg.latency_ms.toFixed(1) + " ms";
  for (const e of msg.events || []) {
    const item = document.createElement("li");
    item.textContent = `${e.label} at ${e.onset_s.toFixed(2)} s`;
    $("events").prepend(item);
    while ($("events").children.length > 10) $("events").lastChild.remove();
  }
}

function showPosition(msg) {
  $("position").textContent = `source: az ${msg.azimuth_deg.toFixed(1)} deg, el ${msg.elevation_deg.toFixed(1)} deg, ` +
    `${msg.peak_db.toFixed(1)} dB SPL (row ${msg.row.toFixed(1)}, col ${msg.col.toFixed(1)})`;
  $("imaging").textContent = msg.imaging_ms.toFixed(1) + " ms";
  const marker = $("marker");
  marker.style.left = msg.u_px + "px";
  marker.style.top = msg.v_px + "px";
  marker.style.display = "block";
  marker.style.opacity = msg.peak_db >= QUIET_DB_SPL ? "1" : "0.25";
}

function showFrame(blob) {
  const url = URL.createObjectURL(blob);
  $("video").src = url;
  if (lastUrl) URL.revokeObjectURL(lastUrl);
  lastUrl = url;
  framesShown += 1;
  $("frames").textContent = String(framesShown);
  $("video").dataset.frames = String(framesShown);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/v1/live?images=1`);
  ws.binaryType = "blob";
  ws.onopen = () => { $("connection").textContent = "live"; $("connection").className = "state open"; };
  ws.onclose = () => {
    $("connection").textContent = "disconnected"; $("connection").className = "state closed";
    setTimeout(connect, 2000);
  };
  ws.onmessage = (event) => {
    if (typeof event.data !== "string") { showFrame(event.data); return; }
    const msg = JSON.parse(event.data);
    if (msg.type === "hello") {
      classRows(msg.classes);
      const d = msg.device || {};
      $("device").textContent = `device: ${d.uri || "none"}${d.simulated ? " (simulated)" : ""}${d.fallback ? " - fallback" : ""}`;
    } else if (msg.type === "prediction") showPrediction(msg);
    else if (msg.type === "position") showPosition(msg);
  };
}

connect();
