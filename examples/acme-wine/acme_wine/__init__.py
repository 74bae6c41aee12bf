"""Acme's wine cultivar classifier: the model, its data in a DVC repository of its own, its training script."""
