"""The operator's web console: server-rendered pages over the state store and the mapping
file, served by ``stagesync run`` beside ``/healthz`` and ``/metrics``, or on its own by
``stagesync console``. See docs/console.md."""
