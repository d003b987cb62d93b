// rtstyle studio page: camera -> WebRTC -> server pipeline -> stylized track back; file jobs.
// Every frame sent is stamped with a frame number in its bottom rows (16 black/white cells, the
// same code as rtstyle/serve/webrtc.py); the server copies the code onto the stylized frame, so
// the page times each frame from drawing to display. Counters live in window.studio (tests read them).
"use strict";

const CELLS = 16, ROWS = 16;
const token = new URLSearchParams(location.search).get("token");
const auth = token ? { Authorization: "Bearer " + token } : {};
const $ = (id) => document.getElementById(id);

const studio = window.studio = {
  models: [], session: null, pc: null, running: false,
  stats: { framesSent: 0, framesOut: 0, stamped: 0, fps: 0, latencyMs: null, latencyP95Ms: null },
  sentAt: new Map(), latencies: [], outTimes: [],
};

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...auth, ...(options.headers || {}) } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function check(n) { return ((n ^ (n >> 4) ^ (n >> 8)) & 0xF) ^ 0x5; }

function drawStamp(ctx, w, h, n) {
  const code = ((n & 0xFFF) << 4) | check(n & 0xFFF), cell = Math.floor(w / CELLS);
  for (let i = 0; i < CELLS; i++) {
    ctx.fillStyle = (code >> (CELLS - 1 - i)) & 1 ? "#fff" : "#000";
    ctx.fillRect(i * cell, h - ROWS, cell, ROWS);
  }
}

function readStamp(data, w, h) {  // data: RGBA of the bottom ROWS rows
  const cell = Math.floor(w / CELLS);
  if (cell < 4) return null;
  let code = 0;
  for (let i = 0; i < CELLS; i++) {
    let sum = 0, count = 0;
    for (let y = 4; y < ROWS - 4; y++) {
      for (let x = i * cell + Math.floor(cell / 4); x < (i + 1) * cell - Math.floor(cell / 4); x++) {
        const k = (y * w + x) * 4;
        sum += data[k] + data[k + 1] + data[k + 2]; count += 3;
      }
    }
    const v = sum / count;
    if (v > 80 && v < 176) return null;
    code = (code << 1) | (v >= 128 ? 1 : 0);
  }
  const n = code >> 4;
  return (code & 0xF) === check(n) ? n : null;
}

// ------------------------------------------------------------------ models and settings
function selectedModel() { return studio.models.find((m) => m.name === $("model").value); }

function settings() {
  const m = selectedModel(), s = { model: m.name, smoothing: $("smoothing").checked ? 0.5 : 0,
                                   strength: parseFloat($("strength").value) };
  if (m.alpha) s.alpha = parseFloat($("alpha").value);
  if (m.styles.length) s.style_index = parseInt($("bank").value || "0", 10);
  return s;
}

function showModelControls() {
  const m = selectedModel();
  $("alpha-box").classList.toggle("hidden", !m.alpha);
  $("style-image-box").classList.toggle("hidden", !m.style_image);
  $("bank-box").classList.toggle("hidden", !m.styles.length);
  $("bank").replaceChildren(...m.styles.map((name, i) => new Option(name, i)));
}

async function pushSettings() {
  showModelControls();
  if (!studio.session) return;
  try { await api(`/api/sessions/${studio.session}`, { method: "POST", body: JSON.stringify(settings()),
                                                       headers: { "Content-Type": "application/json" } }); }
  catch (e) { $("error").textContent = e.message; }
}

async function loadModels() {
  studio.models = (await api("/api/models")).models;
  for (const id of ["model", "job-model"]) $(id).replaceChildren(...studio.models.map((m) => new Option(m.name, m.name)));
  showModelControls();
  const h = await api("/health");
  $("health").textContent = `${studio.models.length} styles · ${h.sessions}/${h.max_sessions} live sessions`;
}

