"""Development: DEBUG on unless told otherwise, console e-mail, browsable API."""

import os

from .base import *  # noqa: F403
from .base import REST_FRAMEWORK, env_bool

DEBUG = env_bool("DEBUG", True)
if "ACCOUNT_EMAIL_VERIFICATION" not in os.environ:
    ACCOUNT_EMAIL_VERIFICATION = "optional"
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}
