"""Batch jobs on Ray: a local three-node cluster (``ray.cluster_utils.Cluster``, loopback only) loses a worker
node mid-job, and every file still comes out exactly once."""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time

import pytest

# loopback only: Ray on Linux rewrites 127.0.0.1 to the machine's outward address unless this is off (before import)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'nim4asr-edge[batch]' (CI installs it)")

from ray.cluster_utils import Cluster

from nim4asr_edge.batch import BatchOptions, WorkerSpec, run_batch
from nim4asr_edge.batch.ledger import Ledger, done_count
from nim4asr_edge.batch.outputs import JobFiles
from nim4asr_edge.cli import main
from nim4asr_edge.options import RecognizerOptions

from .test_batch import BUNDLE, ROOT, check_exactly_once, write_clips

TIMEOUT = 420  # seconds for the whole job; Ray's start-up alone takes tens of seconds on 2 busy cores


@pytest.fixture()
def cluster(monkeypatch):
    """A head node (1 CPU) and two worker nodes (1 CPU each), on 127.0.0.1, without dashboard or usage reports.
    A hang anywhere (Ray's start-up included) ends the test process with every thread's traceback."""
    faulthandler.dump_traceback_later(TIMEOUT + 180, exit=True, file=sys.__stderr__)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    local = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "object_store_memory": 80 * 1024 * 1024}
    c = Cluster(initialize_head=True, head_node_args={**local, "include_dashboard": False})
    workers = [c.add_node(**local) for _ in range(2)]
    try:
        ray.init(address=c.address, logging_level="WARNING", log_to_driver=False)
        yield c, workers
    finally:
        ray.shutdown()
        c.shutdown()
        faulthandler.cancel_dump_traceback_later()


def test_a_worker_node_dies_mid_job_and_every_file_is_done_once(tmp_path, cluster):
    c, worker_nodes = cluster
    sources = write_clips(tmp_path / "in", 30, seconds=0.5)
    out = tmp_path / "out"
    spec = WorkerSpec(str(BUNDLE), RecognizerOptions(threads=1), formats=("txt", "json"))
    outcome: dict = {}

    def job() -> None:
        try:
            outcome["summary"] = run_batch(tmp_path / "in", out, spec, BatchOptions(workers=2, ray=True))
        except BaseException as exc:  # reported by the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=job, daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while done_count(JobFiles(out).ledger) < 3 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "error" not in outcome and thread.is_alive(), outcome
    with Ledger(out / ".nim4asr-batch" / "ledger.sqlite") as ledger:
        actor_nodes = {w["node"] for w in ledger.get_meta("workers")}
    victim = next(n for n in worker_nodes if n.node_id in actor_nodes)  # the head has room for one actor only
    done_before = done_count(JobFiles(out).ledger)
    c.remove_node(victim)
    thread.join(max(1.0, deadline - time.monotonic()))
    assert not thread.is_alive(), "the Ray job did not finish in time"
    assert "error" not in outcome, outcome.get("error")
    summary = outcome["summary"]
    assert done_before < len(sources) and (summary.done, summary.failed, summary.mode) == (30, 0, "ray")
    check_exactly_once(out, sources, ("txt", "json"))


def test_ray_without_an_address_starts_a_local_instance_on_loopback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    faulthandler.dump_traceback_later(TIMEOUT, exit=True, file=sys.__stderr__)
    try:
        sources = write_clips(tmp_path / "in", 4, seconds=0.5)
        out = tmp_path / "out"
        rc = main(["batch", str(tmp_path / "in"), "-o", str(out), "--bundle", str(BUNDLE), "--threads", "1",
                   "--workers", "2", "--ray", "--no-progress"])
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert rc == 0, capsys.readouterr().err
    assert not ray.is_initialized()  # the job shut down the instance it started
    check_exactly_once(out, sources, ("txt", "json"))
    with Ledger(out / ".nim4asr-batch" / "ledger.sqlite") as ledger:
        assert [w["node_ip"] for w in ledger.get_meta("workers")] == ["127.0.0.1", "127.0.0.1"]
