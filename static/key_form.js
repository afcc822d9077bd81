// The add-key form: show only the fields that apply to the chosen kind and provider.
// Each group marked data-when-field / data-when-value is shown when that select has that
// value; hidden groups are also disabled, so a value typed before switching is not sent
// (the server refuses a field that does not apply). Without this script every field shows,
// each with a hint saying when it applies.
(function () {
  "use strict";

  function update(form) {
    form.querySelectorAll("[data-when-field]").forEach(function (group) {
      var select = form.elements.namedItem(group.dataset.whenField);
      var applies = !select || select.value === group.dataset.whenValue;
      group.hidden = !applies;
      group.querySelectorAll("input, select, textarea").forEach(function (input) {
        input.disabled = !applies;
      });
    });
  }

  function init() {
    var form = document.querySelector("form[data-key-form]");
    if (!form) {
      return;
    }
    form.addEventListener("change", function (event) {
      if (event.target.name === "kind" || event.target.name === "provider") {
        update(form);
      }
    });
    update(form);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
