// Dashboard: one /v1/live WebSocket; JSON events update the table and text, binary
// messages are overlay JPEGs shown in #video. No libraries, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
let framesShown = 0;
let lastUrl = null;
let socket = null;

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

// The acoustic view: the server decides where there is a source and sends the colour map as a
// transparent PNG layer (dsp/overlay.py); the page only places it, the marker and the legend.
const frozen = () => $("freeze").checked;  // "freeze" holds video, map and marker as they are

function showPosition(msg) {
  $("imaging").textContent = msg.imaging_ms.toFixed(1) + " ms";
  if (frozen()) return;
  $("legend-top").textContent = msg.peak_db.toFixed(1) + " dB";
  $("legend-bottom").textContent = (msg.peak_db - msg.range_db).toFixed(1) + " dB";
  const s = msg.source, marker = $("marker"), text = $("marker-label"), layer = $("layer");
  $("view").dataset.source = s ? `${s.u_px.toFixed(1)},${s.v_px.toFixed(1)}` : "none";
  $("view").dataset.truth = msg.truth_px ? msg.truth_px.join(",") : "";  // simulated scenes: where the source is
  if (!s) {  // the peak does not stand out of the floor: noise, nothing to point at
    marker.style.display = text.style.display = "none";
    layer.style.visibility = "hidden";
    $("position").textContent = `no source: peak ${msg.contrast_db.toFixed(1)} dB above the floor ` +
      `(< ${msg.margin_db} dB), ${msg.peak_db.toFixed(1)} dB SPL`;
    return;
  }
  $("position").textContent = `source: az ${s.azimuth_deg.toFixed(1)} deg, el ${s.elevation_deg.toFixed(1)} deg, ` +
    `${s.peak_db.toFixed(1)} dB SPL (row ${s.row.toFixed(1)}, col ${s.col.toFixed(1)})`;
  const label = $("label").dataset.reason || $("label").textContent === "-" ? "" : $("label").textContent + " ";
  marker.style.left = s.u_px + "px";
  marker.style.top = s.v_px + "px";
  text.textContent = `${label}${s.peak_db.toFixed(1)} dB`;
  text.style.left = Math.min(s.u_px + 14, 560) + "px";
  text.style.top = Math.max(s.v_px - 28, 0) + "px";
  marker.style.display = text.style.display = "block";
  if (msg.layer) {
    layer.src = msg.layer;
    layer.style.visibility = "visible";
  }
}

function showView(view, colours) {
  if (colours) $("legend-bar").style.background = `linear-gradient(to top, ${colours.join(", ")})`;
  if (!view) return;
  $("range-db").value = view.range_db;
  [$("band-lo").value, $("band-hi").value] = view.band_hz;
  $("view-error").textContent = "";
}

function askView() {  // the view is the device's: every client sees the change
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  socket.send(JSON.stringify({type: "view", range_db: Number($("range-db").value),
                              band_hz: [Number($("band-lo").value), Number($("band-hi").value)]}));
}

for (const id of ["range-db", "band-lo", "band-hi"]) $(id).addEventListener("change", askView);

function showFrame(blob) {
  if (frozen()) return;
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
  socket = ws;
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
      showView(msg.view, msg.legend_colours);
    } else if (msg.type === "prediction") showPrediction(msg);
    else if (msg.type === "position") showPosition(msg);
    else if (msg.type === "view") showView(msg);
    else if (msg.type === "error" && msg.request === "view") $("view-error").textContent = msg.message;
  };
}

connect();
