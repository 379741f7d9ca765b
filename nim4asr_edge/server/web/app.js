// The nim4asr-edge page: server status and token, a file's transcript, the microphone live. Hotwords: hotwords.js.
// Every request carries the token typed above (HTTP: Authorization; WebSocket: the subprotocol bearer.<base64url>).
import { initHotwords } from "./hotwords.js";

const $ = (id) => document.getElementById(id);
const SUBPROTOCOL = "nim4asr.v1";
const FRAME_S = 0.1; // seconds of audio per WebSocket frame

let token = sessionStorage.getItem("nim4asr-token") || "";

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** fetch() against this server with the token; JSON back, or an ApiError with the server's message. */
async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (token) headers.set("Authorization", `Bearer ${token}`);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (err) {
    throw new ApiError(0, "the server cannot be reached");
  }
  const body = await response.text();
  let data = null;
  try {
    data = body ? JSON.parse(body) : null;
  } catch (err) {
    data = null;
  }
  if (!response.ok) {
    const message = data && data.error ? data.error.message : `HTTP ${response.status}`;
    if (response.status === 401) tokenNeeded(true);
    throw new ApiError(response.status, message);
  }
  return data;
}

function setStatus(el, text, kind = "") {
  el.textContent = text;
  el.dataset.kind = kind;
}

function describe(err) {
  if (err.status === 401) return "The server needs a token: type it in the Token field above.";
  return err.message || String(err);
}

function tokenNeeded(needed) {
  $("token-form").classList.toggle("needed", needed);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const fmtTime = (s) => `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, "0")}`;
const fmtConf = (c) => (c === null || c === undefined ? "–" : c.toFixed(2));

// -- server status and token ----------------------------------------------------------------------------------------
async function refreshServer() {
  const pill = $("server-status");
  try {
    const health = await api("/health");
    const models = await api("/v1/models");
    const model = models.data[0];
    pill.textContent = `${model.id} · ${model.family} · guard ${model.guard_status} · ${health.contexts} context` +
      (health.contexts === 1 ? "" : "s");
    pill.dataset.state = "ok";
    tokenNeeded(false);
    return true;
  } catch (err) {
    pill.textContent = err.status === 401 ? "token needed" : "server unreachable";
    pill.dataset.state = "error";
    return false;
  }
}

function initToken(onChange) {
  $("token").value = token;
  $("token-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    if (token) sessionStorage.setItem("nim4asr-token", token);
    else sessionStorage.removeItem("nim4asr-token");
    if (await refreshServer()) onChange();
  });
}

// -- a file -----------------------------------------------------------------------------------------------------------
function showResult(data) {
  $("file-result").hidden = false;
  $("file-text").textContent = data.text;
  const withheld = $("file-withheld");
  withheld.replaceChildren();
  withheld.hidden = !data.withheld;
  if (data.withheld) {
    withheld.append(`Withheld by the evidence guard (confidence ${fmtConf(data.confidence)}): the model's text did ` +
      "not match what was heard.");
    withheld.append(el("q", "", data.withheld));
  }
  const meta = $("file-meta");
  meta.replaceChildren();
  const items = [["duration", `${data.duration.toFixed(1)} s`], ["RTF", data.rtf.toFixed(3)],
    ["confidence", fmtConf(data.confidence)], ["segments", String(data.segments.length)]];
  if (data.language) items.push(["language", data.language]);
  for (const [name, value] of items) {
    const row = el("div");
    row.append(el("dt", "", name), el("dd", "", value));
    meta.append(row);
  }
  const list = $("file-segments");
  list.replaceChildren();
  for (const seg of data.segments) {
    const li = el("li", seg.withheld ? "withheld-seg" : "");
    li.append(el("span", "time", `${fmtTime(seg.start)}–${fmtTime(seg.end)}`),
      el("span", "text", seg.text || (seg.withheld ? `[withheld] ${seg.withheld}` : "")),
      el("span", "conf", fmtConf(seg.confidence)));
    li.addEventListener("click", () => {
      const audio = $("file-audio");
      audio.currentTime = seg.start;
      audio.play().catch(() => {});
    });
    list.append(li);
  }
}

