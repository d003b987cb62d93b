"""``rtstyle serve``: a browser studio for live camera stylization and file jobs.

Modules: ``app`` (aiohttp application and routes), ``webrtc`` (live sessions over aiortc through
the shared pipeline), ``jobs`` (uploaded videos/photos through ``rtstyle.stylize``), ``catalog``
(the served models), ``params`` (what a client may send), ``security`` (tokens, upload checks,
private storage, the disk cap, folders of dead servers, path scrubbing), ``ice``
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
  ``smoothing``, ``max_side``, and ``max_pixels``, ``max_frames``, ``max_seconds``, which can only
  tighten the server's limits) -> 202 and the job once the upload is on disk and passes the limits
  (400 with the reason; 413 too large, 415 not media, 408 sent too slowly, 429 busy or too many
  uploads from one address, 507 the studio's storage is full);
  ``GET /api/jobs/ID`` -> status, progress and ``download`` (a URL, once done);
  ``GET /api/jobs/ID/download`` -> the file, once, then it is deleted.

Every parameter a client may send is one entry of ``params.PARAMS`` (type, range, which requests
take it). Errors are one-line JSON naming no server path; a bug is a 500 without detail (the
traceback goes to the server's log).

The aiohttp/aiortc imports live in ``app`` and ``webrtc``; importing this package costs nothing.
"""
