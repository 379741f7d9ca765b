// Run against a live server: NIM4ASR_URL=http://127.0.0.1:PORT NIM4ASR_WAV=path/to/jfk.wav node --test test/
// NIM4ASR_HOTWORDS=1 when the server was started with --hotwords (an index holding "Ada Lovelace").
// NIM4ASR_TOKEN when the server was started with --token; NIM4ASR_BUSY=1 (a server with --contexts 1 --queue 0)
// skips these (limits.test.mjs then runs).
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";

import { Nim4AsrClient, Nim4AsrError, readWav } from "../dist/index.js";

const URL = process.env.NIM4ASR_URL;
const WAV = process.env.NIM4ASR_WAV;
const HOTWORDS = process.env.NIM4ASR_HOTWORDS === "1";
const skip = !URL || !WAV ? "set NIM4ASR_URL and NIM4ASR_WAV to run against a server"
  : process.env.NIM4ASR_BUSY === "1" ? "the busy server (--contexts 1 --queue 0) runs limits.test.mjs only" : false;
const client = new Nim4AsrClient({ baseUrl: URL ?? "http://127.0.0.1:1", token: process.env.NIM4ASR_TOKEN,
  timeoutMs: 30_000 });

test("health and models", { skip, timeout: 30_000 }, async () => {
  const health = await client.health();
  assert.equal(health.status, "ok");
  assert.ok(health.contexts >= 1);
  const models = await client.models();
  assert.equal(models.length, 1);
  assert.equal(typeof models[0].id, "string");
  assert.ok(models[0].aliases.includes("whisper-1"));
});

test("transcribe a path, a Buffer and a Blob (json, verbose_json, text)", { skip, timeout: 30_000 }, async () => {
  const json = await client.transcribe(WAV);
  assert.equal(typeof json.text, "string");
  assert.ok(json.text.length > 0);
  assert.equal(typeof json.withheld, "string");
  assert.ok("confidence" in json);
  const bytes = await readFile(WAV);
  const again = await client.transcribe(bytes, { model: "whisper-1" });
  assert.equal(again.text, json.text);
  const verbose = await client.transcribe(new Blob([bytes]), { responseFormat: "verbose_json", hints: ["Ada Lovelace"] });
  assert.equal(verbose.task, "transcribe");
  assert.equal(verbose.text, json.text);
  assert.ok(Math.abs(verbose.duration - 11.0) < 0.01, `duration ${verbose.duration}`);
  assert.ok(verbose.segments.length >= 1);
  const seg = verbose.segments[0];
  assert.equal(seg.start, 0);
  for (const k of ["id", "start", "end", "text", "tokens", "confidence", "withheld", "phonemes", "hints", "language",
    "passes"]) assert.ok(k in seg, `segment field ${k}`);
  assert.ok(Array.isArray(seg.tokens) && Array.isArray(seg.hints));
  const text = await client.transcribe(WAV, { responseFormat: "text" });
  assert.equal(text.trim(), json.text.trim());
  const srt = await client.transcribe(WAV, { responseFormat: "srt" });
  assert.match(srt, /^1\n00:00:00,000 --> /);
});

test("4xx refusals become Nim4AsrError", { skip, timeout: 30_000 }, async () => {
  await assert.rejects(client.transcribe(new Uint8Array(0)), (err) => {
    assert.ok(err instanceof Nim4AsrError);
    assert.equal(err.status, 400);
    assert.equal(err.type, "invalid_request_error");
    assert.equal(err.param, "file");
    assert.match(err.message, /empty/);
    return true;
  });
  await assert.rejects(client.transcribe(WAV, { responseFormat: "docx" }), (err) => {
    assert.ok(err instanceof Nim4AsrError);
    assert.equal(err.status, 400);
    assert.equal(err.param, "response_format");
    return true;
  });
  await assert.rejects(client.transcribe(WAV, { model: "gpt-9" }), (err) => err instanceof Nim4AsrError &&
    err.status === 400 && /not served/.test(err.message));
  const wrong = new Nim4AsrClient({ baseUrl: URL + "/nope", token: process.env.NIM4ASR_TOKEN });
  await assert.rejects(wrong.health(), (err) => err instanceof Nim4AsrError && err.status === 404 &&
    err.type === "not_found_error");
  const gone = new Nim4AsrClient({ baseUrl: "http://127.0.0.1:9", timeoutMs: 5000 });
  await assert.rejects(gone.health(), (err) => err instanceof Nim4AsrError && err.status === 0 &&
    err.type === "connection_error");
});

