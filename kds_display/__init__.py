"""Kitchen display: an MQTT device that serves a kiosk page to the kitchen's screen."""
