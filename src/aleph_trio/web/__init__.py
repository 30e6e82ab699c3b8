"""The HTTP side of the gateway's port: ``/health``, ``/ready``, ``/metrics`` (Prometheus),
served over h11 next to the WebSocket upgrade. It imports only the kernel: what the routes
show is handed to them by the composition root."""

from ._http import (
    MAX_HEAD_BYTES as MAX_HEAD_BYTES,
    HttpLimits as HttpLimits,
    HttpServer as HttpServer,
)
from ._instruments import Instruments as Instruments
from ._metrics import (
    Counter as Counter,
    Family as Family,
    Histogram as Histogram,
    Sample as Sample,
    counter_family as counter_family,
    gauge as gauge,
    histogram_family as histogram_family,
    render as render,
)
from ._page import Readings as Readings, metrics_text as metrics_text
from ._response import Response as Response
from ._routes import WS_PATHS as WS_PATHS, Routes as Routes
