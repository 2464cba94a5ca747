"""Bundled pretrained weights (the offline default); listed in weights_manifest.json."""
