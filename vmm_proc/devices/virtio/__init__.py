"""virtio devices: the split virtqueue (``queue``), the virtio-mmio transport (``mmio``), the
transport/device contract (``device``) and device models (``console``)."""
