// Run against a live server, as client.test.mjs. NIM4ASR_BUSY=1 when the server was started with --contexts 1
// --queue 0 (the busy tests); NIM4ASR_TOKEN when it was started with --token (the auth tests).
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";

import { Nim4AsrClient, Nim4AsrError, readWav } from "../dist/index.js";

const URL = process.env.NIM4ASR_URL;
const WAV = process.env.NIM4ASR_WAV;
const TOKEN = process.env.NIM4ASR_TOKEN;
const BUSY = process.env.NIM4ASR_BUSY === "1";
const skip = !URL || !WAV ? "set NIM4ASR_URL and NIM4ASR_WAV to run against a server" : false;
const client = new Nim4AsrClient({ baseUrl: URL ?? "http://127.0.0.1:1", token: TOKEN, timeoutMs: 30_000 });

async function until(check, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test("a full server: 429 with Retry-After for a transcription, close 1013 for a stream", {
  skip: skip || (!BUSY && "the server is not the busy one (--contexts 1 --queue 0)"), timeout: 60_000 }, async () => {
  const wav = readWav(await readFile(WAV));
  const holder = client.stream({ sampleRate: wav.sampleRate, format: "pcm16" }); // holds the one context
  await holder.opened;
  await until(async () => (await client.health()).busy === 1, "the stream to hold the context");
  await assert.rejects(client.transcribe(WAV), (err) => {
    assert.ok(err instanceof Nim4AsrError);
    assert.equal(err.status, 429);
    assert.equal(err.type, "rate_limit_error");
    assert.ok(Number.isInteger(err.retryAfter) && err.retryAfter >= 1, `retryAfter ${err.retryAfter}`);
    assert.match(err.message, /busy/);
    return true;
  });
  const second = client.stream({ sampleRate: wav.sampleRate, format: "pcm16" });
  const errors = [];
  second.on("error", (e) => errors.push(e));
  second.end();
  await assert.rejects(second.done, (err) => {
    assert.ok(err instanceof Nim4AsrError);
    assert.equal(err.closeCode, 1013);
    assert.equal(err.status, 0);
    assert.equal(err.type, "rate_limit_error");
    assert.match(err.message, /busy/);
    return true;
  });
  assert.equal(errors.length, 1);
  holder.send(wav.samples.subarray(0, wav.sampleRate));
  holder.end();
  const events = await holder.done; // the held stream was never disturbed
  assert.equal(holder.closeCode, 1000);
  assert.equal(events.at(-1)?.kind, "endpoint");
  await until(async () => (await client.health()).busy === 0, "the context to be free");
  const after = await client.transcribe(WAV); // served again once the context is free
  assert.equal(typeof after.text, "string");
});

test("token auth: the client sends its token; without it or with a wrong one, typed errors", {
  skip: skip || (!TOKEN && "the server has no --token"), timeout: 60_000 }, async () => {
  assert.equal((await client.health()).status, "ok");
  const text = await client.transcribe(WAV, { responseFormat: "text" });
  assert.equal(typeof text, "string");
  for (const other of [new Nim4AsrClient({ baseUrl: URL }), new Nim4AsrClient({ baseUrl: URL, token: `${TOKEN}x` })]) {
    for (const call of [() => other.health(), () => other.models(), () => other.transcribe(WAV)]) {
      await assert.rejects(call(), (err) => {
        assert.ok(err instanceof Nim4AsrError);
        assert.equal(err.status, 401);
        assert.equal(err.type, "authentication_error");
        assert.match(err.message, /bearer token/);
        return true;
      });
    }
    const refused = other.stream({ sampleRate: 16000, format: "pcm16" });
    refused.end();
    await assert.rejects(refused.done, (err) => err instanceof Nim4AsrError && err.status === 403 &&
      err.type === "permission_error" && err.closeCode === undefined);
  }
  const wav = readWav(await readFile(WAV));
  const stream = client.stream({ sampleRate: wav.sampleRate, format: "pcm16" }); // the token on the handshake too
  stream.send(wav.samples.subarray(0, 2 * wav.sampleRate));
  stream.end();
  const events = await stream.done;
  assert.equal(stream.closeCode, 1000);
  assert.equal(events.at(-1)?.kind, "endpoint");
});
