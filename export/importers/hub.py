"""The one place that may reach the network: fetch a released model directory from the Hugging Face hub.

Recognition never downloads anything; only ``nim4asr-edge import ... --from-hub REPO_ID`` comes here, for users who
are online. ``huggingface_hub`` is the optional extra ``hub``.
"""

from __future__ import annotations

from pathlib import Path

from nim4asr_edge.errors import ExportError, require

__all__ = ["fetch_model_dir"]


def fetch_model_dir(repo_id: str, cache_dir: str | Path | None = None, revision: str | None = None,
                    offline: bool = False) -> Path:
    """The local directory of the hub repository ``repo_id`` (downloaded into the hub cache unless it is there).

    ``offline``: use the cache only (also what ``HF_HUB_OFFLINE=1`` does); a repository missing from it is an
    ``ExportError``.
    """
    hub = require("huggingface_hub", "hub")
    if "/" not in repo_id or repo_id.count("/") != 1:
        raise ExportError(f"--from-hub takes a repository id like 'Org/Model', got {repo_id!r}")
    try:
        cache = None if cache_dir is None else str(cache_dir)
        path = hub.snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=offline)
    except Exception as exc:  # huggingface_hub raises its own HTTP / cache errors
        where = "in the local hub cache" if offline else "on the hub"
        raise ExportError(f"cannot get {repo_id!r} {where}: {exc}") from exc
    return Path(path)
