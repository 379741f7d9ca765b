/**
 * @nim4asr-edge/client: a typed client for the nim4asr-edge local transcription server (`nim4asr-edge serve`).
 *
 * HTTP uses the global fetch/FormData/Blob of Node 18+ (and Electron); live streaming uses the `ws` package.
 * The wire protocol is described in bindings/PROTOCOL.md.
 */
import { EventEmitter } from "node:events";
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import WebSocket from "ws";

// -- results --------------------------------------------------------------------------------------------------------

/** `GET /health`. */
export interface Health {
  status: "ok";
  model: string;
  contexts: number;
  busy: number;
  waiting: number;
  queue: number;
}

/** One entry of `GET /v1/models`. */
export interface Model {
  id: string;
  object: "model";
  created: number;
  owned_by: string;
  family: string;
  guard_status: string;
  aliases: string[];
}

/** `response_format=json` (the default). */
export interface Transcription {
  text: string;
  /** the evidence guard's lowest segment confidence; null without a guard */
  confidence: number | null;
  /** text the guard withheld ("" when none) */
  withheld: string;
}

/** One segment of a `verbose_json` transcription. */
export interface Segment {
  id: number;
  start: number;
  end: number;
  text: string;
  tokens: number[];
  confidence: number | null;
  withheld: string;
  phonemes: string;
  hints: string[];
  language: string | null;
  passes: number;
}

/** `response_format=verbose_json`. */
export interface VerboseTranscription extends Transcription {
  task: "transcribe";
  language: string | null;
  duration: number;
  rtf: number;
  segments: Segment[];
}

export type ResponseFormat = "json" | "verbose_json" | "text" | "srt" | "vtt";

export interface TranscribeOptions {
  /** a language the model can be forced to */
  language?: string;
  /** contextual hints, sent comma-separated as the `prompt` field (at most 64) */
  hints?: string[];
  /** the raw `prompt` field (comma-separated hints); joined after `hints` when both are given */
  prompt?: string;
  responseFormat?: ResponseFormat;
  /** the `model` field: the served id or "whisper-1"; left out by default */
  model?: string;
  /** file name sent in the multipart part (default: the path's base name or "audio.wav") */
  filename?: string;
  signal?: AbortSignal;
}

/** An event of a live stream (the Python `StreamEvent`). */
export interface StreamEvent {
  kind: "partial" | "final" | "endpoint";
  text: string;
  stable: string;
  utterance: number;
  start: number;
  end: number;
  latency: number;
  tokens: number[];
  confidence: number | null;
  withheld: string;
  language: string | null;
  passes: number;
}

export interface StreamOptions {
  sampleRate: number;
  format?: "pcm16" | "f32";
  hints?: string[];
  /** false: a partial for every 640 ms of audio even when audio arrives faster than real time */
  skipLatePartials?: boolean;
}

export interface HotwordEntry {
  text: string;
  weight: number;
  namespace: string;
  phonemes: string;
}

export interface HotwordSkipped {
  line: number;
  text: string;
  reason: string;
}

export interface HotwordImportReport {
  added: number;
  updated: number;
  skipped: HotwordSkipped[];
}

export interface HotwordRemoveReport {
  removed: number;
  missing: string[];
}

export interface HotwordHit {
  text: string;
  score: number;
  start: number;
  end: number;
  method: "exact" | "approx";
  phonemes: string[];
  weight: number;
  namespace: string;
  id: number;
}

// -- errors ---------------------------------------------------------------------------------------------------------

/** A refusal of the server (`{"error": {"message", "type", "param"}}` and the HTTP status), a WebSocket closed with
 * an error code (status 0, `closeCode` set), or a transport failure (status 0, type "connection_error"). */
export class Nim4AsrError extends Error {
  readonly status: number;
  readonly type: string;
  readonly param?: string;
  /** seconds, from the Retry-After header of a 429 */
  readonly retryAfter?: number;
  /** the WebSocket close code, for live-stream failures */
  readonly closeCode?: number;

