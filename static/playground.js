// The playground's streaming: POST the form with fetch, read newline-delimited JSON
// events from the response body as they arrive, append text deltas, and let the Stop
// button abort the request (the server then records the call as incomplete).
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
  let controller = null;

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
    if (event.type === "start") {
      status.textContent = "Streaming… request id " + (event.request_id || "unknown");
    } else if (event.type === "delta") {
      output.appendChild(document.createTextNode(event.text));
    } else if (event.type === "done") {
      result.innerHTML = event.html; // rendered and escaped by the server's template
      status.textContent = event.ok ? "Done." : "Finished with a problem, see below.";
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
        status.textContent = "Stopped. The text so far is kept; the call is recorded as incomplete in the project's usage.";
      } else {
        status.textContent = "The stream broke off (" + err.message + "). The call is recorded in the project's usage.";
      }
    } finally {
      controller = null;
      setRunning(false);
    }
  });

  stopButton.addEventListener("click", () => {
    if (controller) controller.abort();
  });
})();
