"""Virtual devices for the demo, tests and benchmarks: they speak the real contract over real MQTT."""
