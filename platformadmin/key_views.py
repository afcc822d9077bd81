"""Test connection: a key page action that calls the OpenAI client layer.

It composes keys (the stored key, its audited test record) with the client layer
(``models_list``), so it lives above both apps; its URL keeps the name ``keys:key-test``
(platformadmin/urls.py mounts it in the keys namespace).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render

from keys import services
from keys.access import get_api_key_for_user
from keys.models import APIKey
from orgs.access import Need
from platformadmin.openai.services import models_list


def key_test_run(request: HttpRequest, api_key: APIKey) -> dict:
    """Call models.list() with the key through the client layer; audited as key.test."""
    result = models_list(api_key=api_key)
    services.api_key_record_test(api_key=api_key, ok=result.ok, request_id=result.request_id,
                                 message=result.message, actor=request.user, request=request)
    return {"ok": result.ok, "request_id": result.request_id,
            "model_ids": list(result.model_ids)[:50], "message": result.message}


@login_required
def key_test(request: HttpRequest, key_id) -> HttpResponse:
    """Test connection (POST). With HTMX, only the result fragment comes back."""
    api_key = get_api_key_for_user(request.user, key_id, need=Need.USE)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not api_key.is_active:
        test = {"ok": False, "request_id": None, "model_ids": [],
                "message": f"This key is {api_key.get_status_display().lower()}: it is not used for calls."}
    else:
        test = key_test_run(request, api_key)
    if request.htmx:
        return render(request, "keys/key_detail.html#test-result", {"test": test, "api_key": api_key})
    # The message names the request id already (platformadmin.openai.services builds it so): add it
    # only when it does not, so the id never shows twice.
    rid = test.get("request_id")
    (messages.success if test["ok"] else messages.error)(
        request, f"Test connection: {test['message']}"
        + (f" (request id {rid})" if rid and rid not in test["message"] else ""))
    return redirect("keys:key-detail", key_id=api_key.public_id)
