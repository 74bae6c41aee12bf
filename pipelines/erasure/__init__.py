"""Erasing the forgotten examples from the training data, and what the trail keeps of them instead.

`training_data` removes forgotten examples from the DVC-tracked training data after promotion and purges
them from DVC's storage, `data_events` retries and audits those steps, `lineage` records which data commit a
registered version was trained on, and `commitment` keeps keyed commitments of record ids (never the ids).
"""
