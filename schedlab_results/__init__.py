"""Results that compare: a sidecar per test (identity + metrics), ``compare``, the report.

A library above the processes: it reads ``result.json`` through its one definition
(:mod:`orchestrator.result_schema`, in :mod:`.result_doc`) and never reaches into a
process's internals otherwise.
"""