  constructor(message: string, init: { status: number; type: string; param?: string; retryAfter?: number;
    closeCode?: number; cause?: unknown }) {
    super(message, init.cause !== undefined ? { cause: init.cause } : undefined);
    this.name = "Nim4AsrError";
    this.status = init.status;
    this.type = init.type;
    this.param = init.param;
    this.retryAfter = init.retryAfter;
    this.closeCode = init.closeCode;
  }
}

async function errorFrom(res: Response): Promise<Nim4AsrError> {
  let message = `HTTP ${res.status}`;
  let type = res.status >= 500 ? "server_error" : "invalid_request_error";
  let param: string | undefined;
  const body = await res.text().catch(() => "");
  try {
    const err = JSON.parse(body)?.error;
    if (err && typeof err.message === "string") {
      message = err.message;
      if (typeof err.type === "string") type = err.type;
      if (typeof err.param === "string") param = err.param;
    }
  } catch {
    if (body) message = `${message}: ${body.slice(0, 200)}`;
  }
  const ra = res.headers.get("retry-after");
  const retryAfter = ra !== null && /^\d+$/.test(ra.trim()) ? Number(ra) : undefined;
  return new Nim4AsrError(message, { status: res.status, type, param, retryAfter });
}

// -- live streams ---------------------------------------------------------------------------------------------------

type Pending = { resolve: (r: IteratorResult<StreamEvent>) => void; reject: (e: unknown) => void };

/**
 * A live stream (`/v1/audio/stream`). Events: `open`, `partial`, `final`, `endpoint`, `event` (every one),
 * `error` (a Nim4AsrError), `close` (code, reason). Also an async iterator of StreamEvent that ends when the server
 * closes with 1000 and throws a Nim4AsrError on any other close. `done` resolves with every event on a clean close.
 */
export class LiveStream extends EventEmitter implements AsyncIterable<StreamEvent> {
  readonly format: "pcm16" | "f32";
  /** resolves once the start message is sent */
  readonly opened: Promise<void>;
  /** resolves with every event after the server's clean close (1000); rejects with a Nim4AsrError otherwise */
  readonly done: Promise<StreamEvent[]>;
  closeCode?: number;
  closeReason?: string;

  private readonly ws: WebSocket;
  private readonly events: StreamEvent[] = [];
  private readonly buffered: StreamEvent[] = [];
  private readonly waiting: Pending[] = [];
  private failure?: Nim4AsrError;
  private closed = false;
  private ended = false;
  private queue: Buffer[] = [];
  private isOpen = false;

