"""Relay of the hub's hash-chained ledger to the central API, and the central API itself."""
