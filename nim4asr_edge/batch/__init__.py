"""Batch transcription of archives: resumable, exactly-once jobs over a directory, manifest or glob of audio files,
run by local worker processes or on a Ray cluster (``pip install 'nim4asr-edge[batch]'``).

``run_batch(inputs, out_dir, WorkerSpec(bundle), BatchOptions(workers=2))`` is what ``nim4asr-edge batch`` runs.
See docs/batch.md for the ledger's semantics.
"""

from .inputs import InputFile, expand_inputs
from .job import BatchOptions, job_definition, run_batch, worker_threads
from .ledger import Ledger
from .progress import BatchSummary
from .work import OUTPUT_FORMATS, WorkerSpec

__all__ = [
           "OUTPUT_FORMATS",
           "BatchOptions",
           "BatchSummary",
           "InputFile",
           "Ledger",
           "WorkerSpec",
           "expand_inputs",
           "job_definition",
           "run_batch",
           "worker_threads",
]
