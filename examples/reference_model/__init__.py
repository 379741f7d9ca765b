"""nim4asr-ref-en recipe: frozen Whisper tiny.en encoder + phoneme CTC head + adaptor into frozen SmolLM2-135M."""