// ------------------------------------------------------------------ live
async function start() {
  $("error").textContent = "";
  $("start").disabled = true;
  try {
    const camera = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    const video = $("camera");
    video.srcObject = camera;
    await video.play();
    const sent = $("sent"), ctx = sent.getContext("2d", { willReadFrequently: true });
    sent.width = video.videoWidth || 640; sent.height = video.videoHeight || 480;
    studio.running = true;
    let n = 0;
    const draw = () => {
      if (!studio.running) return;
      ctx.drawImage(video, 0, 0, sent.width, sent.height);
      drawStamp(ctx, sent.width, sent.height, n);
      studio.sentAt.set(n & 0xFFF, performance.now());
      n++; studio.stats.framesSent = n;
      video.requestVideoFrameCallback(draw);
    };
    video.requestVideoFrameCallback(draw);
    const stream = sent.captureStream();
    const pc = studio.pc = new RTCPeerConnection({ iceServers: [] });  // no STUN: host candidates only
    pc.addTransceiver(stream.getVideoTracks()[0], { direction: "sendrecv" });
    pc.ontrack = (e) => { $("remote").srcObject = new MediaStream([e.track]); watchOutput(); };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {  // the server takes no trickled candidates: wait for all of them
      if (pc.iceGatheringState === "complete") return resolve();
      pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
    });
    const answer = await api("/offer", { method: "POST", headers: { "Content-Type": "application/json" },
                                         body: JSON.stringify({ sdp: pc.localDescription.sdp, type: "offer", ...settings() }) });
    studio.session = answer.session;
    await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
    $("stop").disabled = false; $("snapshot").disabled = false;
  } catch (e) {
    $("error").textContent = "live: " + e.message;
    await stop();
  }
}

function watchOutput() {
  const remote = $("remote"), probe = document.createElement("canvas"), pctx = probe.getContext("2d", { willReadFrequently: true });
  const onFrame = () => {
    if (!studio.running) return;
    const now = performance.now(), w = remote.videoWidth, h = remote.videoHeight;
    studio.stats.framesOut++;
    studio.outTimes.push(now);
    while (studio.outTimes.length && now - studio.outTimes[0] > 2000) studio.outTimes.shift();
    const span = (now - studio.outTimes[0]) / 1000;
    studio.stats.fps = span > 0 ? (studio.outTimes.length - 1) / span : 0;
    if (w && h) {
      probe.width = w; probe.height = ROWS;
      pctx.drawImage(remote, 0, h - ROWS, w, ROWS, 0, 0, w, ROWS);
      const stamp = readStamp(pctx.getImageData(0, 0, w, ROWS).data, w, ROWS);
      if (stamp !== null && studio.sentAt.has(stamp)) {
        studio.stats.stamped++;
        studio.latencies.push(now - studio.sentAt.get(stamp));
        if (studio.latencies.length > 120) studio.latencies.shift();
        const sorted = [...studio.latencies].sort((a, b) => a - b);
        studio.stats.latencyMs = sorted[Math.floor(sorted.length / 2)];
        studio.stats.latencyP95Ms = sorted[Math.min(sorted.length - 1, Math.floor(0.95 * sorted.length))];
      }
    }
    const s = studio.stats;
    $("stats").textContent = `${s.fps.toFixed(1)} fps · latency ${s.latencyMs === null ? "–" : s.latencyMs.toFixed(0)} ms ` +
      `(p95 ${s.latencyP95Ms === null ? "–" : s.latencyP95Ms.toFixed(0)}) · ${s.framesOut} frames · ${w}x${h}`;
    remote.requestVideoFrameCallback(onFrame);
  };
  remote.requestVideoFrameCallback(onFrame);
}

