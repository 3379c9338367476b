"""Exporters: SavedModel for TF Serving and TFLite for on-device adaptation (`tfmeta.exporters`)."""
