"""The deletion flow and what it is given: one request, from its file to a verdict and a promotion.

`request_file` reads a file an adversary may have written, `request` is its typed schema, `deletion` is the
Prefect flow (one task per stage, in the order a request travels), `retain` builds the retain set a method
trains on, and `base_model` trains and registers the models that requests start from (the DVC stages).
This package does not import itself on import: `from pipelines.flow import deletion` pulls in the flow.
"""
