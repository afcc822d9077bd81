"""The playground: call a model with one of the project's keys and see what it cost.

Four views: the page (``playground:index``), a plain POST that renders the result
(``playground:run``, works without JavaScript), a streamed POST (``playground:stream``)
that sends newline-delimited JSON events, read by static/playground.js with fetch +
ReadableStream, and the Stop button's POST (``playground:stop``), which asks a running
stream to stop: it records the call as incomplete and ends with its result panel, so the
page shows what was recorded rather than guessing.

The stream view is async and serves both server kinds: under ASGI (uvicorn, ``make run``)
the response iterates an async generator over ``agenerate_stream`` (``AsyncOpenAI``, no
thread waiting on the model, the database work in ``sync_to_async``); under WSGI
(runserver, tests' live server) a plain generator over the sync ``generate_stream``,
because Django buffers a synchronous iterator whole under ASGI (and an asynchronous one
whole under WSGI). Both write the same NDJSON lines (``_line``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

from asgiref.sync import sync_to_async
from django import forms
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.handlers.asgi import ASGIRequest
from django.core.validators import MaxValueValidator
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from keys.models import APIKey
from keys.selectors import usable_keys
from orgs.access import Need, get_project_for_user, projects_for_user
from platformadmin.openai.breaker import breaker_state_for_key
from platformadmin.openai.client import new_client_request_id
from platformadmin.openai.services import (
    REASONING_EFFORTS,
    CallOutcome,
    GenerateParams,
    StreamEvent,
    agenerate_stream,
    generate,
    generate_stream,
    models_for_project,
)
from usage.reservations import budget_rooms

# A running stream wakes this often to check for a Stop and writes a ``waiting`` line, so a
# server also notices a client that went away before the model answered.
STREAM_HEARTBEAT_SECONDS = 0.25
STOP_FLAG_SECONDS = 600  # a Stop asked for a call is remembered this long (shared cache)


class ModelSelect(forms.Select):
    """The model select; each option says whether the model reasons (``data-reasoning``),
    so static/playground.js shows the effort select only for a model that takes one."""

    def __init__(self, *args, reasoning: dict[str, bool] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.reasoning = reasoning or {}

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(
            name, value, label, selected, index, subindex=subindex, attrs=attrs
        )
        option["attrs"]["data-reasoning"] = "true" if self.reasoning.get(str(value)) else "false"
        return option


class PlaygroundForm(forms.Form):
    """The call's parameters, limited to what this user may use in this project."""

    api_key = forms.ChoiceField(label="Key")
    model = forms.ChoiceField(label="Model")
    instructions = forms.CharField(
        label="Instructions",
        required=False,
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    input = forms.CharField(
        label="Input",
        max_length=100_000,
        widget=forms.Textarea(attrs={"rows": 5}),
        error_messages={"required": "Enter the input to send to the model."},
    )
    temperature = forms.DecimalField(
        label="Temperature",
        required=False,
        min_value=Decimal(0),
        max_value=Decimal(2),
        decimal_places=2,
        help_text="0 to 2; empty uses the model's default.",
    )
    max_output_tokens = forms.IntegerField(label="Max output tokens", required=False, min_value=16)
    reasoning_effort = forms.ChoiceField(
        label="Reasoning effort",
        required=False,
        choices=[("", "default")] + [(e, e) for e in REASONING_EFFORTS],
    )
    stream = forms.BooleanField(label="Stream", required=False, initial=True)

    def __init__(self, *args, user, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        # The view fetched ``project`` with get_project_for_user(need=USE), so every key of
        # this project is usable by this user (what api_keys_for_user(USE) would return for
        # it); asking the access helper again would only repeat its membership joins.
        # No joins: each key's project is this project, and its organization is the
        # project's (checked per key; any other would load on access as usual).
        self.keys = {}
        for k in usable_keys(project=project):
            k.project = project
            if k.organization_id == project.organization_id:
                k.organization = project.organization
            self.keys[str(k.public_id)] = k
        self.fields["api_key"].choices = [
            (pid, f"{k.name} ({k.hint}){' · simulator' if k.is_simulator else ''}")
            for pid, k in self.keys.items()
        ]
        if self.keys:
            self.fields["api_key"].initial = next(iter(self.keys))
        self.models = dict(models_for_project(project))
        self.fields["model"].widget = ModelSelect(reasoning=self.models)
        self.fields["model"].choices = [
            (m, f"{m}{' · reasoning' if r else ''}") for m, r in self.models.items()
        ]
        if self.models:
            self.fields["model"].initial = next(iter(self.models))
        self.fields[
            "reasoning_effort"
        ].help_text = "Only for reasoning models; empty uses the model's default."
        cap = project.max_output_tokens
        if cap:
            self.fields["max_output_tokens"].validators.append(_cap_validator(cap))
            self.fields["max_output_tokens"].help_text = f"At most {cap:,} (the project's cap)."
            self.fields["max_output_tokens"].widget.attrs["max"] = cap

    @property
    def offers_reasoning(self) -> bool:
        """Whether any model of this project takes a reasoning effort (else no effort select)."""
        return any(self.models.values())

    @property
    def selected_reasons(self) -> bool:
        """Whether the model selected now (posted, or the first one) takes a reasoning effort."""
        return bool(self.models.get(str(self["model"].value() or "")))

    def clean(self):
        data = super().clean()
        model, effort = data.get("model"), data.get("reasoning_effort")
        if model and effort and not self.models.get(model):
            self.add_error(
                "reasoning_effort",
                f"{model} is not a reasoning model: leave reasoning effort "
                "at 'default' or choose a reasoning model.",
            )
        return data

    def params(self) -> GenerateParams:
        d = self.cleaned_data
        return GenerateParams(
            model=d["model"],
            input=d["input"],
            instructions=d.get("instructions") or "",
            temperature=float(d["temperature"]) if d.get("temperature") is not None else None,
            max_output_tokens=d.get("max_output_tokens"),
            reasoning_effort=d.get("reasoning_effort") or None,
        )

    @property
    def api_key_obj(self) -> APIKey:
        return self.keys[self.cleaned_data["api_key"]]


def _cap_validator(cap: int):
    return MaxValueValidator(
        cap, message=f"The project caps max output tokens at {cap}: enter {cap} or less."
    )


def _result_context(outcome: CallOutcome, project, rooms=None) -> dict:
    return {
        "outcome": outcome,
        "project": project,
        "usage_url": reverse("usage:project-usage", kwargs={"project_id": project.public_id}),
        # After the call: the hard limit's spend, reservations and what is left now.
        "budget_rooms": budget_rooms(project=project) if rooms is None else rooms,
    }


def _page(
    request: HttpRequest, *, project, form, outcome: CallOutcome | None = None, status: int = 200
):
    projects = projects_for_user(request.user, Need.USE).order_by("organization__name", "name")
    selected = form.keys.get(form["api_key"].value() or "") if form is not None else None
    context = {
        "projects": projects,
        "project": project,
        "form": form,
        "breaker": breaker_state_for_key(selected) if selected else None,
        "budget_rooms": budget_rooms(project=project) if project else [],
    }
    if outcome is not None:
        context.update(_result_context(outcome, project, rooms=context["budget_rooms"]))
    return render(request, "platformadmin/playground.html", context, status=status)


@login_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """The form for the chosen project (``?project=<id>``), or the first one the user may use."""
    project_id = request.GET.get("project")
    if project_id:
        project = get_project_for_user(request.user, project_id, need=Need.USE)
    else:
        project = (
            projects_for_user(request.user, Need.USE).order_by("organization__name", "name").first()
        )
    form = PlaygroundForm(user=request.user, project=project) if project else None
    return _page(request, project=project, form=form)


def _bound_form(request: HttpRequest):
    project = get_project_for_user(request.user, request.POST.get("project", ""), need=Need.USE)
    return project, PlaygroundForm(request.POST, user=request.user, project=project)


@login_required
@require_POST
def run(request: HttpRequest) -> HttpResponse:
    """A non-streamed call; the page again with the result panel (or the form's errors).

    For an htmx request (``HX-Request: true``, sent by static/playground.js for a call
    with streaming off) the answer is the text and the result panel alone, or the
    field errors as an ``invalid`` event (status 400), as the stream view sends them;
    rendering the whole page again costs more than the rest of the request.
    """
    project, form = _bound_form(request)
    htmx = bool(getattr(request, "htmx", False))
    if not form.is_valid():
        if htmx:
            return _invalid(form)
        return _page(request, project=project, form=form, status=400)
    outcome = generate(
        api_key=form.api_key_obj, project=project, params=form.params(), user=request.user
    )
    if htmx:  # static/playground.js swaps in the text and the result panel only
        return render(
            request, "platformadmin/playground_run_fragment.html", _result_context(outcome, project)
        )
    return _page(request, project=project, form=form, outcome=outcome)


def _invalid(form) -> HttpResponse:
    """The form's errors as one ``invalid`` event (status 400), as static/playground.js reads them."""
    errors = {name: [str(e) for e in errs] for name, errs in form.errors.items()}
    return HttpResponse(
        json.dumps({"type": "invalid", "errors": errors}) + "\n",
        status=400,
        content_type="application/x-ndjson",
    )


def _event_line(event: StreamEvent, project) -> bytes:
    """One service event as the NDJSON line static/playground.js reads (``done`` renders the
    result panel, which may read the record: the async path calls this in sync_to_async)."""
    if event.kind == "accepted":  # first, the id the Stop button names
        payload = {"type": "accepted", "client_request_id": event.client_request_id}
    elif event.kind == "start":
        payload = {
            "type": "start",
            "request_id": event.server_request_id,
            "client_request_id": event.client_request_id,
        }
    elif event.kind == "waiting":
        payload = {"type": "waiting"}
    elif event.kind == "delta":
        payload = {"type": "delta", "text": event.text}
    else:
        outcome = event.outcome
        html = render_to_string(
            "platformadmin/playground_result.html", _result_context(outcome, project)
        )
        payload = {"type": "done", "ok": outcome.ok, "status": outcome.status, "html": html}
    return (json.dumps(payload) + "\n").encode()


def _prepared_stream(request: HttpRequest):
    """The access check and the form (database work, run in sync_to_async by the view):
    the form's errors as a response, or what the stream needs."""
    project, form = _bound_form(request)
    if not form.is_valid():
        return _invalid(form)
    return project, form.api_key_obj, form.params()


def _stream_kwargs(*, project, api_key, params, user, cid: str) -> dict:
    """What both stream services are called with (all but how a Stop is asked)."""
    return {
        "api_key": api_key,
        "project": project,
        "params": params,
        "user": user,
        "client_request_id": cid,
        "heartbeat": STREAM_HEARTBEAT_SECONDS,
        "announce": True,
    }


def _sync_lines(*, project, api_key, params, user, cid: str, flag: str) -> Iterator[bytes]:
    events = generate_stream(
        **_stream_kwargs(project=project, api_key=api_key, params=params, user=user, cid=cid),
        stop_requested=lambda: bool(cache.get(flag)),
    )
    try:
        for event in events:
            yield _event_line(event, project)
    finally:
        events.close()  # a stop: the service records the cut stream


async def _async_lines(
    *, project, api_key, params, user, cid: str, flag: str
) -> AsyncIterator[bytes]:
    async def stop_requested() -> bool:
        return bool(await cache.aget(flag))

    events = agenerate_stream(
        **_stream_kwargs(project=project, api_key=api_key, params=params, user=user, cid=cid),
        stop_requested=stop_requested,
    )
    try:
        async for event in events:
            if event.kind == "done":
                yield await sync_to_async(_event_line)(event, project)
            else:
                yield _event_line(event, project)
    finally:
        await (
            events.aclose()
        )  # the reader left (Django cancelled us): the service records the cut stream


@login_required
@require_POST
async def stream(request: HttpRequest) -> HttpResponse:
    """A streamed call as NDJSON: ``start``, ``delta``…, then ``done`` with the result panel."""
    prepared = await sync_to_async(_prepared_stream)(request)
    if isinstance(prepared, HttpResponse):
        return prepared
    project, api_key, params = prepared
    user = await request.auser()
    cid = new_client_request_id()
    lines = _async_lines if isinstance(request, ASGIRequest) else _sync_lines
    content = lines(
        project=project,
        api_key=api_key,
        params=params,
        user=user,
        cid=cid,
        flag=_stop_flag(user, cid),
    )
    response = StreamingHttpResponse(content, content_type="application/x-ndjson")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each line through
    return response


def _stop_flag(user, client_request_id: str) -> str:
    """The shared-cache key of a Stop: scoped to the user, so nobody stops another's call."""
    return f"playground:stop:{user.pk}:{client_request_id}"


@login_required
@require_POST
def stop(request: HttpRequest) -> HttpResponse:
    """The Stop button: ask this user's running stream ``client_request_id`` to stop.

    The stream (in whichever process serves it) sees the flag within a heartbeat, records
    the call as incomplete with what is known and sends its ``done`` event with the result
    panel. Answers 202 (asked) or 400 naming the field.
    """
    value = request.POST.get("client_request_id", "").strip()
    try:
        cid = str(uuid.UUID(value))
    except ValueError:
        return JsonResponse(
            {
                "error": {
                    "field": "client_request_id",
                    "message": (
                        f"client_request_id {value[:80]!r} is not a UUID: send the id from the stream's "
                        "'accepted' event."
                    ),
                }
            },
            status=400,
        )
    cache.set(_stop_flag(request.user, cid), True, STOP_FLAG_SECONDS)
    return JsonResponse({"stopping": cid}, status=202)
