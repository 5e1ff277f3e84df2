"""geoalign.models: encoders, losses, pretraining, evaluation and inference (imports torch)."""