// Mean absolute difference (0-255) between what was sent and what came back, on small copies
// without the stamp rows: a stylized feed differs clearly from the camera.
studio.pixelDiff = () => {
  const w = 64, h = 48, a = document.createElement("canvas"), b = document.createElement("canvas");
  a.width = b.width = w; a.height = b.height = h;
  const sent = $("sent"), remote = $("remote");
  const cut = (src, sh) => Math.max(1, sh - Math.ceil(ROWS * 1.5));
  a.getContext("2d").drawImage(sent, 0, 0, sent.width, cut(sent, sent.height), 0, 0, w, h);
  b.getContext("2d").drawImage(remote, 0, 0, remote.videoWidth, cut(remote, remote.videoHeight), 0, 0, w, h);
  const da = a.getContext("2d").getImageData(0, 0, w, h).data, db = b.getContext("2d").getImageData(0, 0, w, h).data;
  let sum = 0;
  for (let i = 0; i < da.length; i += 4) sum += Math.abs(da[i] - db[i]) + Math.abs(da[i + 1] - db[i + 1]) + Math.abs(da[i + 2] - db[i + 2]);
  return sum / (w * h * 3);
};

async function stop() {
  studio.running = false;
  if (studio.session) { try { await api(`/api/sessions/${studio.session}`, { method: "DELETE" }); } catch (e) { /* gone */ } }
  studio.session = null;
  if (studio.pc) studio.pc.close();
  studio.pc = null;
  const cam = $("camera").srcObject;
  if (cam) cam.getTracks().forEach((t) => t.stop());
  $("start").disabled = false; $("stop").disabled = true; $("snapshot").disabled = true;
}

function snapshot() {
  const remote = $("remote"), c = document.createElement("canvas");
  c.width = remote.videoWidth; c.height = remote.videoHeight;
  c.getContext("2d").drawImage(remote, 0, 0);
  c.toBlob((blob) => {
    const url = URL.createObjectURL(blob), a = document.createElement("a"), img = new Image();
    a.href = url; a.download = `rtstyle-${$("model").value}-${Date.now()}.png`; img.src = url;
    a.appendChild(img); $("snapshots").prepend(a);
  }, "image/png");
}

async function uploadStyleImage() {
  const file = $("style-image").files[0];
  if (!file || !studio.session) return;
  try { await api(`/api/sessions/${studio.session}/style-image`, { method: "POST", body: file }); }
  catch (e) { $("error").textContent = "style image: " + e.message; }
}

// ------------------------------------------------------------------ files
async function startJob() {
  const file = $("job-file").files[0];
  $("job-error").textContent = ""; $("job-download").classList.add("hidden");
  if (!file) { $("job-error").textContent = "choose a video or photo first"; return; }
  const form = new FormData();
  form.append("model", $("job-model").value);
  form.append("strength", $("job-strength").value);
  form.append("file", file);
  $("job-start").disabled = true; $("job-status").textContent = "uploading…";
  try {
    let job = await api("/api/jobs", { method: "POST", body: form });
    while (job.status === "queued" || job.status === "running") {
      $("job-progress").value = job.progress;
      $("job-status").textContent = `${job.status} ${job.frames_done}/${job.frames_total ?? "?"} frames`;
      await new Promise((r) => setTimeout(r, 500));
      job = await api(`/api/jobs/${job.id}`);
    }
    if (job.status !== "done") throw new Error(job.error || job.status);
    $("job-progress").value = 1; $("job-status").textContent = `done: ${job.frames_done} frames`;
    const link = $("job-download");
    link.href = job.download + (token ? `?token=${encodeURIComponent(token)}` : "");
    link.classList.remove("hidden");
    studio.lastJob = job;
  } catch (e) {
    $("job-error").textContent = "job: " + e.message; $("job-status").textContent = "";
  } finally { $("job-start").disabled = false; }
}

$("start").onclick = start;
$("stop").onclick = stop;
$("snapshot").onclick = snapshot;
$("model").onchange = pushSettings;
$("bank").onchange = pushSettings;
$("alpha").onchange = pushSettings;
$("strength").onchange = pushSettings;
$("smoothing").onchange = pushSettings;
$("style-image").onchange = uploadStyleImage;
$("job-start").onclick = startJob;
loadModels().catch((e) => { $("error").textContent = "cannot load models: " + e.message; });
