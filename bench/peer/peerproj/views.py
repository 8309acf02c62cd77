from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_api_key.permissions import HasAPIKey


class Ping(APIView):
    """200 {"ok": true} for a valid key in "Authorization: Api-Key <key>", else 403."""

    permission_classes = [HasAPIKey]

    def get(self, request):
        return Response({"ok": True})
