"""Receipt and kitchen printers: rendering, transports, status, the durable print queue and discovery."""
