"""The HTTP/WebSocket service: ``create_app`` (``app``: reads the settings, builds the ``Service`` of
``service``), typed route dependencies (``deps``), REST routes (``routes``), recordings
(``recordings``), WebSockets (``ws``) and their outboxes (``hub``), error answers (``errors``),
Prometheus metrics (``metrics``), uvicorn runners (``run``) and the dashboard (``static/``)."""
