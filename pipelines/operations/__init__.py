"""Operations: running many requests safely, not what one request does.

`inbox` (a directory of pending requests, processed in arrival order), `coalesce` (requests for one model
unlearned together), `batch` (one flow per model on a Dask cluster), `locks` (one run per request and per
model), `recovery` (finishing a request killed mid-flow), `replay` (answering a decided request from its
record) and `faults` (fault injection for the chaos tests).
"""
