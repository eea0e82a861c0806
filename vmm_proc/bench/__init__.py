"""Micro-benchmarks of the KVM layer (``python -m vmm_proc.bench.exit_latency``)."""
