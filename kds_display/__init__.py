"""A kitchen display screen: an MQTT device of kind `kds` that serves a kiosk page to a local browser.

station.py    the station view model: pure, handed the clock (gaps, snapshot, cards, all-day, times)
settings.py   the screen's settings: device, credentials, stations, thresholds, bump-bar keys
device.py     the MQTT device: birth/LWT with `sess`, sync, the queue of commands sent exactly once
render.py     the cards and the page as server-rendered HTML (Jinja2)
server.py     the kiosk server: FastAPI page, static files, live updates over WebSocket
cli.py        `storehub kds run` and `storehub bench kds`
"""
