// Transcribe a WAV file, then stream the same file live in 100 ms frames (as a microphone would send it).
//
//   nim4asr-edge serve &                      # http://127.0.0.1:8000
//   npm run build
//   node examples/transcribe.mjs ../../examples/audio/jfk.wav [http://127.0.0.1:8000]
import { readFile } from "node:fs/promises";

import { Nim4AsrClient, Nim4AsrError, readWav } from "../dist/index.js";

const [path = "../../examples/audio/jfk.wav", baseUrl = "http://127.0.0.1:8000"] = process.argv.slice(2);
const client = new Nim4AsrClient({ baseUrl, token: process.env.NIM4ASR_TOKEN });

try {
  const [model] = await client.models();
  console.log(`server: ${model.id} (${model.family})`);

  // 1. the whole file, with segment timestamps
  const result = await client.transcribe(path, { responseFormat: "verbose_json", hints: ["Ada Lovelace"] });
  for (const s of result.segments) {
    const guard = s.confidence === null ? "" : ` (confidence ${s.confidence.toFixed(2)})`;
    console.log(`[${s.start.toFixed(2)}-${s.end.toFixed(2)}] ${s.text || `[withheld: ${s.withheld}]`}${guard}`);
  }

  // 2. live: 16-bit samples of the WAV in 100 ms frames
  const wav = readWav(await readFile(path));
  const stream = client.stream({ sampleRate: wav.sampleRate, format: wav.format });
  stream.on("partial", (ev) => process.stdout.write(`\r… ${ev.text}`));
  stream.on("final", (ev) => console.log(`\r✓ ${ev.text}  [${ev.start.toFixed(2)}-${ev.end.toFixed(2)} s]`));
  stream.on("endpoint", (ev) => console.log(`— end of utterance ${ev.utterance}`));
  const step = Math.round(wav.sampleRate / 10);
  for (let i = 0; i < wav.samples.length; i += step) stream.send(wav.samples.subarray(i, i + step));
  stream.end();
  await stream.done; // resolves after the server's last event (close 1000)
} catch (err) {
  if (err instanceof Nim4AsrError) {
    console.error(`error ${err.status || err.closeCode} ${err.type}: ${err.message}` +
      (err.retryAfter ? ` (retry after ${err.retryAfter} s)` : ""));
    process.exit(1);
  }
  throw err;
}