  /** @internal use Nim4AsrClient.stream() */
  constructor(url: string, headers: Record<string, string>, options: StreamOptions) {
    super();
    this.format = options.format ?? "pcm16";
    const start: Record<string, unknown> = { sample_rate: options.sampleRate, format: this.format };
    if (options.hints?.length) start.hints = options.hints;
    if (options.skipLatePartials !== undefined) start.skip_late_partials = options.skipLatePartials;
    this.ws = new WebSocket(url, { headers });
    this.ws.binaryType = "nodebuffer";
    let settleDone!: [(v: StreamEvent[]) => void, (e: unknown) => void];
    this.done = new Promise((resolve, reject) => { settleDone = [resolve, reject]; });
    this.done.catch(() => undefined); // handled through events/iteration too: never an unhandled rejection
    let settleOpen!: [() => void, (e: unknown) => void];
    this.opened = new Promise((resolve, reject) => { settleOpen = [resolve, reject]; });
    this.opened.catch(() => undefined);

    this.ws.on("open", () => {
      this.ws.send(JSON.stringify(start));
      this.isOpen = true;
      for (const b of this.queue) this.ws.send(b);
      this.queue = [];
      if (this.ended) this.ws.send(JSON.stringify({ type: "end" }));
      settleOpen[0]();
      this.emit("open");
    });
    this.ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      let ev: StreamEvent;
      try {
        ev = JSON.parse(data.toString()) as StreamEvent;
      } catch {
        return;
      }
      this.events.push(ev);
      const w = this.waiting.shift();
      if (w) w.resolve({ value: ev, done: false });
      else this.buffered.push(ev);
      this.emit("event", ev);
      this.emit(ev.kind, ev);
    });
    this.ws.on("unexpected-response", (_req, res) => {
      const status = res.statusCode ?? 0;
      const type = status === 401 ? "authentication_error" : status === 403 ? "permission_error" : "invalid_request_error";
      this.fail(new Nim4AsrError(`the WebSocket handshake was refused with HTTP ${status}`, { status, type }));
      res.resume();
      this.ws.terminate();
    });
    this.ws.on("error", (err) => {
      this.fail(new Nim4AsrError(`live stream connection failed: ${err.message}`,
        { status: 0, type: "connection_error", cause: err }));
    });
    this.ws.on("close", (code, reasonBuf) => {
      const reason = reasonBuf.toString();
      this.closeCode = code;
      this.closeReason = reason;
      this.closed = true;
      if (code !== 1000 && !this.failure) {
        const type = code === 1013 ? "rate_limit_error" : code === 1011 ? "server_error" : "invalid_request_error";
        this.fail(new Nim4AsrError(reason || `the live stream closed with code ${code}`,
          { status: 0, type, closeCode: code }));
      }
      settleOpen[1](this.failure ?? new Nim4AsrError("closed before opening", { status: 0, type: "connection_error" }));
      if (this.failure) {
        settleDone[1](this.failure);
        for (const w of this.waiting.splice(0)) w.reject(this.failure);
      } else {
        settleDone[0](this.events);
        for (const w of this.waiting.splice(0)) w.resolve({ value: undefined, done: true });
      }
      this.emit("close", code, reason);
    });
  }

  private fail(err: Nim4AsrError): void {
    if (this.failure) return;
    this.failure = err;
    if (this.listenerCount("error") > 0) this.emit("error", err);
  }

  /** Send mono samples in the stream's format (an Int16Array for pcm16, a Float32Array for f32, or raw
   * little-endian bytes). Queued until the connection opens. */
  send(pcm: Int16Array | Float32Array | Buffer | Uint8Array): void {
    if (this.ended) throw new Error("send() after end()");
    if (pcm instanceof Int16Array && this.format !== "pcm16") throw new TypeError("Int16Array needs format pcm16");
    if (pcm instanceof Float32Array && this.format !== "f32") throw new TypeError("Float32Array needs format f32");
    const bytes = Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength); // little-endian hosts (x86, ARM)
    if (bytes.length === 0) return;
    const copy = Buffer.from(bytes); // the caller may reuse its array
    if (this.isOpen) this.ws.send(copy);
    else this.queue.push(copy);
  }

  /** No more audio: the server sends the remaining events, then closes (1000). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.isOpen && !this.closed) this.ws.send(JSON.stringify({ type: "end" }));
  }

  /** Close the connection now (without waiting for the remaining events). */
  abort(): void {
    this.ended = true;
    this.ws.close(1000);
  }

  [Symbol.asyncIterator](): AsyncIterator<StreamEvent> {
    return {
      next: () => {
        const ev = this.buffered.shift();
        if (ev) return Promise.resolve({ value: ev, done: false });
        if (this.closed) {
          return this.failure ? Promise.reject(this.failure) : Promise.resolve({ value: undefined, done: true });
        }
        return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
      },
    };
  }
}

// -- the client -----------------------------------------------------------------------------------------------------

export interface ClientOptions {
  /** e.g. "http://127.0.0.1:8000" */
  baseUrl: string;
  /** the server's --token, sent as `Authorization: Bearer ...` */
  token?: string;
  /** per-request timeout in milliseconds for HTTP calls (default 120000; 0: none) */
  timeoutMs?: number;
}

