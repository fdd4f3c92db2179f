"""The HTTP/WebSocket service: ``create_app`` (``app``), REST routes (``routes``), WebSockets
(``ws``), recordings (``recordings``), Prometheus metrics (``metrics``), uvicorn runners (``run``)
and the dashboard (``static/``)."""
