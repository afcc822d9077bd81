// The playground's streaming: POST the form with fetch, read newline-delimited JSON
// events from the response body as they arrive, append text deltas. The Stop button asks
// the server to stop this call (POST playground:stop with the client request id from the
// stream's first event): the server records it as incomplete and ends the stream with the
// result panel, so the page says what was recorded. Only if the server does not answer
// does the page close the connection itself, and then it says it could not confirm.
(function () {
  "use strict";
  const switcher = document.getElementById("project-select");
  if (switcher) switcher.addEventListener("change", () => switcher.form.submit());

  const form = document.getElementById("playground-form");
  if (!form) return;
  const output = document.getElementById("output");
  const result = document.getElementById("result");
  const status = document.getElementById("stream-status");
  const runButton = document.getElementById("run-button");
  const stopButton = document.getElementById("stop-button");
  // The effort select only for a model that takes one (data-reasoning on each option); a
  // hidden select is disabled, so nothing is sent for it.
  const modelSelect = document.getElementById("id_model");
  const effortBox = document.getElementById("field-reasoning_effort");
  const effortSelect = document.getElementById("id_reasoning_effort");
  function showEffort() {
    if (!modelSelect || !effortBox || !effortSelect) return;
    const option = modelSelect.options[modelSelect.selectedIndex];
    const reasons = !!option && option.dataset.reasoning === "true";
    effortBox.hidden = !reasons;
    effortSelect.disabled = !reasons;
  }
  if (modelSelect) modelSelect.addEventListener("change", showEffort);
  showEffort();

  let controller = null;
  let callId = null; // the client request id of the running stream, from its "accepted" event
  let stopping = false;
  let stopTimer = null;
  const STOP_WAIT_MS = 8000; // then give up on the server's answer and close the connection

  function setRunning(running) {
    runButton.disabled = running;
    stopButton.disabled = !running;
    form.setAttribute("aria-busy", running ? "true" : "false");
  }

  function clearFieldErrors() {
    form.querySelectorAll(".errors.js").forEach((el) => el.remove());
  }

  function showFieldErrors(errors) {
    for (const [name, messages] of Object.entries(errors)) {
      const box = document.getElementById("field-" + name) || form;
      const div = document.createElement("div");
      div.className = "errors js";
      div.dataset.field = name;
      div.textContent = messages.join(" ");
      box.appendChild(div);
    }
    status.textContent = "Fix the fields marked below.";
  }

  function handle(event) {
    if (event.type === "accepted") {
      callId = event.client_request_id;
      if (stopping) sendStop(); // Stop was pressed before this first event arrived
      else status.textContent = "Sent, waiting for the model… (client request id " + callId + ")";
    } else if (event.type === "waiting") {
      // a heartbeat while the model has not answered; nothing to show
    } else if (event.type === "start") {
      if (!stopping) status.textContent = "Streaming… request id " + (event.request_id || "unknown");
    } else if (event.type === "delta") {
      output.appendChild(document.createTextNode(event.text));
    } else if (event.type === "done") {
      result.innerHTML = event.html; // rendered and escaped by the server's template
      if (stopping && event.status === "incomplete") {
        status.textContent = "Stopped. The server recorded the call as incomplete, see below.";
      } else {
        status.textContent = event.ok ? "Done." : "Finished with a problem, see below.";
      }
    } else if (event.type === "invalid") {
      showFieldErrors(event.errors || {});
    }
  }

  // Streaming off: POST to the form's action as htmx would (HX-Request), and swap in
  // the text and the result panel the server answers with (no full page reload).
  async function runPlain() {
    clearFieldErrors();
    output.textContent = "";
    result.innerHTML = "";
    status.textContent = "Waiting for the reply…";
    setRunning(true);
    stopButton.disabled = true; // nothing to stop: the call is recorded whole either way
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)), // urlencoded, as a plain form post sends it
        credentials: "same-origin",
        headers: { "HX-Request": "true" },
      });
      if (response.status === 400) {
        handle(JSON.parse(await response.text()));
      } else if (!response.ok) {
        status.textContent = "The server answered " + response.status + ". Reload the page and try again.";
      } else {
        const box = document.createElement("template");
        box.innerHTML = await response.text(); // rendered and escaped by the server's template
        const text = box.content.getElementById("run-output");
        if (text) {
          output.textContent = text.textContent;
          text.remove();
        }
        result.replaceChildren(box.content);
        const details = result.querySelector("#result-details");
        status.textContent = details && details.dataset.status !== "error" && details.dataset.status !== "refused"
          ? "Done." : "Finished with a problem, see below.";
      }
    } catch (err) {
      status.textContent = "The request failed (" + err.message + "). Check the project's usage before retrying.";
    } finally {
      setRunning(false);
    }
  }

  form.addEventListener("submit", async (submitEvent) => {
    const streamBox = form.querySelector("input[name=stream]");
    if (!window.fetch) return; // the plain form post renders the whole page
    if (!streamBox || !streamBox.checked || !window.ReadableStream) {
      submitEvent.preventDefault();
      await runPlain();
      return;
    }
    submitEvent.preventDefault();
    clearFieldErrors();
    output.textContent = "";
    result.innerHTML = "";
    status.textContent = "Waiting for the first tokens…";
    controller = new AbortController();
    callId = null;
    stopping = false;
    setRunning(true);
    try {
      const response = await fetch(form.dataset.streamUrl, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)), // urlencoded, as a plain form post sends it
        signal: controller.signal,
        credentials: "same-origin",
        headers: { Accept: "application/x-ndjson" },
      });
      if (!response.body) throw new Error("the browser cannot read a streamed reply");
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (line.trim()) handle(JSON.parse(line));
        }
      }
      if (!response.ok && response.status !== 400) {
        status.textContent = "The server answered " + response.status + ". Reload the page and try again.";
      }
    } catch (err) {
      if (err.name === "AbortError") {
        status.textContent = callId
          ? "Stopped without an answer from the server: the connection is closed, and the server records " +
            "the call as incomplete when it notices. Check the project's usage for client request id " + callId + "."
          : "Stopped without an answer from the server: the connection is closed. If the call had already " +
            "been sent, the server records it as incomplete in the project's usage.";
      } else {
        status.textContent = "The stream broke off (" + err.message + "). The call is recorded in the project's usage.";
      }
    } finally {
      clearTimeout(stopTimer);
      controller = null;
      callId = null;
      stopping = false;
      setRunning(false);
    }
  });

  // Ask the server to stop the call callId; it answers on the stream with the result panel.
  async function sendStop() {
    const running = controller;
    status.textContent = "Stopping… (client request id " + callId + ")";
    try {
      const body = new URLSearchParams({
        csrfmiddlewaretoken: form.elements.csrfmiddlewaretoken.value,
        client_request_id: callId,
      });
      const response = await fetch(form.dataset.stopUrl, { method: "POST", body, credentials: "same-origin" });
      if (!response.ok) running.abort();
    } catch (err) {
      running.abort(); // the stop request itself failed: close the stream instead
    }
  }

  stopButton.addEventListener("click", () => {
    if (!controller || stopping) return;
    const running = controller;
    stopping = true;
    stopButton.disabled = true;
    stopTimer = setTimeout(() => running.abort(), STOP_WAIT_MS);
    if (callId) sendStop();
    else status.textContent = "Stopping…"; // sent as soon as the server names the call
  });
})();
