"""Store devices: printers, cash drawers, the device registry and virtual devices for demo and tests."""
