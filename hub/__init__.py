"""StoreHub: the store's hub. Authoritative shift, ticket and table state behind a local MQTT broker."""

__version__ = "0.1.0"
