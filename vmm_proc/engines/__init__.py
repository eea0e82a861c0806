"""VM engines: each boots a VM from a VmConfig and feeds the vmm_proc service through EngineHooks."""
