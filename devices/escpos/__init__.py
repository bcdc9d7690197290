"""ESC/POS bytes back to paper: a streaming decoder, and the paper as text and PNG.

Shared by the virtual printer (devices.sim.printer) and the hub's receipt preview.
"""

from devices.escpos.decoder import Decoder, Op, decode
from devices.escpos.paper import Paper

__all__ = ["Decoder", "Op", "Paper", "decode"]
