"""The mobile prototype harness (see README.md): mobile bundles, device profiles, the ARM64 check."""