let audioUrl = null;

async function transcribeFile(file) {
  const status = $("file-status");
  if (audioUrl) URL.revokeObjectURL(audioUrl);
  audioUrl = URL.createObjectURL(file);
  $("file-audio").src = audioUrl;
  $("file-result").hidden = true;
  setStatus(status, `Transcribing ${file.name} (${(file.size / 1024).toFixed(0)} KB)…`, "busy");
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("response_format", "verbose_json");
  const hints = $("file-hints").value.trim();
  if (hints) form.append("prompt", hints);
  const t0 = performance.now();
  try {
    const data = await api("/v1/audio/transcriptions", { method: "POST", body: form });
    showResult(data);
    const seconds = ((performance.now() - t0) / 1000).toFixed(1);
    setStatus(status, data.withheld && !data.text ? `${file.name}: withheld (${seconds} s)` :
      `${file.name}: done in ${seconds} s`, data.withheld && !data.text ? "" : "ok");
  } catch (err) {
    setStatus(status, describe(err), "error");
  }
}

function initFile() {
  const drop = $("drop");
  const input = $("file-input");
  input.addEventListener("change", () => input.files[0] && transcribeFile(input.files[0]));
  drop.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      input.click();
    }
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (ev) => {
      ev.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) drop.addEventListener(name, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    const file = ev.dataTransfer.files[0];
    if (file) transcribeFile(file);
  });
}

// -- the microphone ---------------------------------------------------------------------------------------------------
function base64url(text) {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function toPcm16(samples) {
  const out = new DataView(new ArrayBuffer(samples.length * 2));
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    out.setInt16(i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true); // little-endian
  }
  return out.buffer;
}

class Live {
  constructor() {
    this.ws = null;
    this.audio = null; // {context, stream, nodes}
    this.pending = [];
    this.pendingLength = 0;
    this.frame = 1600;
  }

