import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vigil.settings")
django_application = get_wsgi_application()

# /jwks.json and discovery from memory, before Django's handler (vigil/documents_fast_path.py).
from vigil.documents_fast_path import DocumentsFastPath  # noqa: E402 - needs Django set up

application = DocumentsFastPath(django_application)