export class Nim4AsrClient {
  readonly baseUrl: string;
  private readonly token?: string;
  private readonly timeoutMs: number;
  readonly hotwords: Hotwords;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 120_000;
    this.hotwords = new Hotwords(this);
  }

  private headers(extra?: Record<string, string>): Record<string, string> {
    return { ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}), ...extra };
  }

  /** @internal */
  async request(method: string, path: string, body?: FormData | string | object, signal?: AbortSignal): Promise<Response> {
    let payload: FormData | string | undefined;
    const extra: Record<string, string> = {};
    if (body instanceof FormData || typeof body === "string") payload = body;
    else if (body !== undefined) {
      payload = JSON.stringify(body);
      extra["Content-Type"] = "application/json";
    }
    const signals = [signal, this.timeoutMs > 0 ? AbortSignal.timeout(this.timeoutMs) : undefined]
      .filter((s): s is AbortSignal => s !== undefined);
    const anySignal = signals.length > 1 ? anyOf(signals) : signals[0];
    let res: Response;
    try {
      res = await fetch(this.baseUrl + path, { method, headers: this.headers(extra), body: payload, signal: anySignal });
    } catch (err) {
      throw new Nim4AsrError(`request to ${path} failed: ${(err as Error).message}`,
        { status: 0, type: "connection_error", cause: err });
    }
    if (!res.ok) throw await errorFrom(res);
    return res;
  }

  /** @internal */
  async json<T>(method: string, path: string, body?: object | FormData, signal?: AbortSignal): Promise<T> {
    return (await (await this.request(method, path, body, signal)).json()) as T;
  }

  health(): Promise<Health> {
    return this.json<Health>("GET", "/health");
  }

  async models(): Promise<Model[]> {
    return (await this.json<{ data: Model[] }>("GET", "/v1/models")).data;
  }

  /** Transcribe a file (a path, a Buffer/Uint8Array of the file's bytes, or a Blob): WAV, FLAC, OGG, MP3. */
  transcribe(file: FileInput, options: TranscribeOptions & { responseFormat: "verbose_json" }): Promise<VerboseTranscription>;
  transcribe(file: FileInput, options: TranscribeOptions & { responseFormat: "text" | "srt" | "vtt" }): Promise<string>;
  transcribe(file: FileInput, options?: TranscribeOptions & { responseFormat?: "json" }): Promise<Transcription>;
  transcribe(file: FileInput, options?: TranscribeOptions): Promise<Transcription | VerboseTranscription | string>;
  async transcribe(file: FileInput, options: TranscribeOptions = {}): Promise<Transcription | VerboseTranscription | string> {
    const form = new FormData();
    const { blob, name } = await toBlob(file, options.filename);
    form.append("file", blob, name);
    const fmt = options.responseFormat ?? "json";
    form.append("response_format", fmt);
    if (options.model) form.append("model", options.model);
    if (options.language) form.append("language", options.language);
    const prompt = [...(options.hints ?? []), ...(options.prompt ? [options.prompt] : [])].join(", ");
    if (prompt) form.append("prompt", prompt);
    const res = await this.request("POST", "/v1/audio/transcriptions", form, options.signal);
    return fmt === "json" || fmt === "verbose_json"
      ? (res.json() as Promise<Transcription | VerboseTranscription>) : res.text();
  }

  /** Open a live stream. Send audio with `send()`, finish with `end()`; read events from the emitter or iterator. */
  stream(options: StreamOptions): LiveStream {
    const url = this.baseUrl.replace(/^http/, "ws") + "/v1/audio/stream";
    return new LiveStream(url, this.headers(), options);
  }
}

/** Hotword endpoints (404 "not_found_error" when the server was started without --hotwords). */
export class Hotwords {
  constructor(private readonly client: Nim4AsrClient) {}

  async list(options: { namespace?: string; limit?: number } = {}): Promise<HotwordEntry[]> {
    const q = query({ namespace: options.namespace, limit: options.limit });
    return (await this.client.json<{ data: HotwordEntry[] }>("GET", `/v1/hotwords${q}`)).data;
  }

  add(entries: Array<string | { text: string; weight?: number }>, namespace = "default"): Promise<HotwordImportReport> {
    return this.client.json<HotwordImportReport>("POST", "/v1/hotwords", { namespace, entries });
  }

  remove(texts: string[], namespace = "default"): Promise<HotwordRemoveReport> {
    return this.client.json<HotwordRemoveReport>("POST", "/v1/hotwords/remove", { namespace, texts });
  }

  async search(q: string, options: { namespace?: string; topK?: number } = {}): Promise<HotwordHit[]> {
    const qs = query({ q, namespace: options.namespace, top_k: options.topK });
    return (await this.client.json<{ data: HotwordHit[] }>("GET", `/v1/hotwords/search${qs}`)).data;
  }

