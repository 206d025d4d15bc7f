from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, include, path, re_path, resolve
from django.views.decorators.csrf import csrf_exempt
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from marketplace.api.errors import error_body


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@csrf_exempt
def api_not_found(request: HttpRequest) -> HttpResponse:
    """Any method on an unknown ``/api/`` path: the API's JSON error body, not Django's HTML page.

    Matching every ``api/`` path also stops ``APPEND_SLASH`` from redirecting there, so a GET
    whose slash form is a real page (``/api/docs``) is redirected here instead."""
    if request.method in ("GET", "HEAD") and not request.path_info.endswith("/"):
        try:
            match = resolve(f"{request.path_info}/")
        except Resolver404:
            match = None
        if match is not None and match.func is not api_not_found:
            return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
    return JsonResponse(error_body("not_found", "Not found."), status=404)


# The API first: Django tries patterns in order, and API calls are nearly all the traffic.
urlpatterns = [
    path("api/v1/", include("marketplace.api.urls")),
    path("", RedirectView.as_view(url="/api/docs/", permanent=False)),
    path("healthz", health, name="health"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("_allauth/", include("allauth.headless.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    # Last: whatever else is under api/ (an unknown path, an id past the bigint range).
    re_path(r"^api/", api_not_found, name="api-not-found"),
]
