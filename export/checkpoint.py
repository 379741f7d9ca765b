"""The training checkpoint directory (layout in docs/FORMAT.md): save, load, validate."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from nim4asr_edge.errors import CheckpointError
from nim4asr_edge.manifest import sha256_file
from nim4asr_edge.prompt import NIM4_PROMPT, PromptTemplate

from .config import ModelConfig

__all__ = ["Checkpoint", "save_checkpoint", "TOKENIZER_FILES"]

WEIGHTS = "model.safetensors"
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json")  # SentencePiece | byte-level BPE
BLANK = "<blank>"
DEFAULT_FRONTEND: dict[str, Any] = {"type": "kaldi_fbank", "sample_rate": 16000, "num_mel_bins": 80}
TIED_LM_HEAD = "llm.lm_head.weight"


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint file missing: {path}") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc


def save_checkpoint(
    model,
    out_dir: str | Path,
    tokenizer_file: str | Path,
    cmvn_mean: Sequence[float],
    cmvn_istd: Sequence[float],
    phonemes: Sequence[str],
    frontend: dict[str, Any] | None = None,
    prompt: PromptTemplate = NIM4_PROMPT,
) -> Path:
    """Write a ``Nim4AsrModel`` and its side files as a checkpoint directory."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg: ModelConfig = model.cfg
    if len(phonemes) != cfg.ctc_head.n_phonemes or phonemes[0] != BLANK:
        raise CheckpointError(
            f"phoneme inventory must have {cfg.ctc_head.n_phonemes} symbols starting with {BLANK!r}"
        )
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if cfg.llm.get("tie_word_embeddings"):
        state.pop(TIED_LM_HEAD, None)  # shares storage with the token embedding
    _write_json(out / "config.json", cfg.to_dict())
    save_file(state, str(out / WEIGHTS), metadata={"format": "pt"})
    tok = Path(tokenizer_file)
    if tok.name not in TOKENIZER_FILES:
        raise CheckpointError(f"tokenizer file must be named one of {TOKENIZER_FILES}, got {tok.name}")
    (out / tok.name).write_bytes(tok.read_bytes())
    _write_json(out / "cmvn.json", {"mean": [float(v) for v in cmvn_mean], "istd": [float(v) for v in cmvn_istd]})
    (out / "phonemes.txt").write_text("\n".join(phonemes) + "\n", encoding="utf-8")
    _write_json(out / "frontend.json", frontend or DEFAULT_FRONTEND)
    _write_json(out / "prompt.json", prompt.to_dict())
    return out


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    config: ModelConfig
    tokenizer_path: Path
    cmvn: dict[str, list[float]]
    phonemes: list[str]
    frontend: dict[str, Any]
    prompt: PromptTemplate

    @classmethod
    def open(cls, path: str | Path) -> "Checkpoint":
        """Read and validate everything but the weights (see :meth:`state_dict`)."""
        root = Path(path)
        if not root.is_dir():
            raise CheckpointError(f"checkpoint not found: {root} is not a directory")
        config = ModelConfig.load(root / "config.json")
        if not (root / WEIGHTS).is_file():
            raise CheckpointError(f"checkpoint {root} has no {WEIGHTS}")
        toks = [root / n for n in TOKENIZER_FILES if (root / n).is_file()]
        if len(toks) != 1:
            raise CheckpointError(f"checkpoint {root} needs exactly one of {TOKENIZER_FILES}, found {len(toks)}")
        cmvn = _read_json(root / "cmvn.json")
        n_mels = config.encoder.n_mels
        if not isinstance(cmvn, dict) or any(len(cmvn.get(k, ())) != n_mels for k in ("mean", "istd")):
            raise CheckpointError(f"{root / 'cmvn.json'} must hold 'mean' and 'istd' with {n_mels} values each")
        phonemes_file = root / "phonemes.txt"
        if not phonemes_file.is_file():
            raise CheckpointError(f"checkpoint {root} has no phonemes.txt (the phoneme inventory)")
        phonemes = [line for line in phonemes_file.read_text(encoding="utf-8").splitlines() if line]
        if len(phonemes) != config.ctc_head.n_phonemes or phonemes[0] != BLANK:
            raise CheckpointError(
                f"phonemes.txt lists {len(phonemes)} symbols but config.json's ctc_head.n_phonemes is "
                f"{config.ctc_head.n_phonemes} (and line 1 must be {BLANK!r}); they must agree"
            )
        frontend = _read_json(root / "frontend.json") if (root / "frontend.json").is_file() else DEFAULT_FRONTEND
        if int(frontend.get("num_mel_bins", 80)) != n_mels:
            raise CheckpointError(f"frontend.json has {frontend.get('num_mel_bins')} mel bins, the encoder {n_mels}")
        prompt = PromptTemplate.from_dict(_read_json(root / "prompt.json")) if (root / "prompt.json").is_file() \
            else NIM4_PROMPT
        return cls(root, config, toks[0], cmvn, phonemes, dict(frontend), prompt)

    def sha256(self) -> str:
        """Identity of the checkpoint: hash over its config, weights and tokenizer."""
        h = hashlib.sha256()
        for f in (self.path / "config.json", self.path / WEIGHTS, self.tokenizer_path):
            h.update(f.name.encode() + b"\0" + sha256_file(f).encode())
        return h.hexdigest()

    def state_dict(self) -> dict[str, Any]:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(self.path / WEIGHTS))
        except (SafetensorError, OSError, RuntimeError) as exc:
            raise CheckpointError(f"{self.path / WEIGHTS} cannot be read: {exc}") from exc

    def load_weights(self) -> dict[str, Any]:
        """The weights, checked tensor by tensor against the shapes ``config.json`` implies."""
        import torch

        from .model import Nim4AsrModel

        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in Nim4AsrModel(self.config).state_dict().items()}
        state = self.state_dict()
        tied = bool(self.config.llm.get("tie_word_embeddings"))
        missing = [k for k in expected if k not in state and not (tied and k == TIED_LM_HEAD)]
        unexpected = [k for k in state if k not in expected]
        wrong = [
            f"{k}: checkpoint {tuple(state[k].shape)} vs config {expected[k]}"
            for k in state
            if k in expected and tuple(state[k].shape) != expected[k]
        ]
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing tensor(s), e.g. {', '.join(missing[:3])}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected tensor(s), e.g. {', '.join(unexpected[:3])}")
        if wrong:
            problems.append(f"{len(wrong)} shape mismatch(es), e.g. {'; '.join(wrong[:3])}")
        if problems:
            raise CheckpointError(
                f"checkpoint {self.path} does not match its config.json: " + "; ".join(problems)
                + ". Fix config.json to the trained shape or re-save the checkpoint"
            )
        return state

    def build_model(self, state: dict[str, Any] | None = None, with_llm: bool = True):
        """The PyTorch model (eval mode) with this checkpoint's weights (``state`` from :meth:`load_weights`)."""
        import torch

        from .model import Nim4AsrModel

        state = self.load_weights() if state is None else state
        if not with_llm:
            # Encoder parts only (what the exporter needs): build on the meta device and adopt the checkpoint's
            # tensors (assign=True) instead of random-initialising a second copy and copying into it -- the full
            # 600 M encoder is 2.4 GB in fp32, and the safetensors tensors are file-backed (mmap), so this holds
            # it once. Tensors are cast to the module's dtype (a no-op for fp32 checkpoints, a copy for bf16 ones).
            with torch.device("meta"):
                model = Nim4AsrModel(self.config, with_llm=False)
            want = model.state_dict()
            model.load_state_dict({k: state[k].to(dtype=v.dtype) for k, v in want.items()}, strict=True, assign=True)
            left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
            if left:  # a non-persistent buffer has no checkpoint tensor: it would stay unallocated
                raise CheckpointError(f"encoder tensors {left[:3]} are not in the checkpoint and cannot be built")
            return model.eval()
        model = Nim4AsrModel(self.config, with_llm=with_llm)
        model.load_state_dict(state, strict=False)
        if with_llm and self.config.llm.get("tie_word_embeddings"):
            model.llm.tie_weights()
        return model.eval()
