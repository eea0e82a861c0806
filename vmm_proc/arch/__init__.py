"""Architecture-specific boot pieces (pure: bytes and register values, no vCPU access)."""
