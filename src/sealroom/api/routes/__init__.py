"""One router per resource; :func:`sealroom.api.app.create_app` includes them all."""
