"""The project's URLs: mozilla-django-oidc's own views, and the page it lands on after sign-in."""

from django.http import JsonResponse
from django.urls import include, path


def profile(request):
    """Who is signed in (Django's default LOGIN_REDIRECT_URL, where the callback lands)."""
    user = request.user
    if not user.is_authenticated:
        return JsonResponse({"signed_in": False})
    return JsonResponse({"signed_in": True, "username": user.username, "email": user.email})


urlpatterns = [
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("accounts/profile/", profile),
]
