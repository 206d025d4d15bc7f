"""The WSGI entry point (gunicorn ``marketplace.wsgi``); production settings unless told otherwise."""

import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings.production")
application = get_wsgi_application()
# Import every view (and through them NumPy/SciPy) now, not in the first request each process
# serves: with ``gunicorn --preload`` the forked workers then share it all, ready to answer.
get_resolver().url_patterns  # noqa: B018
