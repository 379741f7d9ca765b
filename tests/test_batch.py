"""Batch jobs (``nim4asr-edge batch``): inputs, outputs in every format, failures reported, and exactly-once
results across kill -9 and reruns, with the shipped tiny-random bundle and real audio files."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nim4asr_edge import BatchError, Recognizer, RecognizerOptions
from nim4asr_edge.batch import expand_inputs
from nim4asr_edge.batch.inputs import InputFile
from nim4asr_edge.batch.ledger import Ledger, done_count
from nim4asr_edge.batch.outputs import JobFiles, JobLock, sync_jsonl
from nim4asr_edge.cli import main
from nim4asr_edge.formats import format_result
from nim4asr_edge.models import HERE as SHIPPED

from .conftest import JFK

ROOT = Path(__file__).parents[1]
BUNDLE = SHIPPED / "tiny-random"
FORMATS = ("txt", "json", "srt", "vtt")


def write_clips(root: Path, n: int, seconds: float = 1.0, start: int = 0) -> list[Path]:
    """``n`` real speech clips cut from the JFK recording (alternately in root and root/sub/, wav and flac)."""
    clip, rate = sf.read(JFK, dtype="float32")
    paths = []
    for i in range(start, start + n):
        sub = root / "sub" if i % 2 else root
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"clip{i:03d}.{'flac' if i % 3 == 0 else 'wav'}"
        offset = (i * 3000) % (len(clip) - int(seconds * rate))
        sf.write(path, clip[offset: offset + int(seconds * rate)], rate)
        paths.append(path)
    return paths


def batch_args(inp: Path | str, out: Path, *extra: str) -> list[str]:
    return ["batch", str(inp), "-o", str(out), "--bundle", str(BUNDLE), "--threads", "1", "--no-progress", *extra]


def check_exactly_once(out: Path, sources: list[Path], formats=("txt",)) -> list[dict]:
    """Every source done once: one ledger row each (done, in a gapless commit order), one output per format and
    name and nothing else, one JSONL line each agreeing with its JSON output; returns the JSONL records."""
    db = sqlite3.connect(out / ".nim4asr-batch" / "ledger.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = db.execute("SELECT source, name, state, lease, seq, attempts FROM files ORDER BY seq").fetchall()
    db.close()
    assert sorted(r[0] for r in rows) == sorted(str(p.resolve()) for p in sources)
    assert {r[2] for r in rows} == {"done"} and all(r[3] is None and r[5] >= 1 for r in rows)
    assert [r[4] for r in rows] == list(range(1, len(rows) + 1))
    names = {r[1] for r in rows}
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*")
                     if p.is_file() and not p.relative_to(out).parts[0].startswith("."))
    expected = sorted([f"{n}.{f}" for n in names for f in formats] + ["errors.jsonl", "transcripts.jsonl"])
    assert written == expected
    lines = (out / "transcripts.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert sorted(r["name"] for r in records) == sorted(names) and len(records) == len(rows)
    for rec in records:
        if "json" in formats:
            assert json.loads((out / f"{rec['name']}.json").read_text(encoding="utf-8"))["text"] == rec["text"]
    return records


# -- inputs -------------------------------------------------------------------------------------------------------

def test_inputs_from_a_directory_a_glob_and_manifests(tmp_path):
    root = tmp_path / "in"
    write_clips(root, 4)
    (root / "notes.txt").write_text("not audio")
    (root / ".hidden").mkdir()
    sf.write(root / ".hidden" / "x.wav", np.zeros(1600, np.float32), 16000)
    sf.write(root / "clip000.wav", np.zeros(1600, np.float32), 16000)  # collides with clip000.flac
    sf.write(root / "CLIP002.wav", np.zeros(1600, np.float32), 16000)  # collides case-insensitively
    files = expand_inputs(root)
    assert [f.name for f in files] == ["CLIP002", "clip000", "clip000.wav", "clip002.wav", "sub/clip001",
                                       "sub/clip003"]
    assert all(Path(f.source).is_absolute() for f in files) and expand_inputs(root) == files  # stable

    assert [f.name for f in expand_inputs(f"{root}/**/*.wav")] == [  # clip003 is flac
        "CLIP002", "clip000", "clip002.wav", "sub/clip001"]
    manifest = tmp_path / "list.txt"
    manifest.write_text("# two files\nin/sub/clip001.wav\n\n" + str(root / "clip002.wav") + "\n")
    assert expand_inputs(manifest) == [InputFile(str(root / "clip002.wav"), "clip002"),
                                       InputFile(str(root / "sub/clip001.wav"), "sub/clip001")]
    jsonl = tmp_path / "list.jsonl"
    jsonl.write_text('{"audio": "in/clip000.flac", "name": "calls/first"}\n{"path": "in/sub/clip003.flac"}\n')
    assert [f.name for f in expand_inputs(jsonl)] == ["calls/first", "sub/clip003"]
    jsonl.write_text('{"audio": "in/clip000.flac", "name": "../escape"}\n')
    with pytest.raises(BatchError, match="relative path"):
        expand_inputs(jsonl)
    with pytest.raises(BatchError, match="no audio files"):
        expand_inputs(f"{tmp_path}/*.mp3")
    with pytest.raises(BatchError, match="neither"):
        expand_inputs(tmp_path / "missing")


# -- the JSONL and the lock, at the kill points that matter ----------------------------------------------------------

def test_jsonl_follows_the_ledger_whatever_was_cut(tmp_path):
    files = JobFiles(tmp_path)
    files.prepare()
    with Ledger(files.ledger) as ledger:
        ledger.add_files([InputFile(f"/a/{i}.wav", str(i)) for i in range(3)])
        for task in ledger.claim(3, "run"):
            assert ledger.complete(task, json.dumps({"name": task.name}), 1.0)
        assert sync_jsonl(ledger, files) == 3
        good = files.jsonl.read_bytes()
        with open(files.jsonl, "ab") as fh:  # killed after appending, before the ledger's mark moved
            fh.write(b'{"name": "0"}\n{"na')
        assert sync_jsonl(ledger, files) == 0 and files.jsonl.read_bytes() == good
        files.jsonl.write_bytes(good[:5])  # shorter than the mark: rebuilt from the ledger
        sync_jsonl(ledger, files)
        assert files.jsonl.read_bytes() == good
        (task,) = ledger.claim(1, "run") or [None]
        assert task is None  # nothing pending: each file is handed out once
        with JobLock(files.lock), pytest.raises(BatchError, match="another batch process"):
            with JobLock(files.lock):
                pass


# -- whole jobs ---------------------------------------------------------------------------------------------------

def test_every_format_and_a_corrupt_file_does_not_stop_the_job(tmp_path, capsys):
    sources = write_clips(tmp_path / "in", 5)
    (tmp_path / "in" / "corrupt.wav").write_bytes(b"RIFF" + os.urandom(3000))
    sf.write(tmp_path / "in" / "empty.flac", np.zeros(0, np.float32), 16000)
    out = tmp_path / "out"
    rc = main(batch_args(tmp_path / "in", out, "--workers", "2", "--formats", ",".join(FORMATS)))
    err = capsys.readouterr().err
    assert rc == 4 and "2 file(s) failed" in err and "corrupt.wav: AudioError" in err
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["name"], e["error"].split(":")[0]) for e in errors] == [("corrupt", "AudioError"),
                                                                      ("empty", "AudioError")]
    assert all(e["file"] in e["error"] for e in errors)  # the message names the file
    db = sqlite3.connect(out / ".nim4asr-batch" / "ledger.sqlite")
    db.execute("DELETE FROM files WHERE state = 'failed'")  # what check_exactly_once expects of the rest
    db.commit()
    db.close()
    (out / "errors.jsonl").write_text("")
    records = check_exactly_once(out, sources, FORMATS)
    with Recognizer(BUNDLE, RecognizerOptions(threads=1)) as rec:  # the same outputs as transcribing one by one
        for rec_line in records:
            result = rec.transcribe(rec_line["file"])
            assert rec_line["text"] == result.text and rec_line["duration"] == result.duration
            for fmt in ("txt", "srt", "vtt"):
                assert (out / f"{rec_line['name']}.{fmt}").read_text(encoding="utf-8") == format_result(result, fmt)
    assert (out / "sub" / "clip001.vtt").read_text().startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n")


def test_rerun_continues_and_a_changed_job_needs_force(tmp_path, capsys):
    sources = write_clips(tmp_path / "in", 3)
    out = tmp_path / "out"
    assert main(batch_args(tmp_path / "in", out, "--summary-json")) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["processed"], first["done"]) == (3, 3)
    sources += write_clips(tmp_path / "in", 2, start=3)  # new files join the job; done ones are not redone
    assert main(batch_args(tmp_path / "in", out, "--summary-json", "--workers", "2")) == 0
    assert json.loads(capsys.readouterr().out)["processed"] == 2
    check_exactly_once(out, sources, ("txt", "json"))
    assert main(batch_args(tmp_path / "in", out, "--formats", "txt")) == 2
    assert "different batch job (formats changed)" in capsys.readouterr().err
    assert main(batch_args(tmp_path / "in", out, "--guard", "off")) == 2
    assert "(options changed)" in capsys.readouterr().err
    assert main(batch_args(tmp_path / "in", out, "--formats", "txt,json,srt", "--force", "--summary-json")) == 0
    assert json.loads(capsys.readouterr().out)["processed"] == 5  # a changed job, forced: every file again
    check_exactly_once(out, sources, ("txt", "json", "srt"))
    assert main(batch_args(tmp_path / "missing", out)) == 2  # another input: a different job, refused


# -- kill -9 ------------------------------------------------------------------------------------------------------

def _session_pids(sid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            pids.append(int(stat.parent.name))
    return pids


def _start_job(inp: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "nim4asr_edge", *batch_args(inp, out, *extra)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to follow the job's processes")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kill_9_at_random_points_then_rerun_gives_every_file_once(tmp_path, seed):
    rng = random.Random(seed)
    sources = write_clips(tmp_path / "in", 24, seconds=0.5)
    out = tmp_path / "out"
    for kill in range(2):  # first mid-job, then at a random time (before, while or after the workers load)
        job = _start_job(tmp_path / "in", out, "--workers", "2")
        if kill == 0:  # right after a random number of commits, plus a random delay under 30 ms
            target, deadline = rng.randint(1, 12), time.monotonic() + 120
            while done_count(JobFiles(out).ledger) < target and job.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.03))
        else:
            time.sleep(rng.uniform(0.3, 3.0))
        if job.poll() is None:  # (a job that already finished has been reaped by poll)
            os.kill(job.pid, signal.SIGKILL)
        job.wait(30)
        if kill == 0:
            assert 0 < done_count(JobFiles(out).ledger) < len(sources), "the first kill must land mid-job"
        deadline = time.monotonic() + 30  # orphaned workers notice their driver is gone and exit
        while _session_pids(job.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _session_pids(job.pid), "workers outlived their driver"
    job = _start_job(tmp_path / "in", out, "--workers", "2")
    _, err = job.communicate(timeout=300)
    assert job.returncode == 0, err.decode()
    check_exactly_once(out, sources, ("txt", "json"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kills a worker process by pid")
def test_a_killed_worker_is_replaced_and_its_files_retried(tmp_path):
    sources = write_clips(tmp_path / "in", 40, seconds=0.5)
    out = tmp_path / "out"
    job = _start_job(tmp_path / "in", out, "--workers", "1")  # the only worker: the job waits for its replacement
    deadline = time.monotonic() + 120
    while done_count(JobFiles(out).ledger) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    with Ledger(out / ".nim4asr-batch" / "ledger.sqlite") as ledger:
        victim = ledger.get_meta("workers")[0]["pid"]
    done_before = done_count(JobFiles(out).ledger)
    os.kill(victim, signal.SIGKILL)
    _, err = job.communicate(timeout=300)
    assert job.returncode == 0, err.decode()
    assert done_before < len(sources) and f"worker process {victim} died" in err.decode()
    check_exactly_once(out, sources, ("txt", "json"))
    db = sqlite3.connect(out / ".nim4asr-batch" / "ledger.sqlite")
    assert db.execute("SELECT COUNT(*) FROM files WHERE failures = 1 AND attempts = 2").fetchone()[0] >= 1
    db.close()
