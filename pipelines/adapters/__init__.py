"""Adapters: the one place each MLOps tool is spoken to.

`registry` (MLflow Model Registry: load by alias, register, promote, tag), `datastore` (DVC: read a set at a
revision, record it by hash), `validation` (Great Expectations suites on forget sets), `export` (ONNX export
checked with onnxruntime), `serving_model` (the MLflow pyfunc that serves a version) and `settings` (where
state lives and which servers are used, from the environment). Nothing here knows what a deletion request
is; the flow composes these.
"""