  async start() {
    const status = $("mic-status");
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      setStatus(status, "The microphone needs a secure page: open it on localhost or over https.", "error");
      return;
    }
    $("mic-start").disabled = true;
    this.opened = false;
    setStatus(status, "Opening the microphone…", "busy");
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: {
        channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
      const context = new AudioContext();
      this.audio = { context, stream, nodes: [] };
      if (context.state === "suspended") await context.resume(); // created after an await: may need a nudge
      this.frame = Math.round(context.sampleRate * FRAME_S);
      await this.openSocket(context.sampleRate);
      await this.capture(context, stream);
      $("mic-stop").disabled = false;
      setStatus(status, `Listening (${context.sampleRate} Hz, pcm16)…`, "busy");
    } catch (err) {
      this.stopAudio();
      if (this.ws) this.ws.close();
      else if (this.opened) return; // the server closed the stream meanwhile; onClose said why
      setStatus(status, err.name === "NotAllowedError" ? "Microphone access was refused." : describe(err), "error");
      $("mic-start").disabled = false;
    }
  }

  openSocket(sampleRate) {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/audio/stream`;
    const protocols = [SUBPROTOCOL];
    if (token) protocols.push(`bearer.${base64url(token)}`);
    const hints = $("mic-hints").value.split(",").map((h) => h.trim()).filter(Boolean);
    const ws = new WebSocket(url, protocols);
    this.opened = false;
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.addEventListener("message", (ev) => this.onEvent(JSON.parse(ev.data)));
    ws.addEventListener("close", (ev) => this.onClose(ev));
    return new Promise((resolve, reject) => {
      ws.addEventListener("open", () => {
        this.opened = true;
        ws.send(JSON.stringify({ sample_rate: sampleRate, format: "pcm16", hints }));
        resolve();
      }, { once: true });
      ws.addEventListener("error", () => reject(new ApiError(0, "The live stream was refused (wrong or missing " +
        "token, or another origin)")), { once: true });
    });
  }

  async capture(context, stream) {
    const source = context.createMediaStreamSource(stream);
    const mute = context.createGain();
    mute.gain.value = 0; // the graph must reach the destination to be pulled; nothing is played
    mute.connect(context.destination);
    let node;
    if (context.audioWorklet) {
      await context.audioWorklet.addModule("/static/capture.js");
      node = new AudioWorkletNode(context, "pcm-capture", { channelCount: 1, channelCountMode: "explicit" });
      node.port.onmessage = (ev) => this.onSamples(ev.data);
    } else { // older web views: the deprecated ScriptProcessor
      node = context.createScriptProcessor(4096, 1, 1);
      node.onaudioprocess = (ev) => this.onSamples(ev.inputBuffer.getChannelData(0).slice());
    }
    source.connect(node);
    node.connect(mute);
    if (!this.audio) throw new Error("the stream closed while the microphone was starting");
    this.audio.nodes.push(source, node, mute);
  }

  onSamples(samples) {
    let sum = 0;
    for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
    const rms = Math.sqrt(sum / Math.max(1, samples.length));
    $("mic-level").style.width = `${Math.min(100, rms * 400).toFixed(0)}%`;
    this.pending.push(samples);
    this.pendingLength += samples.length;
    if (this.pendingLength >= this.frame) this.flush();
  }

  flush() {
    if (!this.pendingLength) return;
    const all = new Float32Array(this.pendingLength);
    let at = 0;
    for (const part of this.pending) {
      all.set(part, at);
      at += part.length;
    }
    this.pending = [];
    this.pendingLength = 0;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(toPcm16(all));
  }

  stop() {
    $("mic-stop").disabled = true;
    this.stopAudio();
    this.flush();
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: "end" }));
      setStatus($("mic-status"), "Finishing the last utterance…", "busy");
    }
  }

  stopAudio() {
    if (!this.audio) return;
    for (const node of this.audio.nodes) node.disconnect();
    for (const track of this.audio.stream.getTracks()) track.stop();
    this.audio.context.close();
    this.audio = null;
    $("mic-level").style.width = "0";
  }

  onEvent(ev) {
    const live = $("live");
    const partial = $("live-partial");
    if (ev.kind === "partial") {
      live.dataset.partials = String(Number(live.dataset.partials) + 1);
      partial.replaceChildren(ev.stable, el("span", "unstable", ev.text.slice(ev.stable.length)));
    } else if (ev.kind === "final") {
      live.dataset.finals = String(Number(live.dataset.finals) + 1);
      const li = el("li", ev.withheld && !ev.text ? "withheld-seg" : "");
      li.append(el("span", "time", fmtTime(ev.start)));
      li.append(ev.text || (ev.withheld ? `[withheld, confidence ${fmtConf(ev.confidence)}] ${ev.withheld}` : "…"));
      $("live-finals").append(li);
      partial.replaceChildren();
      live.scrollTop = live.scrollHeight;
    }
  }

  onClose(ev) {
    this.stopAudio();
    this.ws = null;
    $("mic-start").disabled = false;
    $("mic-stop").disabled = true;
    if (!this.opened) return; // start() says why
    if (ev.code === 1000) setStatus($("mic-status"), "Stream finished.", "ok");
    else setStatus($("mic-status"), `The stream closed (${ev.code}${ev.reason ? `: ${ev.reason}` : ""}).`, "error");
  }
}

function initLive() {
  const live = new Live();
  $("mic-start").addEventListener("click", () => live.start());
  $("mic-stop").addEventListener("click", () => live.stop());
}

// -- start ------------------------------------------------------------------------------------------------------------
const hotwords = initHotwords({ api, setStatus, describe });
initToken(() => hotwords.refresh());
initFile();
initLive();
refreshServer().then((ok) => ok && hotwords.refresh());
document.body.dataset.ready = "true";