test("live stream of the WAV as pcm16: partials, a final and an endpoint", { skip, timeout: 60_000 }, async () => {
  const wav = readWav(await readFile(WAV));
  assert.equal(wav.format, "pcm16");
  const stream = client.stream({ sampleRate: wav.sampleRate, format: "pcm16", hints: ["Ada Lovelace"],
    skipLatePartials: false });
  const emitted = { partial: 0, final: 0, endpoint: 0 };
  stream.on("partial", () => emitted.partial++);
  stream.on("final", () => emitted.final++);
  stream.on("endpoint", () => emitted.endpoint++);
  const step = Math.round(wav.sampleRate / 10); // 100 ms frames
  for (let i = 0; i < wav.samples.length; i += step) stream.send(wav.samples.subarray(i, i + step));
  stream.end();
  const events = [];
  for await (const ev of stream) events.push(ev);
  const kinds = events.map((e) => e.kind);
  assert.equal(stream.closeCode, 1000);
  assert.ok(kinds.includes("partial") && kinds.includes("final"), kinds.join(","));
  assert.equal(kinds.at(-1), "endpoint");
  assert.deepEqual(emitted, { partial: kinds.filter((k) => k === "partial").length,
    final: kinds.filter((k) => k === "final").length, endpoint: kinds.filter((k) => k === "endpoint").length });
  const final = events.find((e) => e.kind === "final");
  for (const k of ["text", "stable", "utterance", "start", "end", "latency", "tokens", "confidence", "withheld",
    "language", "passes"]) assert.ok(k in final, `event field ${k}`);
  assert.deepEqual(await stream.done, events);
});

test("live stream as f32 from a Float32Array", { skip, timeout: 60_000 }, async () => {
  const wav = readWav(await readFile(WAV));
  const f32 = Float32Array.from(wav.samples.subarray(0, 2 * wav.sampleRate), (v) => v / 32768);
  const stream = client.stream({ sampleRate: wav.sampleRate, format: "f32" });
  stream.send(f32);
  stream.end();
  const events = await stream.done;
  assert.equal(stream.closeCode, 1000);
  assert.equal(events.at(-1)?.kind, "endpoint");
  const wrong = client.stream({ sampleRate: 16000, format: "f32" });
  assert.throws(() => wrong.send(new Int16Array(4)), TypeError);
  wrong.abort(); // an open stream holds one of the server's contexts
  await wrong.done.catch(() => undefined);
});

test("a refused live stream rejects with the close code and reason", { skip, timeout: 30_000 }, async () => {
  const stream = client.stream({ sampleRate: 5, format: "pcm16" });
  const errors = [];
  stream.on("error", (e) => errors.push(e));
  stream.end();
  await assert.rejects(stream.done, (err) => {
    assert.ok(err instanceof Nim4AsrError);
    assert.equal(err.closeCode, 1007);
    assert.match(err.message, /sample_rate/);
    return true;
  });
  assert.equal(errors.length, 1);
  const iterated = client.stream({ sampleRate: 16000, format: "pcm16" });
  iterated.send(Buffer.from([1, 2, 3])); // not a whole number of 2-byte samples
  iterated.end();
  await assert.rejects(async () => { for await (const _ of iterated); }, (err) => err.closeCode === 1007);
});

test("hotwords: list, add, search, import, remove", { skip: skip || (!HOTWORDS && "the server has no --hotwords"),
  timeout: 30_000 }, async () => {
  const all = await client.hotwords.list();
  assert.ok(all.some((e) => e.text === "Ada Lovelace"), JSON.stringify(all));
  const ns = `ts-${process.pid}`;
  const report = await client.hotwords.add(["Zorblax", { text: "Kim", weight: 2 }, "R2-D2"], ns);
  assert.equal(report.added, 2);
  assert.equal(report.skipped[0].text, "R2-D2");
  const listed = await client.hotwords.list({ namespace: ns });
  assert.deepEqual(new Set(listed.map((e) => `${e.text}:${e.weight}`)), new Set(["Zorblax:1", "Kim:2"]));
  const hits = await client.hotwords.search("zorblax", { namespace: ns, topK: 3 });
  assert.equal(hits[0].text, "Zorblax");
  assert.equal(hits[0].method, "exact");
  assert.ok(Array.isArray(hits[0].phonemes));
  const imported = await client.hotwords.import(Buffer.from("Nikola Tesla,2.5\n# a comment\nMarie Curie\n"),
    { namespace: `${ns}-b` });
  assert.equal(imported.added, 2);
  assert.deepEqual(await client.hotwords.remove(["Kim", "Nobody"], ns), { removed: 1, missing: ["Nobody"] });
  assert.deepEqual((await client.hotwords.list({ namespace: ns })).map((e) => e.text), ["Zorblax"]);
  await assert.rejects(client.hotwords.add([], ns), (err) => err instanceof Nim4AsrError && err.status === 400 &&
    err.param === "entries");
});

test("hotwords without an index are a 404", { skip: skip || (HOTWORDS && "the server has --hotwords"),
  timeout: 30_000 }, async () => {
  await assert.rejects(client.hotwords.list(), (err) => err instanceof Nim4AsrError && err.status === 404 &&
    /--hotwords/.test(err.message));
});
