"""``rtstyle serve``: a browser studio for live camera stylization and file jobs.

Modules: ``app`` (aiohttp application and routes), ``webrtc`` (live sessions over aiortc through
the shared pipeline), ``jobs`` (uploaded videos/photos through ``rtstyle.stylize``), ``catalog``
(the served models), ``security`` (tokens, upload checks, private storage, limits), ``ice``
(WebRTC network policy), ``stamps`` (latency stamps), ``probe`` (a WebRTC client), ``static/``
(the page: plain HTML and JavaScript).

HTTP API (JSON unless noted; with a token, send ``Authorization: Bearer TOKEN`` or ``?token=``):

* ``GET /health`` -> ``{"status": "ok", "sessions", "max_sessions", "jobs_running", "max_jobs"}``
* ``GET /api/models`` -> ``{"models": [{"name", "arch", "styles", "style_image", "alpha"}]}``
* ``POST /offer`` ``{"sdp", "type": "offer", ["model", "alpha", "style_index", "smoothing"]}`` ->
  ``{"sdp", "type": "answer", "session"}`` (503 when every live slot is taken)
* ``GET|POST|DELETE /api/sessions/ID``: status / change ``model``, ``alpha``, ``style_index``,
  ``smoothing`` / close; ``POST /api/sessions/ID/style-image`` (body: an image) for AdaIN models
* ``POST /api/jobs`` (multipart: ``file``, ``model``, optional ``alpha``, ``style_index``,
  ``smoothing``, ``max_side``) -> 202 and the job (429 when busy, 413 too large, 415 not media);
  ``GET /api/jobs/ID`` -> status, progress and ``download`` (a URL, once done);
  ``GET /api/jobs/ID/download`` -> the file, once, then it is deleted.

The aiohttp/aiortc imports live in ``app`` and ``webrtc``; importing this package costs nothing.
"""
