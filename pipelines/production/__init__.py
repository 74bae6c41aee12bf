"""Production mode: the servers and the distributed runner, beside the embedded defaults.

`servers` starts PostgreSQL, an MLflow server with basic auth, a Prefect server and a worker on loopback
(`erasure servers up`); `distributed` is the `torchrun` entry point that unlearns one model with DDP.
"""
