"""Cash drawers: kicked through a receipt printer or on their own serial line, never queued."""