  /** Import a txt/csv list file (the format of `nim4asr-edge hotwords build`). */
  async import(file: FileInput, options: { namespace?: string; format?: "txt" | "csv" } = {}): Promise<HotwordImportReport> {
    const form = new FormData();
    const { blob, name } = await toBlob(file, undefined, "hotwords.txt");
    form.append("file", blob, name);
    form.append("namespace", options.namespace ?? "default");
    form.append("format", options.format ?? "txt");
    return this.client.json<HotwordImportReport>("POST", "/v1/hotwords/import", form);
  }
}

// -- helpers --------------------------------------------------------------------------------------------------------

export type FileInput = string | Blob | Uint8Array | ArrayBuffer;

async function toBlob(file: FileInput, filename?: string, fallback = "audio.wav"): Promise<{ blob: Blob; name: string }> {
  if (typeof file === "string") {
    const data = await readFile(file);
    return { blob: new Blob([data]), name: filename ?? basename(file) };
  }
  if (file instanceof Blob) return { blob: file, name: filename ?? ((file as { name?: string }).name || fallback) };
  return { blob: new Blob([file]), name: filename ?? fallback };
}

function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}

function anyOf(signals: AbortSignal[]): AbortSignal {
  const anyFn = (AbortSignal as unknown as { any?: (s: AbortSignal[]) => AbortSignal }).any;
  if (anyFn) return anyFn(signals);
  const ctrl = new AbortController();
  for (const s of signals) {
    if (s.aborted) { ctrl.abort(s.reason); break; }
    s.addEventListener("abort", () => ctrl.abort(s.reason), { once: true });
  }
  return ctrl.signal;
}

/** Samples of a 16-bit PCM / 32-bit float WAV file (mono, or the first channel), for streaming a file. */
export function readWav(data: Uint8Array): { sampleRate: number; channels: number; format: "pcm16" | "f32"; samples: Int16Array | Float32Array } {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const tag = (o: number) => String.fromCharCode(data[o], data[o + 1], data[o + 2], data[o + 3]);
  if (data.length < 12 || tag(0) !== "RIFF" || tag(8) !== "WAVE") throw new Error("not a RIFF/WAVE file");
  let pos = 12;
  let fmt: { code: number; channels: number; rate: number; bits: number } | undefined;
  while (pos + 8 <= data.length) {
    const id = tag(pos);
    const size = view.getUint32(pos + 4, true);
    const body = pos + 8;
    if (id === "fmt ") {
      fmt = { code: view.getUint16(body, true), channels: view.getUint16(body + 2, true),
        rate: view.getUint32(body + 4, true), bits: view.getUint16(body + 14, true) };
      if (fmt.code === 0xfffe && size >= 26) fmt.code = view.getUint16(body + 24, true); // WAVE_FORMAT_EXTENSIBLE
    } else if (id === "data") {
      if (!fmt) throw new Error("WAV data before its fmt chunk");
      const end = Math.min(data.length, body + (size === 0 || size === 0xffffffff ? data.length : size));
      const width = fmt.bits / 8;
      const frames = Math.floor((end - body) / (width * fmt.channels));
      if (fmt.code === 1 && fmt.bits === 16) {
        const out = new Int16Array(frames);
        for (let i = 0; i < frames; i++) out[i] = view.getInt16(body + i * 2 * fmt.channels, true);
        return { sampleRate: fmt.rate, channels: fmt.channels, format: "pcm16", samples: out };
      }
      if (fmt.code === 3 && fmt.bits === 32) {
        const out = new Float32Array(frames);
        for (let i = 0; i < frames; i++) out[i] = view.getFloat32(body + i * 4 * fmt.channels, true);
        return { sampleRate: fmt.rate, channels: fmt.channels, format: "f32", samples: out };
      }
      throw new Error(`unsupported WAV encoding (format ${fmt.code}, ${fmt.bits} bits): use 16-bit PCM or 32-bit float`);
    }
    pos = body + size + (size & 1);
  }
  throw new Error("the WAV file has no data chunk");
}
