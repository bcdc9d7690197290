"""Provisioning and signed firmware for the store's microcontroller devices."""
